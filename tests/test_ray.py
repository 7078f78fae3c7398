"""`ealign run --executor ray` on a local Ray head: every step runs as a Ray job, and the result tables
equal the in-process run's (the session's tiny run), row for row, but for run ids, wall-clock figures
and the home's own path."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
EALIGN = Path(sys.executable).parent / "ealign"
# Columns that hold run ids or wall-clock figures: the only ones allowed to differ between two runs.
RUN_SPECIFIC = {"run_id", "written_at", "seconds", "tokens_per_s", "peak_memory_mb"}
# In text, the home's own path and a report's folder (named by its time and run) differ too.
REPORT_FOLDER = r"\d{8}-\d{6}-[0-9a-f]{8}"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def local_head(cpus: int = 2, start_s: float = 120):
    """A Ray head on this machine (2 CPUs, no GPU), its Jobs API on 127.0.0.1; yields that address.
    Ray's Jobs API is served by the dashboard process, so the dashboard runs, bound to 127.0.0.1.
    Stopped on exit: SIGTERM to `ray start --block` tears its node down (no drain wait)."""
    from ray.job_submission import JobSubmissionClient

    gcs, jobs, client, agent = free_ports(4)
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    cmd = [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
           "--num-gpus", "0", "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(jobs),
           "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
           "--temp-dir", temp, "--disable-usage-stats"]  # fmt: skip
    env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{jobs}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                JobSubmissionClient(address)
                break
            except Exception:
                if head.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Ray head did not start: {(Path(temp) / 'head.log').read_text()[-2000:]}")
                time.sleep(1)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def tables(home: Path) -> dict[str, pl.DataFrame]:
    """Every table of a home's results.duckdb without its run-specific columns and text, rows in a
    fixed order."""
    with duckdb.connect(str(home / "results.duckdb"), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]  # fmt: skip
        out = {}
        for name in names:
            df = con.execute(f'SELECT * FROM "{name}"').pl()
            df = df.drop([c for c in df.columns if c in RUN_SPECIFIC])
            df = df.with_columns(pl.col(c).cast(pl.String) for c, t in df.schema.items() if t.is_nested())
            df = df.with_columns(
                pl.col(c).str.replace_all(str(home), "<home>", literal=True).str.replace_all(REPORT_FOLDER, "<folder>")
                for c, t in df.schema.items() if t == pl.String
            )  # fmt: skip
            out[name] = df.sort(df.columns, nulls_last=True)
    return out


def step_jobs(address: str) -> dict[tuple[str, str], str]:
    """{(Dagster run id, step key): status} of every Ray job the executor submitted."""
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(address).list_jobs()
    return {(j.metadata["dagster/run-id"], j.metadata["dagster/op"]): str(j.status) for j in jobs
            if j.metadata and "dagster/run-id" in j.metadata}  # fmt: skip


def succeeded_steps(home: Path) -> set[tuple[str, str]]:
    """(run id, step key) of every step that succeeded in the home's Dagster instance."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    return {
        (run.run_id, e.step_key)
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    }


@pytest.mark.slow
def test_ray_run_writes_the_tables_of_the_in_process_run(tiny_template, tmp_path):
    import torch

    base, _ = tiny_template
    home = tmp_path / "ray-home"
    # Its own caches: every embedding and generation is computed on Ray, none read from the in-process run.
    # As many threads per step as the in-process run used: Ray would give each step one (its CPUs), and
    # a model's floats computed with another number of threads differ in their last bits.
    env = {k: v for k, v in os.environ.items() if k != "EALIGN_ASSETS"}
    env |= {"EALIGN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    with local_head() as address:
        started = time.time()
        p = subprocess.run([str(EALIGN), "run", "--profile", "tiny", "--home", str(home), "--executor", "ray",
                            "--ray-address", address], capture_output=True, text=True, env=env, cwd=ROOT, timeout=2400)  # fmt: skip
        print(f"tiny profile on a local Ray head: {time.time() - started:.0f} s")
        assert p.returncode == 0, p.stderr[-3000:]
        assert "has no GPU" in p.stderr  # model steps asked for a CPU, not a GPU the head lacks
        jobs = step_jobs(address)

    # every step ran as a Ray job of its own, and every Ray job was a step that succeeded
    steps = succeeded_steps(home)
    assert steps and set(jobs) == steps
    assert set(jobs.values()) == {"SUCCEEDED"}

    expected, got = tables(base), tables(home)
    assert sorted(got) == sorted(expected)
    for name, df in expected.items():
        assert got[name].columns == df.columns, name
        assert got[name].height == df.height, f"{name}: {got[name].height} rows on Ray, {df.height} in process"
        assert got[name].equals(df), f"{name}: values differ between the Ray run and the in-process run"


@pytest.mark.slow
def test_unreachable_ray_address_is_one_line(tmp_path):
    (port,) = free_ports(1)
    p = subprocess.run([str(EALIGN), "run", "--profile", "tiny", "--home", str(tmp_path / "h"), "--executor", "ray",
                        "--ray-address", f"http://127.0.0.1:{port}"], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)  # fmt: skip
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"http://127.0.0.1:{port}" in lines[0] and "Traceback" not in p.stderr


def test_definitions_run_steps_on_ray(monkeypatch):
    """UI and automation runs use the executor the Definitions declare: EALIGN_EXECUTOR=ray gives
    dagster-ray's, at the cluster's address, one CPU per step, the home and profile sent along."""
    for k, v in {"EALIGN_EXECUTOR": "ray", "EALIGN_RAY_ADDRESS": "http://10.0.0.5:8265", "EALIGN_HOME": "/shared/h",
                 "EALIGN_PROFILE": "paper"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    from ealign_dagster.definitions import executor

    exe = executor()
    config = exe.config_schema.resolve_config({}).value["config"]["ray"]  # validated by dagster-ray's schema
    assert exe.name == "ray" and config["address"] == "http://10.0.0.5:8265" and config["num_cpus"] == 1
    assert {"EALIGN_HOME", "EALIGN_PROFILE"} <= set(config["env_vars"])
    assert f"PATH={Path(sys.executable).parent}:${{PATH}}" in config["env_vars"]


def test_a_profile_path_reaches_the_steps_as_an_absolute_path(tmp_path, monkeypatch):
    """A Ray job (or a pod) starts in its own folder: a relative `--profile my.yaml` is sent as an
    absolute path, a profile name as the name."""
    from ealign_dagster import cli
    from ealign_dagster.core.config import load_profile

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "lab.yaml").write_text((ROOT / "assets" / "profiles" / "tiny.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for k in ("EALIGN_PROFILE", "EALIGN_HOME", "DAGSTER_HOME"):
        monkeypatch.delenv(k, raising=False)
    cli._setup_home(str(tmp_path / "h"), "mine/lab.yaml")
    sent = os.environ["EALIGN_PROFILE"]
    assert sent == str(tmp_path / "mine" / "lab.yaml")
    monkeypatch.chdir("/")  # where a step process may start
    assert load_profile(sent).name == load_profile("tiny").name
    cli._setup_home(str(tmp_path / "h"), "tiny")
    assert os.environ["EALIGN_PROFILE"] == "tiny"
