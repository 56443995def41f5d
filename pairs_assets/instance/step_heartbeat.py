"""Step heartbeats: a step executing on a Celery worker says it is alive (see ``run_recovery``'s
*Lost workers*). Written from the process that executes the step, read by the run worker; here,
below both ``run_recovery`` and ``worker``, so each imports it and neither the other."""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import dagster as dg
import sqlalchemy as sa

#: A run worker's heartbeat interval (``run_recovery.run_heartbeat``), and a step's default one.
HEARTBEAT_INTERVAL_S = 30.0
# Ten missed heartbeats: a loaded machine or a database hiccup delays a few, never ten.
DEFAULT_HEARTBEAT_WINDOW_S = 300.0
STEP_HEARTBEAT_ENV = "PAIRS_STEP_HEARTBEAT_S"
STEP_HEARTBEAT_WINDOW_ENV = "PAIRS_STEP_HEARTBEAT_WINDOW_S"

_log = logging.getLogger(__name__)


def step_heartbeat_key(task_id: str) -> str:
    return f"pairs/step_heartbeat/{task_id}"


def step_heartbeat_settings(environ=None) -> tuple[float, float]:
    """(interval, window) of the step heartbeats, in seconds: ``PAIRS_STEP_HEARTBEAT_S`` (default 30)
    and ``PAIRS_STEP_HEARTBEAT_WINDOW_S`` (default 300, at least three intervals). A value that is
    not a positive number, or a window shorter than three beats, raises one line naming the variable."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, default in (
        (STEP_HEARTBEAT_ENV, HEARTBEAT_INTERVAL_S),
        (STEP_HEARTBEAT_WINDOW_ENV, DEFAULT_HEARTBEAT_WINDOW_S),
    ):
        raw = environ.get(name, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{name}={raw!r}: expected a positive number of seconds")
        values[name] = value
    interval, window = values[STEP_HEARTBEAT_ENV], values[STEP_HEARTBEAT_WINDOW_ENV]
    if window < 3 * interval:
        raise ValueError(
            f"{STEP_HEARTBEAT_WINDOW_ENV}={window:g} is shorter than three beats of {STEP_HEARTBEAT_ENV}={interval:g}"
        )
    return interval, window


def start_step_heartbeat(instance_ref, task_id: str, worker: str, interval_s: float):
    """In the process executing a Celery step: write its heartbeat (``{"t", "worker", "pid"}``) now and
    every ``interval_s`` from a thread, on an instance of its own opened from ``instance_ref`` (the
    step's). Returns the function that stops it. A failed write is logged and retried at the next beat."""
    instance = dg.DagsterInstance.from_ref(instance_ref)
    key = step_heartbeat_key(task_id)
    stop = threading.Event()

    def beat() -> None:
        value = json.dumps({"t": round(time.time(), 3), "worker": worker, "pid": os.getpid()})
        try:
            instance.daemon_cursor_storage.set_cursor_values({key: value})
        except sa.exc.SQLAlchemyError as exc:
            _log.warning("task %s: step heartbeat not recorded (%s); retrying in %.0f s", task_id, exc, interval_s)

    def loop() -> None:
        while not stop.wait(interval_s):
            beat()

    beat()
    thread = threading.Thread(target=loop, name=f"pairs-step-heartbeat-{task_id[:8]}", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(timeout=interval_s)
        instance.dispose()

    return halt
