"""Runs whose process is gone: found, marked failed, their pool slots freed; slot holders named."""

import os
import socket
import subprocess
import sys

import dagster as dg

from ealign_dagster.orchestration.liveness import HOST_TAG, PID_TAG, holders, reap_dead_runs


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _run(instance, pid: int, status=dg.DagsterRunStatus.STARTED) -> str:
    run = instance.add_run(dg.DagsterRun(job_name="j", run_id=f"run-{pid}-{status.value.lower()}", status=status,
                                         tags={HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}))  # fmt: skip
    return run.run_id


def test_a_dead_runs_slot_is_freed_and_a_live_holder_is_named():
    instance = dg.DagsterInstance.ephemeral()
    storage = instance.event_log_storage
    storage.set_concurrency_slots("train", 1)
    dead = _run(instance, _dead_pid())
    assert storage.claim_concurrency_slot("train", dead, "adapters").is_claimed
    mine = _run(instance, os.getpid())
    assert not storage.claim_concurrency_slot("train", mine, "adapters_2").is_claimed  # waits behind the dead run
    (line,) = holders(instance, str(os.getpid()))
    pid = dead.split("-")[1]
    assert line.startswith(f"waiting for pool 'train' (adapters_2): held by run {dead} step adapters (pid {pid}, ")
    said = []
    assert reap_dead_runs(instance, said.append) == [dead]
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert storage.get_concurrency_info("train").claimed_slots == []
    assert instance.get_run_by_id(mine).status == dg.DagsterRunStatus.STARTED  # a live process is left alone
    assert len(said) == 1 and said[0].startswith(f"run {dead} (pid") and "marked failed" in said[0]
    assert storage.claim_concurrency_slot("train", mine, "adapters_2").is_claimed  # the wait is over
