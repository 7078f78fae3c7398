"""The CLI contract, run as a user would: separate processes, a persistent home."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The tiny profile: 4 constitutions and 2 trained control arms x 3 scopes x 2 seeds, and the base prompted
# as each constitution's persona.
ARMS = ["consequentialism", "deontology", "initial_answers", "no_constitution", "subordinate", "virtue"]
ADAPTERS = len(ARMS) * 3 * 2
PROMPTED = {f"prompted:{c}" for c in ("consequentialism", "deontology", "subordinate", "virtue")}
MODELS = 1 + ADAPTERS + len(PROMPTED)


def _run(*args, check=True, assets=None):
    env = dict(os.environ)
    env.pop("EALIGN_ASSETS", None)
    if assets:
        env["EALIGN_ASSETS"] = str(assets)
    p = subprocess.run([str(BIN / "ealign"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.slow
def test_run_tiny_then_sql(tmp_path, tiny_home):
    home, out = str(tiny_home[0]), tiny_home[1]
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
    p = _run(
        "sql",
        "--home",
        home,
        "--csv",
        "select constitution, count(distinct scope) as scopes, count(*) as n from sft_examples group by all order by all",
    )
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["constitution"] for r in rows] == ARMS
    assert all(r["scopes"] == "3" and int(r["n"]) > 0 for r in rows)
    p = _run(
        "sql",
        "--home",
        home,
        "--csv",
        "select count(*) as n from sft_examples e join splits s on s.prompt_id = e.prompt_id and s.role = 'eval'",
    )
    assert p.stdout.splitlines()[1] == "0"
    # a second run pays for nothing: every generation comes from the cache
    p = _run("run", "--profile", "tiny", "--home", home, "--select", "key:initial_responses or key:cai_revisions")
    generated = [
        int(line.rsplit("generating ", 1)[1])
        for line in (p.stdout + p.stderr).splitlines()
        if "from cache, generating" in line
    ]
    # initial responses, then critiques and revisions per CAI arm and seed (the initial-answer arm generates none)
    assert len(generated) == 1 + 5 * 2 * 2 and sum(generated) == 0
    # one registered adapter per arm x scope x seed, its files on disk matching the recorded sha256
    from ealign_dagster.core.paths import folder_sha256

    p = _run(
        "sql",
        "--home",
        home,
        "--csv",
        "select constitution, scope, seed, adapter_id, path, sha256, steps, run_id from adapters order by all",
    )
    adapters = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(adapters) == ADAPTERS and len({(a["constitution"], a["scope"], a["seed"]) for a in adapters}) == ADAPTERS
    for a in adapters:
        assert not Path(a["path"]).is_absolute()  # relative to the home: homes can move
        folder = Path(home) / a["path"]
        assert (folder / "adapter_config.json").exists() and folder_sha256(folder) == a["sha256"]
    # every cell the same optimizer steps (matched data: tiny trains 12 examples in batches of 4), each logged
    assert {a["steps"] for a in adapters} == {"3"}
    assert _run("sql", "--home", home, "--csv", "select count(*) from train_log").stdout.splitlines()[1] == str(
        ADAPTERS * 3
    )
    # re-materializing replaces each registry row (same adapter id, new run), never duplicates it, and
    # trains nothing: an adapter already trained under its id (same data, base, hyper-parameters) is reused
    p = _run("run", "--profile", "tiny", "--home", home, "--select", "key:adapters")
    assert (p.stdout + p.stderr).count(
        "already trained on the same data, base and hyper-parameters; reused"
    ) == ADAPTERS
    p = _run(
        "sql",
        "--home",
        home,
        "--csv",
        "select constitution, scope, seed, adapter_id, path, sha256, steps, run_id from adapters order by all",
    )
    again = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [a["adapter_id"] for a in again] == [a["adapter_id"] for a in adapters]
    assert all(x["run_id"] != y["run_id"] for x, y in zip(again, adapters))
    assert [a["sha256"] for a in again] == [a["sha256"] for a in adapters]
    assert all(folder_sha256(Path(home) / a["path"]) == a["sha256"] for a in again)
    _check_evaluation(home, adapters)
    assets = _retrain_one_constitution(home, tmp_path, adapters)
    _remove_one_constitution(home, assets)
    _moved_home_reuses_its_cache(home, tmp_path, assets)
    _killed_during_training_then_resumed(home)
    # read-only: writes are refused with a clear error and a non-zero exit
    bad = _run("sql", "--home", home, "delete from splits", check=False)
    assert bad.returncode == 1 and "read-only" in bad.stderr.lower()


def _retrain_one_constitution(home, tmp_path, adapters):
    """Editing one word of virtue.yaml and running again retrains virtue's adapters (3 scopes x 2 seeds)
    under new ids; every result table then holds exactly the current models (before: the old adapters'
    rows stayed in judgments, safety_scores and persona_scores)."""
    import shutil

    assets = tmp_path / "assets"
    shutil.copytree(ROOT / "assets", assets)
    virtue = assets / "constitutions" / "virtue.yaml"
    virtue.write_text(virtue.read_text().replace("candid and\n      truthful", "frank and\n      truthful", 1))
    _run("run", "--profile", "tiny", "--home", home, assets=assets)
    now = _rows(home, "select constitution, scope, seed, adapter_id from adapters order by all")
    cell = lambda a: (a["constitution"], a["scope"], a["seed"])  # noqa: E731
    old = {cell(a): a["adapter_id"] for a in adapters}
    changed = {cell(a) for a in now if a["adapter_id"] != old[cell(a)]}
    assert changed == {("virtue", s, k) for s in ("broad", "narrow_harassment", "narrow_illegal") for k in "01"}
    current = {a["adapter_id"] for a in now} | {"base"} | PROMPTED
    assert len(current) == MODELS
    for table in ("generations", "judgments", "safety_scores", "persona_items", "persona_scores", "projectability"):
        assert {r["model_id"] for r in _rows(home, f"select distinct model_id from {table}")} == current, table
    ea = {r["model_id"] for r in _rows(home, "select distinct model_id from emergent_alignment")}
    assert ea == {a["adapter_id"] for a in now if a["scope"] != "broad"}
    assert _rows(home, "select count(*) as n from metric_lineage where model_id not in "
                       "(select adapter_id from adapters) and model_id <> 'base' and model_kind <> 'prompted'")[0]["n"] == "0"  # fmt: skip
    latest = _rows(home, "select r.models from reports r join materializations m on m.asset_key = 'report'"
                         " and m.run_id = r.run_id")  # fmt: skip
    assert [r["models"] for r in latest] == [str(MODELS)]  # the report of this run covers the same models
    return assets


def _remove_one_constitution(home, assets):
    """Deleting subordinate.yaml retires its partition: a run including cai_revisions succeeds (before:
    'file not found' in every such run), evaluation drops its adapters, its rows stay as history."""
    (assets / "constitutions" / "subordinate.yaml").unlink()
    p = _run("run", "--profile", "tiny", "--home", home, "--select", "key:cai_revisions or key:eval_generations+",
             assets=assets)  # fmt: skip
    assert "constitution 'subordinate': its file is gone, so its partition is retired" in p.stderr
    evaluated = {r["model_id"] for r in _rows(home, "select distinct model_id from safety_scores")}
    registry = _rows(home, "select adapter_id, constitution from adapters")
    assert evaluated == {r["adapter_id"] for r in registry if r["constitution"] != "subordinate"} | {"base"} | (
        PROMPTED - {"prompted:subordinate"})  # fmt: skip
    assert len([r for r in registry if r["constitution"] == "subordinate"]) == 6  # history


def _killed_during_training_then_resumed(home):
    """SIGKILL an `ealign run` while it trains (a checkpoint on disk, its run STARTED, the `train`
    pool slot claimed): the next `ealign run` says so, frees the slot, resumes from the checkpoint
    and finishes (before: it waited forever on the dead run's slot)."""
    import shutil
    import signal
    import time

    shutil.rmtree(Path(home) / "artifacts" / "adapters")  # lost weights: they must be trained again
    env = dict(os.environ)
    env.pop("EALIGN_ASSETS", None)
    args = [str(BIN / "ealign"), "run", "--profile", "tiny", "--home", home, "--select", "key:adapters"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts, deadline = [], time.monotonic() + 300
    while not ckpts and proc.poll() is None and time.monotonic() < deadline:
        ckpts = list((Path(home) / "artifacts" / "adapters").glob("*/*/.ckpt-*/step-*"))
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpts, "training finished before a checkpoint was seen"
    p = _run("run", "--profile", "tiny", "--home", home, "--select", "key:adapters")
    assert "died without finishing: marked failed, its pool slots freed" in p.stderr
    resumed = _rows(home, "select constitution, scope, resumed_from from adapters where resumed_from > 0")
    assert len(resumed) == 1 and resumed[0]["resumed_from"] == "2", resumed


def _moved_home_reuses_its_cache(home, tmp_path, assets):
    """A home moved elsewhere evaluates from its own adapters and cache: nothing is generated again
    (before: tables held absolute paths into the old home)."""
    import shutil

    moved = str(tmp_path / "moved")
    shutil.move(home, moved)
    p = _run("run", "--profile", "tiny", "--home", moved, "--select", "key:eval_generations", assets=assets)
    generated = [x for x in (p.stdout + p.stderr).splitlines() if "from cache, generating" in x]
    # base + 30 adapters (subordinate retired) + 3 prompted in one call, every answer read back
    assert len(generated) == 1 and "evaluation of 34 models" in generated[0], generated
    assert generated[0].endswith("from cache, generating 0"), generated
    lora = _rows(moved, (ROOT / "sql" / "queries" / "vllm_lora_modules.sql").read_text())[0]["lora_modules"]
    assert lora.count(f"={moved}/artifacts/adapters/") == ADAPTERS  # absolute paths for vLLM, in the new home
    shutil.move(moved, home)


def _rows(home, sql):
    return list(csv.DictReader(io.StringIO(_run("sql", "--home", home, "--csv", sql).stdout)))


def _check_evaluation(home, adapters):
    """Every result table covers the base, every adapter and every prompted model; every metric row has a
    full lineage chain."""
    ids = {a["adapter_id"] for a in adapters} | PROMPTED
    narrow = {a["adapter_id"] for a in adapters if a["scope"] != "broad"}
    for table in ("safety_scores", "persona_scores", "projectability"):
        models = {r["model_id"] for r in _rows(home, f"select distinct model_id from {table}")}
        assert models == ids | {"base"}, table
    # emergent_alignment compares each narrow-scope adapter with the base (base_rate) on every category role
    ea = _rows(home, "select model_id, category_role, n, base_rate, model_rate, p_holm from emergent_alignment")
    assert {r["model_id"] for r in ea} == narrow
    assert {r["category_role"] for r in ea} == {"trained", "held_out", "other", "over_refusal"}
    assert all(r["p_holm"] != "" and int(r["n"]) > 0 for r in ea)
    # every judgment names its judge and version; both offline judges ran on every model
    j = _rows(
        home,
        "select model_id, judge, count(distinct judge_version) as versions, count(*) as n from judgments group by all",
    )
    assert {(r["model_id"], r["judge"]) for r in j} == {(m, k) for m in ids | {"base"} for k in ("prefix", "embedding")}
    assert all(r["versions"] == "1" for r in j)
    val = {r["judge"]: r for r in _rows(home, "select * from judge_validation")}
    assert float(val["embedding"]["roc_auc"]) > float(val["prefix"]["roc_auc"])
    assert len(_rows(home, "select * from persona_validation where method = 'logprob'")) == 4
    # metric_lineage: one row per metric row, the whole chain filled in
    counts = _rows(
        home,
        "select (select count(*) from safety_scores) + (select count(*) from emergent_alignment)"
        " + (select count(*) from persona_scores) + (select count(*) from projectability) as n",
    )
    # each write records the data versions Dagster holds for every upstream partition it read
    import json

    iv = json.loads(
        _rows(home, "select input_versions from materializations where asset_key = 'eval_generations'")[0][
            "input_versions"
        ]
    )
    assert (
        len([k for k in iv if k.startswith("adapters[")]) == ADAPTERS // 2 and "base_model" in iv and all(iv.values())
    ), iv
    lineage = _rows(home, "select * from metric_lineage")
    assert len(lineage) == int(counts[0]["n"])
    always = ["model_id", "metric", "metric_run_id", "base_model", "base_version", "eval_version", "eval_source_paths"]
    chain = [
        "adapter_id",
        "adapter_sha256",
        "sft_version",
        "cai_version",
        "split_version",
        "constitution_version",
        "constitution_path",
        "train_source_paths",
    ]
    for r in lineage:
        assert all(r[c] not in ("", "[]") for c in always), r
        if r["model_kind"] == "prompted":  # the base under a constitution's persona: that constitution's file
            assert r["adapter_id"] == "" and r["constitution_path"].endswith(f"{r['constitution']}.yaml"), r
        elif r["model_id"] != "base":
            own = [c for c in chain if c != "constitution_path" or r["constitution"] != "initial_answers"]
            assert all(r[c] not in ("", "[]") for c in own), r
            if r["constitution"] != "initial_answers":  # the initial-answer arm has no constitution file
                assert r["constitution_path"].endswith(f"{r['constitution']}.yaml")
    # the report: one self-contained page, five plots, every model
    page = Path(_run("report", "--home", home).stdout.strip())
    html = page.read_text()
    assert page.name == "report.html" and html.count("<img") == 5 and "data:image/png;base64," in html
    assert len(list(page.parent.glob("*.png"))) == 5
    samples = (page.parent / "samples.html").read_text()  # every answer side by side, linked from the report
    assert "href='samples.html'" in html and samples.count("<section class='p'") == len(
        _rows(home, "select distinct benchmark, prompt_id from generations"))  # fmt: skip
    assert _rows(home, "select models from reports")[0]["models"] == str(MODELS)
    assert all(a["constitution"] in html for a in adapters)
    assert "Coherence next to safety" in html and "incoherent_refusals" in html
    _screenshot(page)
    # the README's example queries all run and return rows
    for f in sorted((ROOT / "sql" / "queries").glob("*.sql")):
        assert len(_run("sql", "--home", home, "--csv", f.read_text()).stdout.splitlines()) >= 2, f.name


def _screenshot(page: Path):
    """Render the report in headless Chromium when it is installed (Debian package `chromium`)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return
    shot = page.parent / "screenshot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 30_000


def test_cli_errors_are_one_clear_line(tmp_path):
    p = _run("run", "--profile", "nosuch", "--home", str(tmp_path / "h"), check=False)
    assert p.returncode == 2 and "nosuch.yaml: no such profile" in p.stderr and "Traceback" not in p.stderr
    p = _run("sql", "--home", str(tmp_path / "nohome"), "select 1", check=False)
    assert p.returncode == 1 and "nohome: no such home" in p.stderr and not (tmp_path / "nohome").exists()
    (tmp_path / "empty").mkdir()
    p = _run("sql", "--home", str(tmp_path / "empty"), "select 1", check=False)
    assert p.returncode == 1 and "no results yet" in p.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntrain: {rank: 4\n")
    zero = tmp_path / "zero.yaml"
    zero.write_text("name: zero\ntrain: {rank: 0}\n")
    cases = [
        (["run", "--profile", str(bad)], 2, f"{bad}: line 3, column 1: invalid YAML"),
        (["run", "--profile", str(zero)], 2, f"{zero}: field 'train.rank': Input should be greater than 0"),
        (["run", "--profile", "tiny", "--select", "key:nosuch"], 2, "--select 'key:nosuch': matches no asset"),
        (["run", "--profile", "tiny", "--select", "key:("], 2, "--select 'key:(': "),
        (["sql", "copy (select 1) to 'x.csv'"], 1, "read-only: COPY statements are refused"),
        (["sql", "select * from read_csv('/etc/hostname')"], 1, "file system operations are disabled"),
    ]
    from ealign_dagster.core.store import Store

    Store(tmp_path / "db" / "results.duckdb").ensure_schema()
    for args, code, message in cases:
        p = _run(*args, "--home", str(tmp_path / ("db" if args[0] == "sql" else "empty")), check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == code and len(lines) == 1 and message in lines[0], (args, p.stderr)
        assert "Traceback" not in p.stderr and "Stack Trace" not in p.stderr


def test_dg_check_defs_from_the_project_root():
    p = subprocess.run([str(BIN / "dg"), "check", "defs"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "All definitions loaded successfully" in p.stdout + p.stderr


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_ui_stops_with_its_webserver_and_daemon(tmp_path):
    """SIGTERM to `ealign ui` stops dagster dev, its webserver and its daemon (before: they outlived it)."""
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env.pop("EALIGN_ASSETS", None)
    ui = subprocess.Popen([str(BIN / "ealign"), "ui", "--home", str(tmp_path / "h"), "--profile", "tiny", "--port",
                           str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        leader, members, deadline = None, [], time.monotonic() + 120
        while len(members) < 3 and time.monotonic() < deadline:  # dagster dev + webserver + daemon
            time.sleep(0.5)
            kids = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
                    if p.read_text().rsplit(")", 1)[1].split()[1] == str(ui.pid)]  # fmt: skip
            leader = kids[0] if kids else leader
            members = _group(leader) if leader else []
        assert len(members) >= 3, members
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group(leader) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _group(leader) == [] and ui.returncode == 128 + signal.SIGTERM
    finally:
        if ui.poll() is None:
            ui.kill()
