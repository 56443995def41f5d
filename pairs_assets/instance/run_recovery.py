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

Orphaned steps. With the Celery executor a step runs on a ``pairs worker``, not in the run worker:
killing the run worker (or failing its run) leaves the step executing. Three things keep it from
writing into the closed run:

- the run worker records each step's Celery task id on the run (tag ``pairs/celery_tasks``) before
  it sends the task (:func:`with_run_heartbeat` wraps dagster-celery's loop), and a cancel revokes
  the tasks *with* termination (dagster-celery revokes without: a running step went on to the end);
- :func:`fail_dead_runs` revokes the tasks of every run it fails, and the sensor revokes those of
  runs FAILED or CANCELED since its last tick (:func:`revoke_closed_runs_tasks`): the worker kills
  the step's process (SIGKILL) and drops a task still queued;
- :func:`ensure_run_open`: the event logs refuse an asset materialization, observation or check
  evaluation of a FAILED or CANCELED run (on PostgreSQL in the transaction that writes it, under a
  share lock on the run's row), and ``gru_models`` checks before it registers an MLflow version.
  Revocation is a broadcast that a worker may miss (down, restarting); this check is not.

Lost workers. The reverse case: the run worker lives, the Celery worker executing one of its steps
dies (kill -9, its machine lost). The broker hands the unacknowledged task back to the queue, where
it waits for a worker that may never come, and dagster-celery's loop waits for its result for ever.
Every step on a worker therefore writes a *step heartbeat* (``pairs/step_heartbeat/<task id>``,
every ``PAIRS_STEP_HEARTBEAT_S``) from the process that executes it
(:mod:`pairs_assets.instance.step_heartbeat`, connected to Celery's task signals by ``pairs worker``), and the run worker watches the heartbeats
of its started steps (:class:`_WatchedStep`): one that stops changing for
``PAIRS_STEP_HEARTBEAT_WINDOW_S``, by the run worker's own clock, fails the step with
:class:`~pairs_assets.errors.StepWorkerLostError` and so the run, and its task is revoked. A task
still queued (no heartbeat yet: every worker busy, or none started) is waiting, not lost. If
another worker takes the handed-back task over in time, its heartbeat resumes and the run goes on.
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
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa
from dagster import Executor

# where a pid means one process, and what a closed run is: shared with the event logs (a lower layer)
from pairs_assets.instance.liveness import (  # noqa: F401 - re-exported
    CLOSED_STATUSES,
    boot_id,
    closed_run_message,
    ensure_run_open,
    process_alive_since,
    this_host,
)
from pairs_assets.instance.step_heartbeat import (  # the heartbeat constants re-exported
    DEFAULT_HEARTBEAT_WINDOW_S,
    HEARTBEAT_INTERVAL_S,
    STEP_HEARTBEAT_WINDOW_ENV,
    step_heartbeat_key,
    step_heartbeat_settings,
)
from pairs_assets.instance.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

HOST_TAG = "pairs/run_host"
#: ``{step key: Celery task id}`` (JSON) of a run's steps sent to Celery workers.
CELERY_TASKS_TAG = "pairs/celery_tasks"
#: Set once a run's Celery tasks were revoked (the ids, comma-separated).
CELERY_REVOKED_TAG = "pairs/celery_revoked"


_log = logging.getLogger(__name__)


def heartbeat_key(run_id: str) -> str:
    return f"pairs/run_heartbeat/{run_id}"


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
    if name == socket.gethostname() and boot != boot_id():
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
    repair = getattr(instance.event_log_storage, "repair_interrupted_batches", None)
    if repair is not None:  # the SQLite event log: batches a killed writer left between its commits
        for batch, run_id, n in repair():
            _log.warning(
                "event log: batch %s of run %s, interrupted between its commits, settled (%d catalog events written)",
                batch,
                run_id,
                n,
            )
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
        revoke_run_tasks(instance, run.run_id)
        dead.append(found)
    return dead


# --- orphaned steps ---------------------------------------------------------------------------
def _celery_app():
    """A Celery app on ``PAIRS_CELERY_BROKER`` (the workers' broker), or None where it is unset."""
    broker = os.environ.get("PAIRS_CELERY_BROKER", "")
    if not broker:
        return None
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    from pairs_assets.instance.worker import celery_app_settings

    backend = os.environ.get("PAIRS_CELERY_BACKEND", "rpc://")
    executor = CeleryExecutor(
        retries=RetryMode.DISABLED, broker=broker, backend=backend, config_source=celery_app_settings()
    )
    return make_app(executor.app_args())  # as pairs_assets.worker builds the workers' app


def run_task_ids(run: dg.DagsterRun) -> dict[str, str]:
    """``{step key: Celery task id}`` the run worker recorded for ``run`` (empty without Celery)."""
    import json

    try:
        value = json.loads(run.tags.get(CELERY_TASKS_TAG, "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def revoke_run_tasks(instance: dg.DagsterInstance, run_id: str, app=None) -> list[str]:
    """Revoke the Celery tasks of run ``run_id`` with termination (SIGKILL to a running step's process;
    a queued one is dropped) and tag the run ``pairs/celery_revoked``. Returns the ids revoked: none
    where the run sent no task, they were revoked already, or no broker is configured (logged)."""
    run = instance.get_run_by_id(run_id)
    if run is None or CELERY_REVOKED_TAG in run.tags:
        return []
    ids = sorted(set(run_task_ids(run).values()))
    if not ids:
        return []
    app = app or _celery_app()
    if app is None:
        _log.warning("run %s: Celery tasks %s not revoked: PAIRS_CELERY_BROKER is not set here", run_id, ", ".join(ids))
        return []
    app.control.revoke(ids, terminate=True, signal="SIGKILL")
    instance.add_run_tags(run_id, {CELERY_REVOKED_TAG: ",".join(ids)})
    _log.warning("run %s is %s: revoked its Celery tasks %s", run_id, run.status.value, ", ".join(ids))
    return ids


def revoke_closed_runs_tasks(instance: dg.DagsterInstance, since: float, app=None) -> dict[str, list[str]]:
    """Revoke the tasks of every run FAILED or CANCELED (updated) since ``since`` (epoch seconds) whose
    tasks were not revoked yet: ``{run id: task ids}``. The sensor calls it with its previous tick."""
    revoked: dict[str, list[str]] = {}
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=list(CLOSED_STATUSES), updated_after=datetime.fromtimestamp(since, tz=UTC))
    )
    for record in records:
        run = record.dagster_run
        if CELERY_TASKS_TAG not in run.tags or CELERY_REVOKED_TAG in run.tags:
            continue
        app = app or _celery_app()
        ids = revoke_run_tasks(instance, run.run_id, app=app)
        if ids:
            revoked[run.run_id] = ids
    return revoked


@contextmanager
def run_heartbeat(
    instance: dg.DagsterInstance, run_id: str, interval_s: float = HEARTBEAT_INTERVAL_S
) -> Iterator[None]:
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


class _WatchedStep:
    """A step's Celery result that also becomes ready when the worker executing the step is lost.

    dagster-celery's loop asks ``ready()`` every second; every ``check_every_s`` this reads the step's
    heartbeat. None yet: the task is queued (waiting for a worker is not a loss). A value that has
    not changed for ``window_s`` of this process's clock (no clock is compared across machines): the
    worker is lost, ``ready()`` turns True and ``get()`` revokes the task and raises
    :class:`~pairs_assets.errors.StepWorkerLostError`, which the loop records as the step's error
    and the run fails with.
    """

    def __init__(
        self, result, instance, step_key: str, task_id: str, window_s: float, check_every_s: float, clock=time.monotonic
    ):
        self._result, self._instance, self._clock = result, instance, clock
        self._step_key, self._task_id = step_key, task_id
        self._window_s, self._check_every_s = window_s, check_every_s
        self._seen: str | None = None
        self._changed_at = 0.0
        self._next_check = 0.0
        self._lost: str | None = None

    def ready(self) -> bool:
        if self._result.ready():
            return True
        now = self._clock()
        if self._lost is None and now >= self._next_check:
            self._next_check = now + self._check_every_s
            self._judge(now)
        return self._lost is not None

    def _judge(self, now: float) -> None:
        import json

        key = step_heartbeat_key(self._task_id)
        try:
            value = self._instance.daemon_cursor_storage.get_cursor_values({key}).get(key)
        except sa.exc.SQLAlchemyError as exc:  # the database, not the worker: judge at the next check
            _log.warning("step %s: step heartbeat not read (%s)", self._step_key, exc)
            return
        if value is None:
            return
        if value != self._seen:
            self._seen, self._changed_at = value, now
            return
        silent = now - self._changed_at
        if silent <= self._window_s:
            return
        try:
            last = json.loads(value)
            who = f"{last.get('worker', '?')}, pid {last.get('pid', '?')}"
        except (ValueError, AttributeError):
            who = "unknown worker"
        self._lost = (
            f"step {self._step_key}: its Celery worker ({who}) stopped reporting {silent:.0f} s ago (step heartbeat "
            f"window {self._window_s:.0f} s, {STEP_HEARTBEAT_WINDOW_ENV}): the worker died, its machine was lost or "
            f"it lost the database; task {self._task_id} revoked. Start a `pairs worker` and rerun the partition"
        )

    def get(self, *args, **kwargs):
        if self._lost is not None and not self._result.ready():
            from pairs_assets.errors import StepWorkerLostError

            self._result.revoke()
            _log.error("%s", self._lost)
            raise StepWorkerLostError(self._lost)
        return self._result.get(*args, **kwargs)

    def __getattr__(self, name):  # revoke() and the rest: the Celery result's own
        return getattr(self._result, name)


def _submit_tracked_task(app, plan_context, step, queue, priority, known_state):
    """dagster-celery's ``_submit_task`` (dagster_celery/executor.py, 0.29) with two changes: the
    task id is chosen here and recorded on the run (:data:`CELERY_TASKS_TAG`) *before* the task is
    sent, so a run worker killed right after cannot leave an untracked step; and the returned
    result's ``revoke`` terminates (dagster-celery's loop revokes on a cancel without ``terminate``,
    which leaves a running step to finish and write); and the result is watched for a lost worker
    (:class:`_WatchedStep`)."""
    import functools
    import json
    import uuid

    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import pack_value
    from dagster_celery.tasks import create_task

    run_id = plan_context.dagster_run.run_id
    instance = plan_context.instance
    task_id = str(uuid.uuid4())
    run = instance.get_run_by_id(run_id)
    tasks = run_task_ids(run) if run is not None else {}
    tasks[step.key] = task_id
    instance.add_run_tags(run_id, {CELERY_TASKS_TAG: json.dumps(tasks, sort_keys=True)})
    execute_step_args = ExecuteStepArgs(
        job_origin=plan_context.reconstructable_job.get_python_origin(),
        run_id=run_id,
        step_keys_to_execute=[step.key],
        instance_ref=instance.get_ref(),
        retry_mode=plan_context.executor.retries.for_inner_plan(),
        known_state=known_state,
        print_serialized_events=True,
    )
    signature = create_task(app).si(
        execute_step_args_packed=pack_value(execute_step_args),
        executable_dict=plan_context.reconstructable_job.to_dict(),
    )
    result = signature.apply_async(task_id=task_id, priority=priority, queue=queue, routing_key=f"{queue}.execute_plan")
    result.revoke = functools.partial(result.revoke, terminate=True, signal="SIGKILL")
    interval, window = step_heartbeat_settings()
    return _WatchedStep(result, instance, step.key, task_id, window_s=window, check_every_s=interval)


class _HeartbeatExecutor(Executor):
    """Runs the wrapped executor inside :func:`run_heartbeat` (in the run worker, the process that
    orchestrates the steps: with Celery, the steps' workers do not keep a dead run alive). A Celery
    executor's steps are sent by :func:`_submit_tracked_task` (task ids on the run, cancel terminates)."""

    def __init__(self, inner: Executor):
        self._inner = inner

    def execute(self, plan_context, execution_plan):
        with run_heartbeat(plan_context.instance, plan_context.run_id):
            from dagster_celery.core_execution_loop import core_celery_execution_loop
            from dagster_celery.executor import CeleryExecutor

            if isinstance(self._inner, CeleryExecutor):
                yield from core_celery_execution_loop(
                    plan_context, execution_plan, step_execution_fn=_submit_tracked_task
                )
            else:
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
