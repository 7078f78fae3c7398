"""The CLI contract, run as a user would: separate processes, a persistent home."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args, check=True):
    env = dict(os.environ)
    env.pop("EALIGN_ASSETS", None)
    p = subprocess.run([str(BIN / "ealign"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_run_tiny_then_sql(tmp_path):
    home = str(tmp_path / "h")
    out = _run("run", "--profile", "tiny", "--home", home).stdout
    assert "== split sizes ==" in out
    p = _run("sql", "--home", home, "--csv", "select scope, role, count(*) as n from splits group by all order by all")
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [(r["scope"], r["role"]) for r in rows] == [
        (s, r) for s in ("broad", "narrow_harassment", "narrow_illegal") for r in ("eval", "train")
    ]
    assert all(int(r["n"]) > 0 for r in rows)
    # runs persist in the home's Dagster instance
    assert any((Path(home) / "dagster").rglob("*.db"))
    # the CAI stage filled every constitution and every constitution x scope
    p = _run("sql", "--home", home, "--csv", "select constitution, count(distinct scope) as scopes, count(*) as n from sft_examples group by all order by all")
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["constitution"] for r in rows] == ["consequentialism", "deontology", "subordinate", "virtue"]
    assert all(r["scopes"] == "3" and int(r["n"]) > 0 for r in rows)
    p = _run("sql", "--home", home, "--csv", "select count(*) as n from sft_examples e join splits s on s.prompt_id = e.prompt_id and s.role = 'eval'")
    assert p.stdout.splitlines()[1] == "0"
    # a second run pays for nothing: every generation comes from the cache
    p = _run("run", "--profile", "tiny", "--home", home, "--select", "key:initial_responses or key:cai_revisions")
    generated = [int(line.rsplit("generating ", 1)[1]) for line in (p.stdout + p.stderr).splitlines() if "from cache, generating" in line]
    assert len(generated) == 9 and sum(generated) == 0
    # one registered adapter per constitution x scope, its files on disk matching the recorded sha256
    from ealign_dagster.paths import folder_sha256

    p = _run("sql", "--home", home, "--csv", "select constitution, scope, adapter_id, path, sha256, steps, run_id from adapters order by all")
    adapters = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(adapters) == 12 and len({(a["constitution"], a["scope"]) for a in adapters}) == 12
    for a in adapters:
        assert (Path(a["path"]) / "adapter_config.json").exists() and folder_sha256(Path(a["path"])) == a["sha256"]
    assert _run("sql", "--home", home, "--csv", "select count(*) from train_log").stdout.splitlines()[1] == str(12 * 4)
    # re-materializing replaces each registry row (same adapter id, new run), never duplicates it
    _run("run", "--profile", "tiny", "--home", home, "--select", "key:adapters")
    p = _run("sql", "--home", home, "--csv", "select constitution, scope, adapter_id, path, sha256, steps, run_id from adapters order by all")
    again = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [a["adapter_id"] for a in again] == [a["adapter_id"] for a in adapters]
    assert all(x["run_id"] != y["run_id"] for x, y in zip(again, adapters))
    # (weights may differ in the last bits between processes: MKL's summation order is not fixed)
    assert all(folder_sha256(Path(a["path"])) == a["sha256"] for a in again)
    # read-only: writes are refused with a clear error and a non-zero exit
    bad = _run("sql", "--home", home, "delete from splits", check=False)
    assert bad.returncode == 1 and "read-only" in bad.stderr.lower()


def test_cli_errors_are_one_clear_line(tmp_path):
    p = _run("run", "--profile", "nosuch", "--home", str(tmp_path / "h"), check=False)
    assert p.returncode == 2 and "nosuch.yaml: no such profile" in p.stderr and "Traceback" not in p.stderr
    p = _run("sql", "--home", str(tmp_path / "empty"), "select 1", check=False)
    assert p.returncode == 1 and "no results yet" in p.stderr


def test_dg_check_defs_from_the_project_root():
    p = subprocess.run([str(BIN / "dg"), "check", "defs"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "All definitions loaded successfully" in p.stdout + p.stderr
