"""Issue 21 item 1, the worker half: a Celery worker killed during a step left the step waiting for a
new worker for ever (the run worker lives, so its run heartbeat never went stale). The step's own
heartbeat, written by the process that executes it, tells the run worker when its worker is gone.

Here the two halves against a real instance's storage: the heartbeat a worker process writes, and
the run worker's judgement of it (a clock of the test's own: no waiting on the wall clock). The whole
thing — a real worker SIGKILLed while ``gru_models`` trains on PostgreSQL — is in
``deploy/test_production.py``.
"""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from pairs_assets.errors import StepWorkerLostError
from pairs_assets.instance.run_recovery import _WatchedStep
from pairs_assets.instance.step_heartbeat import start_step_heartbeat, step_heartbeat_key, step_heartbeat_settings


class _PendingResult:
    """What dagster-celery's loop holds for a step in flight: a Celery result, here never ready
    until the test finishes it, counting revocations."""

    def __init__(self):
        self.done, self.revoked = False, 0

    def ready(self):
        return self.done

    def get(self):
        return ["event"]

    def revoke(self):
        self.revoked += 1


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def _beat(instance, task_id: str, t: float, worker: str = "pairs-1@host", pid: int = 4242) -> None:
    value = json.dumps({"t": t, "worker": worker, "pid": pid})
    instance.daemon_cursor_storage.set_cursor_values({step_heartbeat_key(task_id): value})


def _watch(instance, clock, result=None):
    result = result or _PendingResult()
    return result, _WatchedStep(result, instance, "gru_models", "task-1", window_s=300, check_every_s=30, clock=clock)


def test_a_step_whose_heartbeat_stops_for_the_window_fails_naming_step_task_worker_and_is_revoked(instance):
    clock = _Clock()
    result, watched = _watch(instance, clock)
    _beat(instance, "task-1", 1.0)
    assert not watched.ready()  # first sight of the heartbeat
    for step in range(1, 10):  # it changes every 30 s: a working worker, however long the step
        clock.now += 30
        _beat(instance, "task-1", 1.0 + 30 * step)
        assert not watched.ready()
    clock.now += 300  # silent for exactly the window: still within it
    assert not watched.ready()
    clock.now += 30
    assert watched.ready()
    with pytest.raises(StepWorkerLostError) as lost:
        watched.get()
    message = str(lost.value)
    assert message.startswith("step gru_models: its Celery worker (pairs-1@host, pid 4242) stopped reporting 330 s ago")
    assert "task task-1 revoked" in message and "PAIRS_STEP_HEARTBEAT_WINDOW_S" in message
    assert result.revoked == 1


def test_a_queued_step_with_no_heartbeat_is_waiting_not_lost(instance):
    """No worker took the task yet (all busy, or none started): that is a queue, not a lost worker."""
    clock = _Clock()
    _result, watched = _watch(instance, clock)
    for _ in range(100):
        clock.now += 60
        assert not watched.ready()


def test_a_finished_step_is_ready_with_its_events_whatever_its_heartbeat(instance):
    clock = _Clock()
    result, watched = _watch(instance, clock)
    _beat(instance, "task-1", 1.0)
    assert not watched.ready()
    clock.now += 10_000
    result.done = True
    assert watched.ready() and watched.get() == ["event"]
    assert result.revoked == 0


def test_a_step_taken_over_by_another_worker_goes_on(instance):
    """The broker hands a killed worker's unacknowledged task back; a second worker that takes it up
    within the window writes the same task's heartbeat again: the step is not lost."""
    clock = _Clock()
    _result, watched = _watch(instance, clock)
    _beat(instance, "task-1", 1.0, worker="pairs-1@host")
    assert not watched.ready()
    clock.now += 290
    _beat(instance, "task-1", 500.0, worker="pairs-2@other")
    assert not watched.ready()
    clock.now += 290
    assert not watched.ready()


def test_the_heartbeat_is_read_once_per_check_interval(instance):
    clock = _Clock()
    _result, watched = _watch(instance, clock)
    _beat(instance, "task-1", 1.0)
    assert not watched.ready()
    reads = []
    storage = instance.daemon_cursor_storage
    original = storage.get_cursor_values
    storage.get_cursor_values = lambda keys: reads.append(keys) or original(keys)
    try:
        for _ in range(29):  # the loop's 1 s ticks
            clock.now += 1
            watched.ready()
        assert reads == []
        clock.now += 1
        watched.ready()
        assert len(reads) == 1
    finally:
        storage.get_cursor_values = original


def test_the_worker_side_heartbeat_writes_its_worker_and_pid_and_keeps_beating_until_stopped(instance):
    key = step_heartbeat_key("task-9")
    halt = start_step_heartbeat(instance.get_ref(), "task-9", "pairs-7@host", interval_s=0.05)
    try:
        first = instance.daemon_cursor_storage.get_cursor_values({key})[key]
        assert json.loads(first)["worker"] == "pairs-7@host" and json.loads(first)["pid"] == os.getpid()

        def _changed():
            return instance.daemon_cursor_storage.get_cursor_values({key})[key] != first

        from pairs_assets_tests.deploy.services import wait_until

        wait_until(_changed, 120, "the step heartbeat to beat again", poll=0.05)
    finally:
        halt()
    stopped = instance.daemon_cursor_storage.get_cursor_values({key})[key]
    assert json.loads(stopped)["t"] >= json.loads(first)["t"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PAIRS_STEP_HEARTBEAT_S": "0"}, "PAIRS_STEP_HEARTBEAT_S='0': expected a positive number of seconds"),
        ({"PAIRS_STEP_HEARTBEAT_S": "soon"}, "PAIRS_STEP_HEARTBEAT_S='soon': expected a positive number of seconds"),
        ({"PAIRS_STEP_HEARTBEAT_WINDOW_S": "-5"}, "PAIRS_STEP_HEARTBEAT_WINDOW_S='-5': expected a positive number"),
        ({"PAIRS_STEP_HEARTBEAT_WINDOW_S": "inf"}, "PAIRS_STEP_HEARTBEAT_WINDOW_S='inf': expected a positive number"),
        (
            {"PAIRS_STEP_HEARTBEAT_S": "30", "PAIRS_STEP_HEARTBEAT_WINDOW_S": "60"},
            "PAIRS_STEP_HEARTBEAT_WINDOW_S=60 is shorter than three beats of PAIRS_STEP_HEARTBEAT_S=30",
        ),
    ],
)
def test_bad_heartbeat_settings_are_refused_naming_the_variable(environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        step_heartbeat_settings(environ)


def test_heartbeat_settings_default_to_the_run_heartbeats():
    assert step_heartbeat_settings({}) == (30.0, 300.0)
    assert step_heartbeat_settings({"PAIRS_STEP_HEARTBEAT_S": "2", "PAIRS_STEP_HEARTBEAT_WINDOW_S": "30"}) == (
        2.0,
        30.0,
    )
