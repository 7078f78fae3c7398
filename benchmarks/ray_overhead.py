"""What running the steps on Ray costs: `ealign run --profile tiny` in process, then with `--executor
ray` on the cluster at --ray-address, each in a fresh home with fresh caches, one after the other; then
from the two homes' run storage: the wall times, and per step the launch latency on Ray (the executor
submits the step's job, STEP_WORKER_STARTING, until the step starts executing, STEP_START: Ray
schedules the job, starts a Python process, which imports Dagster and loads the code location) and the
step's own compute time in both runs.

    ray start --head --dashboard-host 127.0.0.1 --num-cpus 2     # or any cluster
    python benchmarks/ray_overhead.py --ray-address http://127.0.0.1:8265 [--profile tiny] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EALIGN = Path(sys.executable).parent / "ealign"


def run(profile: str, home: Path, extra: list[str]) -> float:
    env = {**os.environ, "EALIGN_CACHE": str(home.parent / f"{home.name}-cache")}
    started = time.perf_counter()
    subprocess.run([str(EALIGN), "run", "--profile", profile, "--home", str(home), *extra], check=True, cwd=ROOT,
                   env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def step_times(home: Path) -> dict[tuple[str, str], dict[str, float]]:
    """{(step key, partition): {event type: timestamp}} of every successful step of a home."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    kinds = {"STEP_WORKER_STARTING", "STEP_START", "STEP_SUCCESS"}
    out: dict = {}
    for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])):
        for e in instance.all_logs(r.run_id):
            if e.dagster_event and e.dagster_event.event_type_value in kinds:
                out.setdefault((e.step_key, r.tags.get("dagster/partition", "")), {})[
                    e.dagster_event.event_type_value
                ] = e.timestamp
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ray-address", required=True, help="the cluster's Jobs API, e.g. http://127.0.0.1:8265")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--keep", help="write the two homes here (default: a temporary folder)")
    args = ap.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="ray-overhead-"))
    local, ray = base / "in-process", base / "ray"
    wall_local = run(args.profile, local, [])
    wall_ray = run(args.profile, ray, ["--executor", "ray", "--ray-address", args.ray_address])

    steps_local, steps_ray = step_times(local), step_times(ray)
    launch = [t["STEP_START"] - t["STEP_WORKER_STARTING"] for t in steps_ray.values() if "STEP_WORKER_STARTING" in t]
    both = [k for k in steps_ray if k in steps_local]
    compute_ray = sum(steps_ray[k]["STEP_SUCCESS"] - steps_ray[k]["STEP_START"] for k in both)
    compute_local = sum(steps_local[k]["STEP_SUCCESS"] - steps_local[k]["STEP_START"] for k in both)
    n = len(steps_ray)
    print(f"profile {args.profile}: {n} steps; homes under {base}")
    print(f"wall in process {wall_local:.0f} s, on Ray {wall_ray:.0f} s: {(wall_ray - wall_local) / n:+.1f} s per step")
    print(f"launch on Ray (job submitted -> step running), per step: median {statistics.median(launch):.1f} s, "
          f"min {min(launch):.1f} s, max {max(launch):.1f} s, sum {sum(launch):.0f} s")  # fmt: skip
    print(f"steps' own compute, summed: in process {compute_local:.0f} s, on Ray {compute_ray:.0f} s")


if __name__ == "__main__":
    main()
