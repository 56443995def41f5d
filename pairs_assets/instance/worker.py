"""The Celery app behind ``pairs worker``: dagster-celery's step task on the configured broker.

A worker and the ``celery`` executor (:func:`pairs_assets.jobs.executor_for`) must agree on the
broker, the result backend and the Celery settings, so both build them from the same inputs:
``PAIRS_CELERY_BROKER``, ``PAIRS_CELERY_BACKEND`` (default ``rpc://``) and
:func:`celery_app_settings` (here, below the jobs that use it). The worker never writes the broker URL (which may
hold a password) to disk, unlike ``dagster-celery worker start``, which writes a config module.

Each task rebuilds the job from its code origin (``pairs_assets.definitions``) and opens the run's
Dagster instance from the reference the run sends, so a worker needs the same environment as the
code server: ``PAIRS_*``, ``MLFLOW_TRACKING_URI``, the instance's database variables, and a
``PAIRS_IO_BASE`` every worker can read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery


def celery_app_settings() -> dict:
    """Celery settings shared by the executor and ``pairs worker`` (they must agree)."""
    return {
        # a step can train GRUs for minutes: take one task at a time, acknowledge it when done
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "broker_connection_retry_on_startup": True,
    }


def make_worker_app(broker: str, backend: str = "rpc://") -> Celery:
    """A Celery app with dagster-celery's ``execute_plan`` task, configured as the executor is.

    Parameters
    ----------
    broker : str
        Broker URL (``amqp://…`` for RabbitMQ, ``redis://…``).
    backend : str
        Result backend URL (``rpc://`` returns results over the broker).

    Returns
    -------
    celery.Celery
    """
    # celery and dagster-celery load only in `pairs worker` (the jobs import the settings above)
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    executor = CeleryExecutor(
        retries=RetryMode.DISABLED, broker=broker, backend=backend, config_source=celery_app_settings()
    )
    app = make_app(executor.app_args())
    # Dagster's console logger writes each event line (its level in the line) to the step's stderr;
    # Celery's default redirect re-logged every such line at WARNING, DEBUG events included (issue 21
    # item 12). Unredirected, the lines keep their own level and Celery's own records theirs.
    app.conf.worker_redirect_stdouts = False
    create_task(app)
    _connect_step_heartbeats()
    return app


_beating: dict[str, object] = {}  # task id -> the function that stops its heartbeat (in the executing process)


def _connect_step_heartbeats() -> None:
    """Each ``execute_plan`` task writes a step heartbeat while it runs, from the process executing it
    (Celery's ``task_prerun``/``task_postrun`` fire there), so the run worker can tell a step whose
    worker died from one that is still working (``run_recovery._WatchedStep``). Connected once per
    process, whatever the number of apps."""
    from celery import signals
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import unpack_value
    from dagster_celery.config import TASK_EXECUTE_PLAN_NAME

    from pairs_assets.instance.step_heartbeat import start_step_heartbeat, step_heartbeat_settings

    def started(sender=None, task_id=None, task=None, kwargs=None, **_):
        if getattr(task, "name", None) != TASK_EXECUTE_PLAN_NAME or not task_id:
            return
        args = unpack_value((kwargs or {})["execute_step_args_packed"], as_type=ExecuteStepArgs)
        interval, _window = step_heartbeat_settings()
        worker = getattr(task.request, "hostname", None) or "?"
        _beating[task_id] = start_step_heartbeat(args.instance_ref, task_id, worker, interval)

    def finished(sender=None, task_id=None, **_):
        halt = _beating.pop(task_id, None)
        if halt is not None:
            halt()

    signals.task_prerun.connect(started, weak=False, dispatch_uid="pairs_step_heartbeat_start")
    signals.task_postrun.connect(finished, weak=False, dispatch_uid="pairs_step_heartbeat_stop")
