"""A FAILED or CANCELED run records no asset event on the PostgreSQL event log (issue 21 item 4).

An orphaned Celery step (its run worker killed, the run failed by the dead-run recovery) went on to
record its materialization into the failed run. The event log refuses it, naming run and asset; the
run's status is read in the writing transaction under a share lock on the run's row, so a run
failed while a write waits is refused, not recorded (the lock wait is observed in
``pg_stat_activity``, no wall-clock pacing).
"""

from __future__ import annotations

import threading

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from pairs_assets.errors import RunClosedError
from pairs_assets_tests.deploy import services
from pairs_assets_tests.resources.test_event_log_failures import KEY, _evaluation, _materialization

pytestmark = [pytest.mark.postgres]


def _pg_instance(tmp_path, url: str):
    storage = {"module": "pairs_assets.instance.postgres", "config": {"postgres_url": url}}
    return dg.instance_for_test(
        temp_dir=str(tmp_path),
        overrides={
            "run_storage": {**storage, "class": "PairsPostgresRunStorage"},
            "event_log_storage": {**storage, "class": "PairsPostgresEventLogStorage"},
            "schedule_storage": {**storage, "class": "PairsPostgresScheduleStorage"},
        },
    )


def _recorded(instance, run_id: str) -> tuple[list, list]:
    in_log = [
        r.event_log_entry.dagster_event.partition
        for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    ]
    catalog = [r.partition_key for r in instance.fetch_materializations(KEY, limit=100).records if r.run_id == run_id]
    return in_log, catalog


@pytest.mark.parametrize("close", ["failed", "canceled"])
def test_a_closed_runs_materialization_and_check_evaluation_are_refused(tmp_path, close):
    with services.postgres_databases("dagster") as dbs, _pg_instance(tmp_path, dbs["dagster"]) as instance:
        run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="run-1", status=DagsterRunStatus.STARTED))
        instance.handle_new_event(_materialization("run-1", "a"))  # open: recorded
        if close == "failed":
            instance.report_run_failed(run, message="test: its run worker died")
        else:
            instance.report_run_canceled(run, message="test: canceled")
        status = "FAILURE" if close == "failed" else "CANCELED"
        with pytest.raises(
            RunClosedError, match=rf"run run-1 is {status}: 1 asset materialization event\(s\) of raw_bars\[b\] refused"
        ):
            instance.handle_new_event(_materialization("run-1", "b"))
        with pytest.raises(
            RunClosedError,
            match=rf"run run-1 is {status}: 3 asset check evaluation event\(s\) of raw_bars:bars_unique refused",
        ):
            instance.event_log_storage.store_event_batch([_evaluation("run-1", p) for p in "abc"])
        assert _recorded(instance, "run-1") == (["a"], ["a"])
        assert (
            instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(KEY, "bars_unique"), limit=10)
            == []
        )
        # another run is not affected
        instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="run-2", status=DagsterRunStatus.STARTED))
        instance.handle_new_event(_materialization("run-2", "b"))
        assert _recorded(instance, "run-2") == (["b"], ["b"])


def test_a_run_failed_while_a_write_waits_for_its_row_refuses_the_write(tmp_path):
    with services.postgres_databases("dagster") as dbs, _pg_instance(tmp_path, dbs["dagster"]) as instance:
        instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="run-1", status=DagsterRunStatus.STARTED))
        instance.handle_new_event(_materialization("run-1", "a"))  # tables and the storage's checks warmed up
        engine = sa.create_engine(dbs["dagster"])
        outcome: list[BaseException | None] = []
        try:
            with engine.connect() as failing:
                # the run being failed: its row locked, its status changed, not yet committed
                tx = failing.begin()
                failing.execute(sa.text("UPDATE runs SET status = 'FAILURE' WHERE run_id = 'run-1'"))

                def write():
                    try:
                        instance.event_log_storage.store_event_batch([_materialization("run-1", "b")])
                        outcome.append(None)
                    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                        outcome.append(exc)

                writer = threading.Thread(target=write)
                writer.start()

                def waiting_for_the_row():
                    with engine.connect() as probe:
                        return probe.execute(
                            sa.text(
                                "select count(*) from pg_stat_activity where datname = current_database() "
                                "and wait_event_type = 'Lock' and query like '%FOR SHARE%'"
                            )
                        ).scalar()

                services.wait_until(waiting_for_the_row, 60, "the write to wait for the run's row")
                assert outcome == []  # it waits: the run's status is not decided yet
                tx.commit()
            writer.join(timeout=60)
        finally:
            engine.dispose()
        assert len(outcome) == 1 and isinstance(outcome[0], RunClosedError), outcome
        assert "run run-1 is FAILURE" in str(outcome[0])
        assert _recorded(instance, "run-1") == (["a"], ["a"])


def test_a_run_failed_between_the_check_and_the_insert_waits_for_the_write(tmp_path):
    """The other order of the race: the write has read the run open and not inserted yet when the
    run is failed. The failing UPDATE of the run's row waits for the write's transaction (the share
    lock is held from the check to the commit), so the materialization is recorded before the run
    is FAILED, never after: the hook pauses the write between its check and its insert, and the
    run's failure is observed waiting on the lock (``pg_stat_activity``) until the write commits."""
    with services.postgres_databases("dagster") as dbs, _pg_instance(tmp_path, dbs["dagster"]) as instance:
        run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="run-1", status=DagsterRunStatus.STARTED))
        instance.handle_new_event(_materialization("run-1", "a"))  # tables and the storage's checks warmed up
        storage = instance.event_log_storage
        checked, proceed = threading.Event(), threading.Event()
        check = storage.refuse_closed_runs

        def check_then_pause(conn, events):
            check(conn, events)  # the run is read open, its row share-locked
            checked.set()
            assert proceed.wait(120), "the test never let the write go on"

        storage.refuse_closed_runs = check_then_pause
        outcomes: dict[str, BaseException | None] = {}

        def in_thread(name, fn):
            def target():
                try:
                    fn()
                    outcomes[name] = None
                except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                    outcomes[name] = exc

            thread = threading.Thread(target=target, name=name)
            thread.start()
            return thread

        engine = sa.create_engine(dbs["dagster"])
        try:
            writer = in_thread("write", lambda: storage.store_event_batch([_materialization("run-1", "b")]))
            assert checked.wait(120), "the write never reached its check"
            failer = in_thread("fail", lambda: instance.report_run_failed(run, message="test: failed mid-write"))

            def failure_waits_or_ended():
                if not failer.is_alive():
                    return "ended"
                with engine.connect() as probe:
                    waiting = probe.execute(
                        sa.text(
                            "select count(*) from pg_stat_activity where datname = current_database() "
                            "and wait_event_type = 'Lock' and query like 'UPDATE runs%'"
                        )
                    ).scalar()
                return "waits" if waiting else None

            # without the lock held to the commit, the failure would end here, the write still to come
            assert services.wait_until(failure_waits_or_ended, 60, "the run's failure to wait or end") == "waits"
            with engine.connect() as probe:
                assert probe.execute(sa.text("select status from runs where run_id = 'run-1'")).scalar() == "STARTED"
            proceed.set()
            writer.join(timeout=60)
            failer.join(timeout=60)
        finally:
            proceed.set()
            engine.dispose()
        assert outcomes == {"write": None, "fail": None}, outcomes
        assert instance.get_run_by_id("run-1").status == DagsterRunStatus.FAILURE
        assert _recorded(instance, "run-1") == (["a", "b"], ["b", "a"])  # b recorded while the run was open
        with pytest.raises(RunClosedError, match="run run-1 is FAILURE"):
            storage.store_event_batch([_materialization("run-1", "c")])
