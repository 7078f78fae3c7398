"""`ealign`: run the graph for a profile, open the UI, query results, find the report."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

DAGSTER_YAML = """\
# Written by ealign: runs and their logs persist here, so the UI shows them after restarts.
telemetry:
  enabled: false
concurrency:
  pools:
    # DuckDB writers and training steps run one at a time on a machine (pools `duckdb`, `train`).
    default_limit: 1
"""


# The console shows INFO and above (progress lines); DEBUG events stay in the instance for the UI.
LOG_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _quiet_warnings() -> None:
    """Dagster's beta/preview notices are for developers of the graph, not its users."""
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)


def _setup_home(home: str | None, profile: str | None = None) -> Path:
    root = Path(home or os.environ.get("EALIGN_HOME", ".ealign")).resolve()
    dagster_home = root / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML)
    os.environ["EALIGN_HOME"] = str(root)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if profile:  # a path as an absolute one: step processes (Ray jobs, pods) start in other folders
        from ealign_dagster.core.config import profile_path

        named = Path(profile).suffix not in (".yaml", ".yml")
        os.environ["EALIGN_PROFILE"] = profile if named else str(profile_path(profile))
    return root


def plan(defs, select: str | None):
    """Materializable assets in the selection, in dependency order, grouped into runs: one run per
    unpartitioned layer, one run per partition key of a partitioned layer."""
    import dagster as dg

    from ealign_dagster.core.schemas import InputError

    graph = defs.resolve_asset_graph()
    try:
        keys = (dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()).resolve(graph)
    except Exception as e:
        raise InputError(f"--select '{select}': {_one_line(e)}") from None
    if not keys:
        raise InputError(f"--select '{select}': matches no asset (e.g. 'key:splits', 'key:adapters+')")
    order = [k for level in graph.toposorted_asset_keys_by_level for k in level if k in keys]
    order = [k for k in order if graph.get(k).is_materializable]
    layers: list[tuple[object, list]] = []
    for k in order:
        pdef = graph.get(k).partitions_def
        if layers and layers[-1][0] == pdef:
            layers[-1][1].append(k)
        else:
            layers.append((pdef, [k]))
    observable = [
        k for k in graph.get_all_asset_keys() if graph.get(k).is_observable and not graph.get(k).is_materializable
    ]
    return observable, layers


def _failures(result) -> list[str]:
    out = []
    for ev in result.get_step_failure_events():
        err = ev.step_failure_data.error
        msg = (err.cause.message if err and err.cause else err.message if err else "").strip()
        first = next((x.strip() for x in msg.splitlines() if x.strip()), "")
        out.append(f"step {ev.step_key} failed: {first}")
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            md = ev.metadata
            rows = md.get("failing_rows")
            out.append(
                f"check {ev.asset_key.to_user_string()}.{ev.check_name} failed"
                f"{' for ' + str(md['scope'].value) if 'scope' in md else ''}: "
                f"{md['unexpected_count'].value if 'unexpected_count' in md else '?'} rows, e.g. "
                f"{str(rows.value[:3]) if rows is not None else ''}"
            )
    return out


def _succeeded(result) -> bool:
    """Whether a run succeeded with every check passing; if not, one line per failure."""
    if not result.success or any(not e.passed for e in result.get_asset_check_evaluations()):
        for line in _failures(result) or [f"run {result.run_id} failed"]:
            print(f"ealign: {line}", file=sys.stderr)
        return False
    return True


def _say(line: str) -> None:
    print(f"ealign: {line}", file=sys.stderr, flush=True)


def cmd_run(args) -> int:
    root = _setup_home(args.home, args.profile)
    import dagster as dg

    from ealign_dagster.core.config import load_profile
    from ealign_dagster.definitions import defs as load_defs
    from ealign_dagster.orchestration.liveness import PoolWatch, owner_tags, reap_dead_runs
    from ealign_dagster.orchestration.partitions import sync_constitutions
    from ealign_dagster.summary import print_summary, print_timing

    load_profile(args.profile)  # a bad profile fails here, before any run starts
    if args.executor == "ray":  # before the code location loads: it reads the executor and placement once
        from ealign_dagster.orchestration.ray_runs import use_ray

        address, cpus = use_ray(args.ray_address, _say)
        _say(f"steps run on the Ray cluster at {address} ({cpus} CPUs: up to {max(cpus, 1)} runs at a time)")

    defs = load_defs()
    instance = dg.DagsterInstance.get()
    sync_constitutions(instance, _say)  # every constitution file is a partition; a removed one retires
    reap_dead_runs(instance, _say)  # a killed run's pool slots would block every later run
    all_assets = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = defs.resources
    observable, layers = plan(defs, args.select)
    tags = {"ealign/profile": args.profile, **owner_tags()}
    PoolWatch(instance, _say).start()

    run_ids: list[str] = []
    started = time.time()

    def run(selection, partition_key=None) -> bool:
        result = dg.materialize(
            all_assets,
            selection=selection,
            partition_key=partition_key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
            tags=tags,
            run_config=LOG_INFO,
        )
        run_ids.append(result.run_id)
        return _succeeded(result)

    if args.executor == "ray":
        from ealign_dagster.orchestration.ray_runs import run_all

        def run_layer(keys, pdef) -> bool:  # the layer's partitions side by side, their steps on Ray
            parts = pdef.get_partition_keys(dynamic_partitions_store=instance) if pdef else [None]
            runs = [(keys, p, pdef.get_tags_for_partition_key(p) if pdef else {}) for p in parts]
            ok = True
            for result in run_all(runs, tags, LOG_INFO, max(cpus, 1), args.verbose, _say):
                if isinstance(result, str):
                    _say(f"run failed: {result}")
                    ok = False
                    continue
                run_ids.append(result.run_id)
                ok = _succeeded(result) and ok
            return ok

        if observable and not run_layer(observable, None):
            return 1
        for pdef, keys in layers:
            if not run_layer(keys, pdef):
                return 1
        print_summary(root)
        print_timing(instance, run_ids, time.time() - started)
        return 0

    if observable and not run(observable):
        return 1
    for pdef, keys in layers:
        for key in pdef.get_partition_keys(dynamic_partitions_store=instance) if pdef else [None]:
            if not run(keys, key):
                return 1
    print_summary(root)
    print_timing(instance, run_ids, time.time() - started)
    return 0


def cmd_sql(args) -> int:
    import duckdb
    import polars as pl

    from ealign_dagster.core.paths import Home
    from ealign_dagster.core.store import Store, read_only_statement
    from ealign_dagster.summary import text_table

    root = Path(args.home or os.environ.get("EALIGN_HOME", ".ealign")).resolve()
    if not root.is_dir():
        print(f"ealign sql: {root}: no such home (run `ealign run --home {args.home or root}` first)", file=sys.stderr)
        return 1
    try:
        df = Store(Home.at(root).db).query(read_only_statement(args.sql), read_only=True)
    except (duckdb.Error, FileNotFoundError, ValueError) as e:
        print(f"ealign sql: {_one_line(e)}", file=sys.stderr)
        return 1
    if args.csv:
        nested = [c for c, t in df.schema.items() if t.is_nested()]  # CSV has no lists: write them as text
        df = df.with_columns(pl.Series(c, [None if v is None else str(v) for v in df[c].to_list()]) for c in nested)
        sys.stdout.write(df.write_csv())
    else:
        print(text_table(df))
    return 0


def cmd_ui(args) -> int:
    _setup_home(args.home, args.profile)
    if args.executor == "ray":  # the code location reads it: runs launched from the UI run their steps on Ray
        from ealign_dagster.orchestration.ray_runs import use_ray

        _say(f"runs launched from the UI run their steps on the Ray cluster at {use_ray(args.ray_address, _say)[0]}")
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "ealign_dagster.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(args.port),
    ]
    return _supervise(subprocess.Popen(cmd, start_new_session=True))


def _supervise(proc: subprocess.Popen, grace_s: float = 20.0) -> int:
    """Wait for a child in its own process group; SIGTERM or SIGINT to ealign stops the whole group
    (dagster dev, its webserver, its daemon): politely, then after `grace_s` for good."""
    import signal

    def stop(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    return proc.wait()


def cmd_report(args) -> int:
    root = _setup_home(args.home)
    reports = sorted((root / "artifacts" / "reports").glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    if not reports:
        print(f"ealign report: no report under {root / 'artifacts' / 'reports'} yet", file=sys.stderr)
        return 1
    print(reports[-1])
    return 0


def _one_line(e: BaseException) -> str:
    """An error as one line: its first non-empty line, the type named unless it is a user's error."""
    from ealign_dagster.core.chat import EndpointError
    from ealign_dagster.core.schemas import InputError

    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    text = lines[0] if lines else type(e).__name__
    if isinstance(e, (InputError, EndpointError, ValueError, OSError)) or not lines:
        return text
    return f"{type(e).__name__}: {text}"


class _QuietConsole(logging.Logger):
    """Dagster's console logger ('dagster') without its ERROR records (step failures with their
    stack traces): `ealign run` prints one line per failure instead; --verbose keeps them."""

    def handle(self, record: logging.LogRecord) -> None:
        if self.name != "dagster" or record.levelno < logging.ERROR:
            super().handle(record)


def quiet() -> None:
    """One line per failure instead of stack traces, no notices for developers of the graph."""
    logging.setLoggerClass(_QuietConsole)
    _quiet_warnings()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ealign", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    home = {"help": "run home (default: $EALIGN_HOME or ./.ealign)"}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show stack traces of failures")
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])

    executor = argparse.ArgumentParser(add_help=False)
    executor.add_argument("--executor", choices=["in_process", "ray"],
                          default="ray" if os.environ.get("EALIGN_EXECUTOR") == "ray" else "in_process",
                          help="where steps run: this process (default) or a Ray cluster ($EALIGN_EXECUTOR)")  # fmt: skip
    executor.add_argument("--ray-address", default=os.environ.get("EALIGN_RAY_ADDRESS"),
                          help="the Ray cluster's Jobs API, e.g. http://HEAD:8265 (default: $EALIGN_RAY_ADDRESS, "
                          "$RAY_ADDRESS or the cluster `ray start` started on this machine)")  # fmt: skip

    p = sub.add_parser("run", help="materialize the graph (all partitions) for a profile", parents=[common, executor])
    p.add_argument("--profile", default="demo", help="tiny | demo | paper | path/to/profile.yaml")
    p.add_argument("--home", **home)
    p.add_argument("--select", help="Dagster asset selection, e.g. 'splits' or '+splits'")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("ui", help="Dagster UI and daemon on 127.0.0.1", parents=[common, executor])
    p.add_argument("--home", **home)
    p.add_argument("--profile", default=os.environ.get("EALIGN_PROFILE", "demo"))
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser("sql", help="read-only SQL on results.duckdb")
    p.add_argument("--home", **home)
    p.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.add_argument("sql")
    p.set_defaults(fn=cmd_sql)

    p = sub.add_parser("report", help="path of the latest HTML report")
    p.add_argument("--home", **home)
    p.set_defaults(fn=cmd_report)

    args = parser.parse_args(argv)
    if not args.verbose:
        quiet()
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("ealign: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line; the stack trace with --verbose
        from ealign_dagster.core.schemas import InputError

        if args.verbose:
            raise
        print(f"ealign: {_one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, (InputError, FileNotFoundError)) else 1


if __name__ == "__main__":
    sys.exit(main())
