"""Runs left STARTED by a process that died (kill -9, OOM, a lost machine): find them, mark them failed.

Dagster's run monitoring cannot see these here: the default run launcher has no worker health check
(``DefaultRunLauncher.supports_check_run_worker_health`` is False, so the monitoring daemon never
fails a STARTED run), and a run executed in process (every ``pairs`` command) has no launcher at all.

What proves a run dead:

- its process on this host is gone. The pid is the one on the run's RUN_START event (the process
  that executed it); the host is the ``pairs/run_host`` tag (hostname, boot id, pid namespace) that the run
  worker writes when it starts (:func:`with_run_heartbeat`). A run without that tag is judged on this
  host only on a local (SQLite) instance, whose runs all execute on this machine.
- its host restarted since (same hostname, another boot id).
- it ran on another host and its run worker has not written its heartbeat (every
  ``HEARTBEAT_INTERVAL_S``) for ``heartbeat_window_s``. The heartbeat is a thread of the run worker,
  not of a step: a 20-minute load keeps it fresh, however long one step is silent.

Anything else is left alone. The ``dead_run_recovery`` sensor (sensors/dead_runs.py) runs
:func:`fail_dead_runs` every minute inside the daemon's loop, on SQLite and PostgreSQL alike; the
``pairs`` commands run it when they open the instance.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from dagster import Executor

from pairs_assets.instance.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG

HOST_TAG = "pairs/run_host"
HEARTBEAT_INTERVAL_S = 30.0
# Ten missed heartbeats: a loaded machine or a database hiccup delays a few, never ten.
DEFAULT_HEARTBEAT_WINDOW_S = 300.0

_log = logging.getLogger(__name__)


def heartbeat_key(run_id: str) -> str:
    return f"pairs/run_heartbeat/{run_id}"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "unknown"


def this_host() -> str:
    """``<hostname>/<boot id>/<pid namespace>``: where a pid means one process. A restarted machine
    is another host (its pids start over); so is a container that shares the machine's hostname
    (``network_mode: host``) but numbers its processes apart."""
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}"


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pid: int
    partitions: str  # "A...B", a key, or "" for an unpartitioned run
    host: str = ""
    reason: str = "which is gone"

    def describe(self) -> str:
        what = f"{self.job_name} {self.partitions}".strip()
        where = f" on host {self.host}" if self.host else ""
        return f"run {self.run_id} ({what}) was left STARTED by process {self.pid}{where}, {self.reason}: marked failed"


def _process_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in epoch seconds) of ``pid`` from /proc (Linux); None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, IndexError, ValueError):
        return None


def process_alive_since(pid: int, since: float) -> bool:
    """Whether a live process ``pid`` exists that started no later than ``since`` (epoch seconds).

    A zombie (killed, not yet reaped by its parent — a run worker of a code server that is still up)
    is not alive: it executes nothing and will never report again.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    state = _process_state(pid)
    if state is None:
        return True
    letter, started = state
    return letter not in ("Z", "X") and started <= since + 1.0


def _is_local_instance(instance: dg.DagsterInstance) -> bool:
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    return records[0].event_log_entry.dagster_event.pid


def _why_dead(
    instance, record, pid: int, host: str | None, now: float, window: float, judge_heartbeats: bool
) -> tuple[str, str] | None:
    """(host, reason) when the run's process is provably gone, else None."""
    me = this_host()
    started = record.start_time or record.create_timestamp.timestamp()
    if host is None:
        if not _is_local_instance(instance):
            return None  # no host recorded and runs may execute anywhere: nothing proves it dead
        host = me
    if host == me:
        if pid == os.getpid() or process_alive_since(pid, started):
            return None
        return host, "which is gone"
    name, _, rest = host.partition("/")
    boot = rest.partition("/")[0]
    if name == socket.gethostname() and boot != _boot_id():
        return host, f"and that host has restarted since (now {me})"
    if not judge_heartbeats:
        return None
    beat = instance.daemon_cursor_storage.get_cursor_values({heartbeat_key(record.dagster_run.run_id)})
    last = float(beat.get(heartbeat_key(record.dagster_run.run_id), started))
    if now - last <= window:
        return None
    return host, f"whose run worker last reported {now - last:.0f} s ago (heartbeat window {window:.0f} s)"


def fail_dead_runs(
    instance: dg.DagsterInstance,
    *,
    now: float | None = None,
    heartbeat_window_s: float = DEFAULT_HEARTBEAT_WINDOW_S,
    judge_heartbeats: bool = True,
) -> list[DeadRun]:
    """Mark FAILURE every STARTED run whose executing process is provably gone (see the module doc).

    Parameters
    ----------
    instance : the Dagster instance (SQLite or PostgreSQL storage).
    now : the time to judge heartbeats at (epoch seconds; default: the clock). Tests pass their own.
    heartbeat_window_s : how long a run worker on another host may stay silent before its run is failed.
    judge_heartbeats : False where the caller cannot vouch that heartbeats could be written all along
        (the sensor after a gap in its own ticks: the database or the daemon was down, the workers too
        may have been unable to write). Runs on this host are judged by their pid regardless.

    Returns
    -------
    The runs marked failed, each with its job, pid, host, partition (range) and why. One query
    (the STARTED runs) when nothing runs.
    """
    now = time.time() if now is None else now
    dead = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = _run_pid(instance, run.run_id)
        if pid is None:
            continue
        verdict = _why_dead(instance, record, pid, run.tags.get(HOST_TAG), now, heartbeat_window_s, judge_heartbeats)
        if verdict is None:
            continue
        tags = run.tags
        if ASSET_PARTITION_RANGE_START_TAG in tags:
            partitions = f"{tags[ASSET_PARTITION_RANGE_START_TAG]}...{tags[ASSET_PARTITION_RANGE_END_TAG]}"
        else:
            partitions = tags.get(PARTITION_NAME_TAG, "")
        found = DeadRun(
            run_id=run.run_id, job_name=run.job_name, pid=pid, partitions=partitions, host=verdict[0], reason=verdict[1]
        )
        instance.report_run_failed(run, message=found.describe() + "; rerun it to record what the store holds")
        dead.append(found)
    return dead


@contextmanager
def run_heartbeat(instance: dg.DagsterInstance, run_id: str, interval_s: float = HEARTBEAT_INTERVAL_S) -> Iterator[None]:
    """Tag the run with this host and write its heartbeat every ``interval_s`` until the block ends.

    A failed write (a locked SQLite file, a database restart) is logged and retried at the next
    beat: the window is ten beats long.
    """
    key = heartbeat_key(run_id)

    def beat() -> None:
        try:
            instance.daemon_cursor_storage.set_cursor_values({key: repr(time.time())})
        except sa.exc.SQLAlchemyError as exc:
            _log.warning("run %s: heartbeat not recorded (%s); retrying in %.0f s", run_id, exc, interval_s)

    instance.add_run_tags(run_id, {HOST_TAG: this_host()})
    beat()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            beat()

    thread = threading.Thread(target=loop, name=f"pairs-heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s)


class _HeartbeatExecutor(Executor):
    """Runs the wrapped executor inside :func:`run_heartbeat` (in the run worker, the process that
    orchestrates the steps: with Celery, the steps' workers do not keep a dead run alive)."""

    def __init__(self, inner: Executor):
        self._inner = inner

    def execute(self, plan_context, execution_plan):
        with run_heartbeat(plan_context.instance, plan_context.run_id):
            yield from self._inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def __getattr__(self, name):
        return getattr(self._inner, name)


def with_run_heartbeat(executor_def: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """``executor_def`` whose run worker records its host and a heartbeat (same name and config).

    Relies on dagster's ``Executor`` base class (``dagster._core.executor.base``): a wrapper has to
    be one. ``execute_in_process`` / ``materialize`` replace any executor with their own; their runs
    get no host tag and are judged on this host on a local instance only.
    """
    inner_fn = executor_def.executor_creation_fn
    if inner_fn is None:
        raise ValueError(f"executor {executor_def.name!r} has no creation function to wrap")
    return dg.ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,
        requirements=executor_def.get_requirements,
        executor_creation_fn=lambda init_context: _HeartbeatExecutor(inner_fn(init_context)),
        description=executor_def.description,
    )
