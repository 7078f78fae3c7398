"""The graph's steps on a Ray cluster, through dagster-ray's `ray_executor`.

Each step is submitted to the cluster's Jobs API as a Ray job of its own, asking for the resources
`placement` gives it; the step process reloads the code location, opens the Dagster instance and
writes to the run home, so the home (with `dagster/` and `results.duckdb`) must be the same path on
every node. Runs are orchestrated where they start (`ealign run`, or the UI's run worker) and the
partitions of a layer run side by side. A step is submitted only after its pool slot (`duckdb`,
`train`, limit 1 each) is claimed in the Dagster instance, so DuckDB writers still run one at a time
on any number of nodes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import dagster as dg

EXECUTOR_ENV, ADDRESS_ENV = "EALIGN_EXECUTOR", "EALIGN_RAY_ADDRESS"
# What a step process takes from the orchestrator's environment besides EALIGN_*, where set. Secrets (an
# endpoint's API key) are not sent with the job: set them where the Ray workers start. OMP_NUM_THREADS:
# Ray gives a step as many threads as CPUs it asks for, unless this says otherwise (floats computed
# with another number of threads differ in their last bits).
FORWARDED = ("DAGSTER_HOME", "GX_ANALYTICS_ENABLED", "HF_HOME", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
             "OMP_NUM_THREADS")  # fmt: skip


def step_env() -> list[str]:
    """The environment every step job gets from the orchestrator: EALIGN_* and FORWARDED by name (their
    values when the step is launched), and this interpreter's folder first on PATH, so that the step's
    `dagster api execute_step` runs in this environment (every node runs the same image)."""
    names = sorted(k for k in os.environ if k.startswith("EALIGN_") or k in FORWARDED)
    return [*names, f"PATH={Path(sys.executable).parent}:${{PATH}}"]  # Ray expands ${PATH} on the worker


def ray_executor() -> dg.ExecutorDefinition:
    """dagster-ray's executor for the cluster at $EALIGN_RAY_ADDRESS (Ray's own discovery when unset):
    every step asks for RAY_STEP_CPUS CPUs, model steps also for GPUs (their `dagster-ray/config` tag)."""
    from dagster_ray import ray_executor

    from ealign_dagster.orchestration.placement import RAY_STEP_CPUS

    config = {"address": os.environ.get(ADDRESS_ENV) or None, "num_cpus": RAY_STEP_CPUS, "env_vars": step_env()}
    return ray_executor.configured({"ray": config}, name="ray")


def connect(address: str | None) -> tuple[str, int, int]:
    """(the cluster's Jobs API address, its CPUs, its GPUs), or one line naming the address nobody
    answers at."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_nodes

    from ealign_dagster.core.schemas import InputError

    where = address or "$RAY_ADDRESS or the local cluster"
    if address and not address.startswith(("http://", "https://")):
        raise InputError(f"--ray-address {address}: give the Jobs API's URL, http://HOST:PORT (the head's "
                         "dashboard port, 8265 by default)")  # fmt: skip
    try:
        url = JobSubmissionClient(address).get_address()
        nodes = list_nodes(address=url, detail=True, timeout=30)
    except Exception as e:  # ConnectionError, ValueError (no cluster found), RuntimeError (no Jobs API)
        first = next((x.strip() for x in str(e).splitlines() if x.strip()), type(e).__name__)
        raise InputError(f"--ray-address {where}: no Ray Jobs API answers there ({first}); start a head "
                         "with `ray start --head --dashboard-host 127.0.0.1` (the Jobs API is its dashboard port, "
                         "8265 by default)") from None  # fmt: skip
    alive = [n.resources_total for n in nodes if n.state == "ALIVE"]
    return url, int(sum(r.get("CPU", 0) for r in alive)), int(sum(r.get("GPU", 0) for r in alive))


def use_ray(address: str | None, say) -> tuple[str, int]:
    """Point this process (and the code location it loads) at the Ray cluster; returns its address
    and CPUs.
    On a cluster without GPUs, model steps ask for none (a GPU request would wait forever): this
    must run before the code location is loaded, which reads the placement of its steps once."""
    from ealign_dagster.orchestration.placement import GPUS_ENV

    url, cpus, gpus = connect(address)
    os.environ[EXECUTOR_ENV], os.environ[ADDRESS_ENV] = "ray", url
    if not gpus and os.environ.get(GPUS_ENV, "1") != "0":
        os.environ[GPUS_ENV] = "0"
        say(f"the Ray cluster at {url} has no GPU: training and generation steps ask for a CPU only")
    return url, cpus


def asset_job():
    """The Definitions' implicit job of every asset (the one the UI runs, with the Definitions'
    executor), as a pointer each step process reconstructs it from."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repo = ReconstructableRepository.for_module("ealign_dagster.definitions", "defs", os.getcwd())
    return repo.get_reconstructable_job("__ASSET_JOB")


class FinishedRun:
    """A run executed in another process, read back from the instance: what `ealign run` reports."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str):
        self.run_id, self._instance = run_id, instance
        self.success = instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS

    def _events(self, kind: dg.DagsterEventType) -> list:
        return [e.dagster_event for e in self._instance.all_logs(self.run_id, of_type=kind) if e.dagster_event]

    def get_step_failure_events(self) -> list:
        return self._events(dg.DagsterEventType.STEP_FAILURE)

    def get_asset_check_evaluations(self) -> list:
        return [e.asset_check_evaluation_data for e in self._events(dg.DagsterEventType.ASSET_CHECK_EVALUATION)]


def run_all(runs: list[tuple[list, str | None, dict]], tags: dict, run_config: dict, width: int, verbose: bool,
            say) -> list:  # fmt: skip
    """Execute runs side by side, `width` at a time, each (asset keys, partition key, partition tags)
    orchestrated by a process of its own (Dagster's run setup is not thread-safe) with its steps on Ray;
    returns, in order, each run's FinishedRun or the line saying why it did not finish. Ctrl-C is
    passed on: each run stops its Ray jobs and ends failed."""
    import multiprocessing
    from multiprocessing.connection import wait

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no locks held by this one's threads
    results: list = [None] * len(runs)
    pending, live = list(enumerate(runs)), {}
    try:
        while pending or live:
            while pending and len(live) < width:
                i, (keys, partition, partition_tags) = pending.pop(0)
                receive, send = spawn.Pipe(duplex=False)
                args = (send, [k.to_user_string() for k in keys], {**tags, **partition_tags}, run_config, verbose)
                proc = spawn.Process(target=_execute, args=args)
                proc.start()
                send.close()
                what = ", ".join(k.to_user_string() for k in keys[:3]) + " ..." * (len(keys) > 3)
                live[receive] = (i, proc, what + (f" [{partition}]" if partition else ""), time.time())
            for receive in wait(list(live)):
                i, proc, what, started = live.pop(receive)
                try:
                    run_id, error = receive.recv()
                except EOFError:
                    run_id, error = None, f"{what}: its process exited with {proc.exitcode} before the run finished"
                proc.join()
                if error:
                    results[i] = error
                    continue
                results[i] = FinishedRun(dg.DagsterInstance.get(), run_id)
                say(f"ray: {what}: {'done' if results[i].success else 'failed'} in {time.time() - started:.0f} s")
    except KeyboardInterrupt:
        for _, proc, _, _ in live.values():  # a terminal's Ctrl-C reached them already; a `kill -INT` did not
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)
        for _, proc, _, _ in live.values():
            proc.join(60)
        raise
    return results


def _execute(send, keys: list[str], tags: dict, run_config: dict, verbose: bool) -> None:
    """One run in this (spawned) process; sends back (its run id, None) or (None, why it has none)."""
    if not verbose:
        from ealign_dagster.cli import quiet

        quiet()
    try:
        result = dg.execute_job(asset_job(), instance=dg.DagsterInstance.get(), tags=tags, run_config=run_config,
                                asset_selection=[dg.AssetKey.from_user_string(k) for k in keys])  # fmt: skip
    except KeyboardInterrupt:  # before the run started (once it has, Dagster handles Ctrl-C: the run ends failed)
        send.send((None, f"{', '.join(keys)}: interrupted before the run started"))
        return
    except Exception as e:
        send.send((None, f"{', '.join(keys)}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"))
        return
    send.send((result.run_id, None))
