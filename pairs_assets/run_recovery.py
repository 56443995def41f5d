"""Runs left STARTED by a process that died (kill -9, OOM, power cut): find them, mark them failed.

Dagster's run monitoring (``run_monitoring:`` in dagster.yaml) cannot see these on this instance:
the default run launcher has no worker health check, and a run executed in process (every ``pairs``
command) has no launcher at all. Each run's events carry the pid of the process that executed it;
on a local (SQLite) instance that process ran on this machine, so a STARTED run whose process is
gone — or whose pid now belongs to a process started after the run — is a zombie.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pid: int
    partitions: str  # "A...B", a key, or "" for an unpartitioned run

    def describe(self) -> str:
        what = f"{self.job_name} {self.partitions}".strip()
        return f"run {self.run_id} ({what}) was left STARTED by process {self.pid}, which is gone: marked failed"


def _process_start_time(pid: int) -> float | None:
    """Start time (epoch seconds) of ``pid`` from /proc (Linux); None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def process_alive_since(pid: int, since: float) -> bool:
    """Whether a process ``pid`` exists that started no later than ``since`` (epoch seconds)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    started = _process_start_time(pid)
    return started is None or started <= since + 1.0


def _is_local_instance(instance: dg.DagsterInstance) -> bool:
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    return records[0].event_log_entry.dagster_event.pid


def fail_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Mark FAILURE every STARTED run of a local instance whose executing process is gone.

    Parameters
    ----------
    instance : the Dagster instance; anything but a local (SQLite) one is left alone (its run
        workers may live on other machines, where Dagster's own run monitoring applies).

    Returns
    -------
    The runs marked failed, each with its job, pid and partition (range).
    """
    if not _is_local_instance(instance):
        return []
    dead = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = _run_pid(instance, run.run_id)
        if pid is None or pid == os.getpid():
            continue
        if process_alive_since(pid, record.start_time or record.create_timestamp.timestamp()):
            continue
        tags = run.tags
        if ASSET_PARTITION_RANGE_START_TAG in tags:
            partitions = f"{tags[ASSET_PARTITION_RANGE_START_TAG]}...{tags[ASSET_PARTITION_RANGE_END_TAG]}"
        else:
            partitions = tags.get(PARTITION_NAME_TAG, "")
        found = DeadRun(run_id=run.run_id, job_name=run.job_name, pid=pid, partitions=partitions)
        instance.report_run_failed(run, message=found.describe() + "; rerun it to record what the store holds")
        dead.append(found)
    return dead
