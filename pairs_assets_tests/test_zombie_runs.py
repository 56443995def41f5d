"""kill -9 during a run (issue 9 item 8; issue 21 items 1, 3): the run is marked failed, not STARTED forever.

Two real processes each execute a run on one local instance and block inside a step; one is
killed with SIGKILL. The sweep marks that run FAILURE (naming process and partition) and leaves
the live one alone; a second sweep finds nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from pairs_assets.instance.run_recovery import HOST_TAG, fail_dead_runs, heartbeat_key, this_host
from sensors.dead_runs import dead_run_recovery

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    import dagster as dg

    @dg.op
    def block(context) -> None:
        Path(sys.argv[1]).write_text(context.run_id)
        threading.Event().wait()  # until killed

    @dg.job
    def blocking_job():
        block()

    with dg.DagsterInstance.get() as instance:
        blocking_job.execute_in_process(instance=instance, tags={"dagster/partition": sys.argv[2]})
    """
)


def _await(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"the run did not reach its step within {timeout}s"
        time.sleep(0.05)
    return path.read_text()


@contextmanager
def _two_workers(tmp_path: Path, script: Path, env: dict) -> Iterator[tuple[dict, dict]]:
    """Run ``script`` as two real processes (energy and consumer, each a run of 2022-12-28) until
    both reached their step: ``(processes, run ids)``; killed and reaped on exit."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"{name}.started"), f"2022-12-28|{name}"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("energy", "consumer")
    }
    try:
        yield processes, {name: _await(tmp_path / f"{name}.started", p) for name, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=60)
            p.stderr.close()


@pytest.fixture()
def instance_home(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
        pass  # the storage exists before two processes open it
    return home


def test_a_run_killed_with_sigkill_is_marked_failed_and_a_live_one_is_left_alone(tmp_path, instance_home):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "DAGSTER_HOME": str(instance_home)}
    with _two_workers(tmp_path, script, env) as (processes, run_ids):
        processes["energy"].send_signal(signal.SIGKILL)
        processes["energy"].wait(timeout=60)

        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(instance_home))) as instance:
            killed = instance.get_run_by_id(run_ids["energy"])
            assert killed.status == dg.DagsterRunStatus.STARTED  # what kill -9 leaves behind

            (dead,) = fail_dead_runs(instance)

            assert dead.run_id == run_ids["energy"] and dead.pid == processes["energy"].pid
            assert dead.partitions == "2022-12-28|energy"
            assert instance.get_run_by_id(run_ids["energy"]).status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(run_ids["energy"], of_type=dg.DagsterEventType.RUN_FAILURE).records
            assert (
                f"process {processes['energy'].pid} on host {this_host()}, which is gone"
                in failure[0].event_log_entry.dagster_event.message
            )
            assert instance.get_run_by_id(run_ids["consumer"]).status == dg.DagsterRunStatus.STARTED  # alive: untouched
            assert fail_dead_runs(instance) == []


# A run launched as the daemon launches one: the job's executor (wrapped as the definitions wrap
# the code location's) runs in this process, which tags the run with its host and keeps a heartbeat.
LAUNCHED_WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    import dagster as dg
    from pairs_assets.instance.run_recovery import with_run_heartbeat

    @dg.op
    def block(context) -> None:
        Path(sys.argv[1]).write_text(context.run_id)
        threading.Event().wait()  # until killed

    @dg.job(executor_def=with_run_heartbeat(dg.in_process_executor))
    def blocking_job():
        block()

    if __name__ == "__main__":
        with dg.DagsterInstance.get() as instance:
            dg.execute_job(dg.reconstructable(blocking_job), instance=instance, tags={"dagster/partition": sys.argv[2]})
    """
)


def _postgres_home(tmp_path, postgres_url) -> tuple[Path, dict[str, str]]:
    """A DAGSTER_HOME with the production instance settings (deploy/dagster.yaml) on a fresh database."""
    home = tmp_path / "dagster_pg"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
    return home, {"PAIRS_DAGSTER_DB_URL": postgres_url}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_home(request, tmp_path):
    if request.param == "sqlite":
        home = tmp_path / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {}
    else:
        home, env = _postgres_home(tmp_path, request.getfixturevalue("postgres_url"))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the instance settings read the URL from the environment
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
            pass  # the storage exists before two processes open it
        yield home, env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def two_launched_runs(tmp_path, storage_home):
    """Two real processes each executing a launched-style run that blocks in its step."""
    home, extra_env = storage_home
    script = tmp_path / "launched_worker.py"
    script.write_text(LAUNCHED_WORKER)
    env = {**os.environ, **extra_env, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    with _two_workers(tmp_path, script, env) as (processes, run_ids):
        yield home, processes, run_ids


def _failure_message(instance, run_id: str) -> str:
    (record,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return record.event_log_entry.dagster_event.message


def test_one_sensor_tick_fails_a_killed_launched_run_and_leaves_a_live_one(two_launched_runs):
    home, processes, run_ids = two_launched_runs
    processes["energy"].send_signal(signal.SIGKILL)
    processes["energy"].wait(timeout=60)

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.get_run_by_id(run_ids["energy"]).tags[HOST_TAG] == this_host()  # written by the run worker
        assert instance.get_run_by_id(run_ids["energy"]).status == dg.DagsterRunStatus.STARTED

        result = dead_run_recovery(dg.build_sensor_context(instance=instance))

        assert instance.get_run_by_id(run_ids["energy"]).status == dg.DagsterRunStatus.FAILURE
        message = _failure_message(instance, run_ids["energy"])
        pid = processes["energy"].pid
        assert (
            f"run {run_ids['energy']} " in message and f"process {pid} on host {this_host()}, which is gone" in message
        )
        assert run_ids["energy"] in result.skip_message
        assert instance.get_run_by_id(run_ids["consumer"]).status == dg.DagsterRunStatus.STARTED  # alive: untouched
        assert "no STARTED run" in dead_run_recovery(dg.build_sensor_context(instance=instance)).skip_message


@pytest.mark.parametrize("where", ["another machine", "a container sharing this hostname"])
def test_a_run_on_another_host_fails_only_after_its_heartbeat_window(two_launched_runs, where):
    """Judged by a logical clock: a killed run's host tag is rewritten to a host this process cannot
    see, so only its (stopped) heartbeat can tell."""
    hostname, boot, _namespace = this_host().split("/")
    elsewhere = "elsewhere.example/0000/1" if where == "another machine" else f"{hostname}/{boot}/another-pid-namespace"
    home, processes, run_ids = two_launched_runs
    processes["energy"].send_signal(signal.SIGKILL)
    processes["energy"].wait(timeout=60)
    run_id = run_ids["energy"]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        last = float(instance.daemon_cursor_storage.get_cursor_values({heartbeat_key(run_id)})[heartbeat_key(run_id)])
        instance.add_run_tags(run_id, {HOST_TAG: elsewhere})

        assert fail_dead_runs(instance, now=last + 299, heartbeat_window_s=300) == []  # silent < window: alive
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

        (dead,) = fail_dead_runs(instance, now=last + 301, heartbeat_window_s=300)

        assert dead.run_id == run_id and dead.host == elsewhere
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        message = _failure_message(instance, run_id)
        assert f"on host {elsewhere}, whose run worker last reported 301 s ago (heartbeat window 300 s)" in message
        assert instance.get_run_by_id(run_ids["consumer"]).status == dg.DagsterRunStatus.STARTED


def test_a_run_whose_host_restarted_is_failed(two_launched_runs):
    home, _processes, run_ids = two_launched_runs
    run_id = run_ids["consumer"]
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        hostname, _boot, namespace = this_host().split("/")
        instance.add_run_tags(run_id, {HOST_TAG: f"{hostname}/a-previous-boot/{namespace}"})

        dead = [d for d in fail_dead_runs(instance) if d.run_id == run_id]

        assert dead and "restarted since" in dead[0].reason
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_killed_process_not_yet_reaped_is_not_alive():
    """A run worker killed under a code server that is still up stays a zombie until reaped."""
    from pairs_assets.instance.run_recovery import process_alive_since

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert process_alive_since(child.pid, time.time())
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped: a zombie
        os.kill(child.pid, 0)  # the pid still answers signals
        assert not process_alive_since(child.pid, time.time())
    finally:
        child.wait(timeout=60)
        child.stdin.close()


def test_the_sensor_judges_heartbeats_only_after_watching_without_a_gap(two_launched_runs):
    """After a gap in its own ticks (first tick, daemon or database down) the sensor gives run workers
    on other hosts a window to report again; a run whose process on this host is gone is failed anyway."""
    home, processes, run_ids = two_launched_runs
    for name in ("energy", "consumer"):
        processes[name].send_signal(signal.SIGKILL)
        processes[name].wait(timeout=60)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        foreign = run_ids["energy"]
        instance.add_run_tags(foreign, {HOST_TAG: "elsewhere.example/0000/1"})
        instance.daemon_cursor_storage.set_cursor_values({heartbeat_key(foreign): repr(time.time() - 3600)})

        first = dg.build_sensor_context(instance=instance)  # no cursor: its first tick
        dead_run_recovery(first)
        assert instance.get_run_by_id(foreign).status == dg.DagsterRunStatus.STARTED  # not judged yet
        assert instance.get_run_by_id(run_ids["consumer"]).status == dg.DagsterRunStatus.FAILURE  # its pid: judged

        late = dg.build_sensor_context(instance=instance, cursor=repr(time.time() - 3600))  # a tick an hour ago
        dead_run_recovery(late)
        assert instance.get_run_by_id(foreign).status == dg.DagsterRunStatus.STARTED

        dead_run_recovery(dg.build_sensor_context(instance=instance, cursor=first.cursor))  # ticking: judged
        assert instance.get_run_by_id(foreign).status == dg.DagsterRunStatus.FAILURE
        assert "whose run worker last reported" in _failure_message(instance, foreign)


class _RecordingControl:
    """Stands in for a Celery app's ``control`` (the broadcast itself is exercised on a real worker in
    deploy/test_production.py): records what would be revoked and how."""

    def __init__(self):
        self.calls: list[tuple[list[str], dict]] = []
        self.control = self

    def revoke(self, ids, **kwargs):
        self.calls.append((list(ids), kwargs))


def test_tasks_of_runs_closed_since_the_last_tick_are_revoked_once_with_termination(tmp_path):
    """Issue 21 item 4: a run failed or canceled by anyone (a step failure, the UI) leaves its Celery
    steps executing; the sensor's sweep revokes them — terminating a running one — exactly once."""
    import json

    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from pairs_assets.run_recovery import CELERY_REVOKED_TAG, CELERY_TASKS_TAG, revoke_closed_runs_tasks

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:

        def add(run_id: str, tasks: dict | None, status=DagsterRunStatus.STARTED) -> DagsterRun:
            tags = {CELERY_TASKS_TAG: json.dumps(tasks)} if tasks else {}
            return instance.add_run(DagsterRun(job_name="daily_pairs", run_id=run_id, status=status, tags=tags))

        old = add("old", {"gru_models": "t-5"})
        instance.report_run_failed(old, message="test: failed before the sensor's last tick")
        (record,) = instance.get_run_records(dg.RunsFilter(run_ids=["old"]))
        since = record.update_timestamp.timestamp()  # the last tick: "old" is not newer
        failed, canceled = (
            add("failed", {"gru_models": "t-1", "garch_models": "t-2"}),
            add("canceled", {"gru_models": "t-3"}),
        )
        add("succeeded", {"gru_models": "t-4"}, status=DagsterRunStatus.SUCCESS)  # a success closes nothing
        add("running", {"gru_models": "t-6"})  # still STARTED: its tasks are its own
        local = add("local", None)
        instance.report_run_failed(failed, message="test: a step failed")
        instance.report_run_canceled(canceled, message="test: canceled in the UI")
        instance.report_run_failed(local, message="test: no Celery")
        app = _RecordingControl()
        revoked = revoke_closed_runs_tasks(instance, since, app=app)
        assert revoked == {"failed": ["t-1", "t-2"], "canceled": ["t-3"]}
        kill = {"terminate": True, "signal": "SIGKILL"}
        assert sorted(app.calls) == [(["t-1", "t-2"], kill), (["t-3"], kill)]
        assert instance.get_run_by_id("failed").tags[CELERY_REVOKED_TAG] == "t-1,t-2"
        assert revoke_closed_runs_tasks(instance, since, app=app) == {}  # once
        assert len(app.calls) == 2


def test_two_killed_cli_runs_no_longer_fill_the_local_queue(tmp_path):
    """Issue 21 item 3: under ``dg dev`` (the project's dagster.yaml: a run queue of
    ``max_concurrent_runs: 2``) two CLI runs killed with SIGKILL stayed STARTED, filled both slots and
    every run from the UI, a backfill or the schedule waited for ever. One ``dead_run_recovery`` tick —
    the daemon of ``dg dev`` runs it every minute — fails both, naming each, and frees the slots."""
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())  # what `pairs init` copies
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
        pass  # the storage exists before two processes open it
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with _two_workers(tmp_path, script, env) as (processes, run_ids):
        for process in processes.values():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            slots = (
                instance.get_concurrency_config().run_queue_config.max_concurrent_runs
            )  # as the queue daemon reads it

            def occupied() -> int:
                return len(instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))))

            assert slots == 2 and occupied() == slots  # the queue is full: a run from the UI would wait

            result = dead_run_recovery(dg.build_sensor_context(instance=instance))

            for name, run_id in run_ids.items():
                assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
                pid = processes[name].pid
                assert f"process {pid} on host {this_host()}, which is gone" in _failure_message(instance, run_id)
                assert run_id in result.skip_message
            assert occupied() == 0  # both slots free: the queue launches the next runs
