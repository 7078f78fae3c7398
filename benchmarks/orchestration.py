"""Dagster's share of `ealign run`: runs `ealign run --profile tiny` in a fresh home, then reads the
run storage of that home and splits the wall time into the steps' own compute (STEP_START to
STEP_SUCCESS/FAILURE, as Dagster records them) and everything around it: process start-up (import
dagster, load the definitions, open the instance, sync partitions), each run's set-up and tear-down
outside its steps, the gaps between runs, and the summary printed at the end. Then, in the same run,
the cost of one no-op `dg.materialize` (a one-asset graph, and the same asset inside ealign's whole
graph) and of one `context.log.info` event, and what they predict for the runs just measured.

    python benchmarks/orchestration.py [--profile tiny] [--home DIR] [--noop-runs 5] [--per-run]

Why not the same work in plain Python: every asset body takes Dagster's context (run id, partition
key, upstream data versions read from the instance for lineage), so a Dagster-free copy of the work
would be a second implementation, not a measurement. The steps' compute time as Dagster records it is
the work itself plus the Dagster calls made inside the step (events written by `context.log`, the
materialization event); the overhead printed is therefore a lower bound, and the estimate of the
in-step event cost gives the upper one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _seconds(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def _ts(value) -> float:
    return value.timestamp() if hasattr(value, "timestamp") else float(value)


def run_timeline(dagster_home: Path) -> list[dict]:
    """Per run of the instance, in creation order: creation/end times, its steps' compute windows,
    its partition and asset steps, and the timestamps of every event it stored."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    runs = []
    for rec in sorted(instance.get_run_records(), key=lambda r: _ts(r.create_timestamp)):
        rid = rec.dagster_run.run_id
        steps = [(s.step_key, s.start_time, s.end_time) for s in instance.get_run_step_stats(rid) if s.start_time]
        runs.append(
            {
                "run_id": rid,
                "created": _ts(rec.create_timestamp),
                "end": rec.end_time or max(e for _, _, e in steps),
                "steps": steps,
                "partition": rec.dagster_run.tags.get("dagster/partition", ""),
                "events": [e.timestamp for e in instance.all_logs(rid)],
            }
        )
    return runs


def _layer(run: dict) -> str:
    """The assets a run materializes, without partitions and checks: which layer of the graph it is."""
    names = sorted({k.split(".")[0] for k, _, _ in run["steps"]})
    return ",".join(names)[:60] or "(no steps)"


def noop_costs(repeats: int, log_events: int) -> dict:
    """Seconds per no-op `dg.materialize` on a persistent instance like `ealign run`'s (sqlite storage
    in a DAGSTER_HOME): with a one-asset graph and inside ealign's whole graph; and per log event."""
    import dagster as dg

    from ealign_dagster.cli import DAGSTER_YAML

    home = Path(tempfile.mkdtemp(prefix="ealign-noop-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["EALIGN_HOME"] = str(home)
    os.environ["EALIGN_PROFILE"] = "tiny"
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))

    @dg.asset
    def noop() -> None:
        return None

    @dg.asset
    def chatty(context) -> None:  # unannotated: this module's annotations are strings
        for i in range(log_events):
            context.log.info(f"event {i}")

    from ealign_dagster.definitions import defs

    full = defs()
    graph = list(full.assets or []) + list(full.asset_checks or [])

    def timed(assets, selection=None, resources=None) -> float:
        start = time.perf_counter()
        result = dg.materialize(assets, selection=selection, instance=instance, resources=resources)
        assert result.success
        return time.perf_counter() - start

    timed([noop])  # first run: one-time imports and table creation
    alone = statistics.median(timed([noop]) for _ in range(repeats))
    in_graph = statistics.median(timed(graph + [noop], [noop.key], full.resources) for _ in range(repeats))
    with_logs = statistics.median(timed([chatty]) for _ in range(repeats))
    return {"alone": alone, "in_graph": in_graph, "per_event": (with_logs - alone) / log_events, "assets": len(graph)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--home", help="a fresh folder for the run (default: a new temporary one)")
    ap.add_argument("--noop-runs", type=int, default=5, help="repeats per no-op measurement (median)")
    ap.add_argument("--log-events", type=int, default=200, help="events logged by the per-event measurement")
    ap.add_argument("--per-run", action="store_true", help="one line per run, not only per layer")
    ap.add_argument("--noop-only", action="store_true", help="only the no-op run and log event costs")
    args = ap.parse_args()
    if args.noop_only:
        c = noop_costs(args.noop_runs, args.log_events)
        print(f"no-op dg.materialize: {c['alone'] * 1000:.0f} ms alone, {c['in_graph'] * 1000:.0f} ms inside ealign's "
              f"graph ({c['assets']} assets and checks); one log event {c['per_event'] * 1000:.1f} ms")  # fmt: skip
        return
    home = Path(args.home or tempfile.mkdtemp(prefix="ealign-orch-")).resolve()
    if home.exists() and any(home.iterdir()):
        ap.error(f"{home} is not empty: the measurement needs a fresh home")

    env = {**os.environ, "EALIGN_HOME": str(home)}
    python_start = _seconds([sys.executable, "-c", "pass"])
    dagster_start = (
        _seconds([sys.executable, "-c", "import ealign_dagster.definitions as d; d.defs()"], env) - python_start
    )

    cmd = [sys.executable, "-m", "ealign_dagster.cli", "run", "--profile", args.profile, "--home", str(home)]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    t1 = time.time()
    wall = t1 - t0
    if out.returncode != 0:  # the runs it made are still measured; the stop is printed with them
        last = [x for x in out.stderr.splitlines() if x.startswith("ealign:")][-1:] or out.stderr.splitlines()[-1:]
        print(f"ealign run exited {out.returncode}: {' '.join(last)[:300]}; measuring the runs it made")

    runs = run_timeline(home / "dagster")
    step_s = sum(e - s for r in runs for _, s, e in r["steps"])
    in_runs = sum(r["end"] - r["created"] for r in runs)
    startup = runs[0]["created"] - t0
    between = sum(b["created"] - a["end"] for a, b in zip(runs, runs[1:]))
    tail = t1 - runs[-1]["end"]
    around_steps = in_runs - step_s
    overhead = wall - step_s - tail - python_start  # the interpreter and the summary are paid without Dagster too
    in_step_events = sum(
        1 for r in runs for t in r["events"] if any(s < t < e for _, s, e in r["steps"])
    )  # events written while a step was running (its logs, materializations, check results)

    print(f"`ealign run --profile {args.profile}` in a fresh home: {len(runs)} runs, {wall:.1f} s wall")
    print(f"  python start-up {python_start:.1f} s (not Dagster)")
    print(
        f"  start-up before the first run {startup - python_start:.1f} s "
        f"(of which import dagster + ealign definitions, measured alone: {dagster_start:.1f} s)"
    )
    print(f"  inside runs {in_runs:.1f} s = steps' compute {step_s:.1f} s + run set-up/tear-down {around_steps:.1f} s")
    print(f"  between runs {between:.1f} s (building each run's job, reading its result)")
    print(f"  after the last run {tail:.1f} s (summary tables, exit; not Dagster)")
    print(
        f"plain work (steps' compute) {step_s:.1f} s vs through Dagster {wall - tail - python_start:.1f} s: "
        f"difference {overhead:.1f} s, Dagster's share {overhead / wall * 100:.0f}% of the wall time"
    )

    by_layer: dict[str, list] = defaultdict(list)
    for r in runs:
        by_layer[_layer(r)].append(r)
    print("\nper layer (runs, wall inside runs, steps' compute, overhead inside runs):")
    for name, rs in by_layer.items():
        inside = sum(r["end"] - r["created"] for r in rs)
        comp = sum(e - s for r in rs for _, s, e in r["steps"])
        print(f"  {name:<60} {len(rs):>3} runs {inside:7.1f} s {comp:7.1f} s {inside - comp:6.1f} s")
    if args.per_run:
        print("\nper run:")
        for r in runs:
            comp = sum(e - s for _, s, e in r["steps"])
            inside = r["end"] - r["created"]
            print(
                f"  {_layer(r)[:40]:<40} {r['partition'][:30]:<30} {inside:6.1f} s {comp:6.1f} s {inside - comp:5.1f} s"
            )

    costs = noop_costs(args.noop_runs, args.log_events)
    predicted = len(runs) * costs["in_graph"]
    events_s = in_step_events * costs["per_event"]
    print(
        f"\nno-op dg.materialize: {costs['alone'] * 1000:.0f} ms alone, {costs['in_graph'] * 1000:.0f} ms inside "
        f"ealign's graph ({costs['assets']} assets and checks); one log event {costs['per_event'] * 1000:.1f} ms"
    )
    print(
        f"predicted fixed cost of {len(runs)} runs: {predicted:.1f} s ({predicted / wall * 100:.0f}% of the wall) "
        f"vs measured around steps and between runs {around_steps + between:.1f} s"
    )
    print(
        f"events written inside steps: {in_step_events}, about {events_s:.1f} s; Dagster's share with them "
        f"{(overhead + events_s) / wall * 100:.0f}% (upper estimate), without {overhead / wall * 100:.0f}% (lower)"
    )


if __name__ == "__main__":
    main()
