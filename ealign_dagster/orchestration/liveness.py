"""Runs whose process is gone, and who holds a pool slot.

A killed `ealign run` (SIGKILL, a full disk, a lost machine) leaves its Dagster run STARTED and its
pool slots (`duckdb`, `train`) claimed, so every later run waits for them forever. Each run `ealign
run` starts is tagged with its host and pid; a new `ealign run` marks the runs of this host whose
process is gone failed, frees their slots and frees any slot still held by a finished run, saying so
in one line each. While a step waits for a slot, who holds it is printed every 30 s.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import dagster as dg

HOST_TAG, PID_TAG = "ealign/host", "ealign/pid"
IN_PROGRESS = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]


def owner_tags() -> dict[str, str]:
    """Tags naming the process that executes a run (in-process execution: this one)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _age(run_id: str, instance: dg.DagsterInstance) -> str:
    record = instance.get_run_record_by_id(run_id)
    start = record.start_time or (record.create_timestamp.timestamp() if record.create_timestamp else None)
    return f"{time.time() - start:.0f} s" if start else "?"


def reap_dead_runs(instance: dg.DagsterInstance, say) -> list[str]:
    """Mark this host's runs whose process is gone failed and free their pool slots; free slots held by
    runs that are no longer in progress. Returns the run ids reaped."""
    host, reaped = socket.gethostname(), []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or not pid or process_alive(int(pid)):
            continue
        age = _age(run.run_id, instance)
        instance.report_run_failed(run, f"its process (pid {pid}) is gone; marked failed by a later `ealign run`")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        say(f"run {run.run_id} (pid {pid}, started {age} ago) died without finishing: marked failed, its pool "
            "slots freed; its steps resume from their checkpoints")  # fmt: skip
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    for pool in storage.get_concurrency_keys():
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            if run is None or run.status not in IN_PROGRESS:
                storage.free_concurrency_slot_for_step(slot.run_id, slot.step_key)
                say(f"pool '{pool}': freed the slot still held by finished run {slot.run_id} (step {slot.step_key})")
    return reaped


def holders(instance: dg.DagsterInstance, waiting_pid: str) -> list[str]:
    """One line per pool where a step of this process waits: who holds the slot, and for how long."""
    storage, lines = instance.event_log_storage, []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        mine = [
            p for p in info.pending_steps if p.assigned_timestamp is None and _pid(instance, p.run_id) == waiting_pid
        ]
        if not mine:
            continue
        held = [f"run {s.run_id} step {s.step_key} (pid {_pid(instance, s.run_id) or '?'}, "
                f"{_age(s.run_id, instance)})" for s in info.claimed_slots]  # fmt: skip
        lines.append(f"waiting for pool '{pool}' ({mine[0].step_key}): held by {', '.join(held) or 'nobody yet'}")
    return lines


def _pid(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.tags.get(PID_TAG) if run else None


class PoolWatch(threading.Thread):
    """While this process's runs wait for a pool slot, print who holds it every `every` seconds."""

    def __init__(self, instance: dg.DagsterInstance, say, every: float = 30.0):
        super().__init__(daemon=True)
        self.instance, self.say, self.every = instance, say, every

    def run(self):
        pid = str(os.getpid())
        while True:  # a daemon thread: it ends with the process
            time.sleep(self.every)
            try:
                for line in holders(self.instance, pid):
                    self.say(line)
            except Exception as e:  # the watch must never take the run down
                self.say(f"pool watch: {e}")
