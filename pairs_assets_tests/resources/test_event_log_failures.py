"""The batched SQLite event log's failure modes (issue 21 item 6).

* A writer killed between a batch's commits (a real SIGKILL of a subprocess, at the exact point,
  through the storage's hooks): the next process that writes repairs it — the asset catalog then
  holds exactly the batch's materializations the run's log holds (or, killed before the run file
  was written, neither holds any).
* A lock held by another connection past the lock timeout (a setting, short here; the lock is
  taken from the hook, no wall-clock pacing): nothing of the batch is kept, Dagster's fallback does
  not store it again, the error names the locked file; once the lock is gone the batch is stored
  once.
* A lock during check recording names the database file.
* A FAILED run's materializations are refused (item 4's guard, on SQLite).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from pairs_assets.errors import EventLogLockedError, RunClosedError
from pairs_assets.instance import sqlite as sqlite_log
from pairs_assets.instance.sqlite import PairsSqliteEventLogStorage

ROOT = Path(__file__).resolve().parents[2]
KEY = dg.AssetKey("raw_bars")
BATCH = 1_000


def _materialization(run_id: str, partition: str) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        job_name="__ASSET_JOB",
        event_specific_data=StepMaterializationData(dg.AssetMaterialization(asset_key=KEY, partition=partition)),
        step_key="raw_bars",
    )
    return EventLogEntry(
        user_message="",
        level=10,
        job_name="__ASSET_JOB",
        run_id=run_id,
        error_info=None,
        timestamp=1.0,
        step_key="raw_bars",
        dagster_event=event,
    )


def _evaluation(run_id: str, partition: str) -> EventLogEntry:
    evaluation = dg.AssetCheckEvaluation(asset_key=KEY, check_name="bars_unique", passed=True, partition=partition)
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
        job_name="__ASSET_JOB",
        event_specific_data=evaluation,
        step_key="raw_bars",
    )
    return EventLogEntry(
        user_message="",
        level=10,
        job_name="__ASSET_JOB",
        run_id=run_id,
        error_info=None,
        timestamp=2.0,
        step_key="raw_bars",
        dagster_event=event,
    )


def _partitions(n: int) -> list[str]:
    return [f"p{i:05d}" for i in range(n)]


def _counts(base_dir: Path, run_id: str) -> tuple[int, int, int]:
    """(materializations in the run's log, materializations in the catalog, pending intents), read
    from the files with sqlite3 (not through the storage: reading does not repair)."""

    def one(path: Path, sql: str, *args) -> int:
        if not path.exists():
            return 0
        with sqlite3.connect(path) as conn:
            tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
            table = sql.split(" from ")[1].split()[0]
            return conn.execute(sql, args).fetchone()[0] if table in tables else 0

    run_log = one(
        base_dir / f"{run_id}.db",
        "select count(*) from event_logs where dagster_event_type = ?",
        "ASSET_MATERIALIZATION",
    )
    catalog = one(
        base_dir / "index.db",
        "select count(*) from event_logs where dagster_event_type = ? and run_id = ?",
        "ASSET_MATERIALIZATION",
        run_id,
    )
    pending = one(base_dir / "index.db", "select count(*) from pairs_pending_batches")
    return run_log, catalog, pending


CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pairs_assets.instance import sqlite as sqlite_log
    from pairs_assets_tests.resources.test_event_log_failures import BATCH, _materialization, _partitions

    base_dir, run_id, hook = sys.argv[1:4]
    storage = sqlite_log.PairsSqliteEventLogStorage(base_dir)
    storage.store_event_batch([_materialization("warm-up", "x")])  # the files exist, the first-write repair ran
    setattr(sqlite_log, hook, lambda: os.kill(os.getpid(), signal.SIGKILL))
    storage.store_event_batch([_materialization(run_id, p) for p in _partitions(BATCH)])
    print("not killed")
    """
)


@pytest.mark.parametrize(
    "hook, before_repair, after_repair",
    [
        # the run's file committed, the catalog not: the catalog gets the batch from the run's file
        ("_after_run_commit", (BATCH, 0, 1), (BATCH, BATCH, 0)),
        # only the intent committed: neither side has the batch, the intent is dropped
        ("_after_intent_commit", (0, 0, 1), (0, 0, 0)),
    ],
)
def test_a_writer_killed_between_its_commits_is_repaired_by_the_next_process_that_writes(
    tmp_path, hook, before_repair, after_repair
):
    base_dir = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(base_dir), "run-1", hook],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert _counts(base_dir, "run-1") == before_repair

    storage = PairsSqliteEventLogStorage(str(base_dir))  # the next start
    storage.store_event_batch([_materialization("run-2", "y")])  # its first write repairs
    assert _counts(base_dir, "run-1") == after_repair
    # what Dagster reads agrees: the run's log and the catalog hold the same partitions
    in_log = {
        r.event_log_entry.dagster_event.partition
        for r in storage.get_records_for_run(
            "run-1", of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=10 * BATCH
        ).records
    }
    catalog = {
        r.event_log_entry.dagster_event.partition
        for r in storage.fetch_materializations(dg.AssetRecordsFilter(asset_key=KEY), limit=10 * BATCH).records
        if r.run_id == "run-1"
    }
    assert in_log == catalog and len(in_log) == after_repair[0]
    assert storage.repair_interrupted_batches() == []  # settled once


def test_a_live_writers_pending_batch_is_not_repaired(tmp_path):
    """An intent whose writer is alive (this process, mid-batch) is in flight: left alone."""
    storage = PairsSqliteEventLogStorage(str(tmp_path / "runs"))
    seen = []
    original = sqlite_log._after_run_commit
    sqlite_log._after_run_commit = lambda: seen.append(
        PairsSqliteEventLogStorage(str(tmp_path / "runs")).repair_interrupted_batches()
    )
    try:
        storage.store_event_batch([_materialization("run-1", p) for p in _partitions(10)])
    finally:
        sqlite_log._after_run_commit = original
    assert seen == [[]]
    assert _counts(tmp_path / "runs", "run-1") == (10, 10, 0)


class _IndexLock:
    """A write lock on a file taken by another connection (``BEGIN IMMEDIATE``), held until released."""

    def __init__(self, path: Path):
        self.path, self.conn = path, None

    def take(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None


@pytest.fixture()
def locked_instance(tmp_path, monkeypatch):
    """An instance on the batched event log with a 0.2 s lock timeout and Dagster's event batching on."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", str(BATCH))
    base_dir = tmp_path / "history" / "runs"
    overrides = {
        "event_log_storage": {
            "module": "pairs_assets.instance.sqlite",
            "class": "PairsSqliteEventLogStorage",
            "config": {"base_dir": str(base_dir), "lock_timeout_s": 0.2},
        }
    }
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        yield instance, base_dir


def _handle_as_dagster_batches(instance, events) -> None:
    """Hand ``events`` to the instance as a step's batch (what a range run does): Dagster buffers
    them and calls ``store_event_batch``; on an error it falls back to ``store_event`` one by one."""
    from dagster._core.events import DagsterEventBatchMetadata

    for n, event in enumerate(events):
        instance.handle_new_event(event, batch_metadata=DagsterEventBatchMetadata("batch-1", n == len(events) - 1))


@pytest.mark.parametrize("locked", ["index", "run"])
def test_a_lock_held_past_the_timeout_never_duplicates_and_names_the_file(locked_instance, monkeypatch, locked):
    instance, base_dir = locked_instance
    instance.event_log_storage.store_event_batch([_materialization("run-1", "warm-up")])  # files exist
    path = base_dir / ("index.db" if locked == "index" else "run-1.db")
    lock = _IndexLock(path)
    if locked == "index":  # between the run file's commit and the catalog's: Dagster's fallback duplicated here
        monkeypatch.setattr(sqlite_log, "_after_run_commit", lock.take)
    else:
        lock.take()
    events = [_materialization("run-1", p) for p in _partitions(BATCH)]
    try:
        with pytest.raises(EventLogLockedError) as raised:
            _handle_as_dagster_batches(instance, events)
    finally:
        lock.release()
    message = str(raised.value)
    assert f"event log {path}: database is locked" in message
    assert "0.2 s" in message and "nothing of them kept" in message
    assert _counts(base_dir, "run-1")[:2] == (1, 1)  # the warm-up only: nothing of the batch, no duplicate

    monkeypatch.setattr(sqlite_log, "_after_run_commit", lambda: None)
    _handle_as_dagster_batches(instance, events)  # the lock gone: stored once
    assert _counts(base_dir, "run-1") == (BATCH + 1, BATCH + 1, 0)
    assert len(instance.get_materialized_partitions(KEY)) == BATCH + 1


def test_a_lock_during_check_recording_names_the_database_file(locked_instance):
    instance, base_dir = locked_instance
    storage = instance.event_log_storage
    storage.store_event_batch([_materialization("run-1", "warm-up")])
    lock = _IndexLock(base_dir / "index.db")
    lock.take()
    try:
        with pytest.raises(EventLogLockedError, match=f"event log {base_dir / 'index.db'}: database is locked"):
            storage.store_event_batch(
                [_evaluation("run-1", p) for p in _partitions(50)]
            )  # record_check_evaluations' call
    finally:
        lock.release()
    assert storage.get_asset_check_execution_history(dg.AssetCheckKey(KEY, "bars_unique"), limit=10) == []


def test_a_failed_runs_materialization_is_refused(tmp_path):
    """Item 4's guard on SQLite: an orphaned step's write into a FAILED run is refused, by name."""
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    overrides = {
        "event_log_storage": {
            "module": "pairs_assets.instance.sqlite",
            "class": "PairsSqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "history" / "runs")},
        }
    }
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="run-1", status=DagsterRunStatus.STARTED))
        instance.handle_new_event(_materialization("run-1", "2022-12-28|technology"))  # open: recorded
        instance.report_run_failed(run, message="test: its process died")
        with pytest.raises(
            RunClosedError,
            match=r"run run-1 is FAILURE: 1 asset materialization event\(s\) of raw_bars\[2022-12-29\|technology\] refused",
        ):
            instance.handle_new_event(_materialization("run-1", "2022-12-29|technology"))
        assert sorted(instance.get_materialized_partitions(KEY)) == ["2022-12-28|technology"]
        assert [
            r.event_log_entry.dagster_event.partition
            for r in instance.get_records_for_run("run-1", of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        ] == ["2022-12-28|technology"]
