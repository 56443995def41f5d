"""PairsSqliteEventLogStorage (issue 10 item 1): the local instance's event log with batched writes.

Parity with Dagster's own ``SqliteEventLogStorage``: the same raw_bars range run (a bad bar in one
partition) on an instance of each leaves the same materialized partitions, the same check
execution per check and partition (status, partition, metadata), the same event types in the
run and the same asset record — the batched storage only writes them differently. With
``range_checks: yielded`` the project's storage takes Dagster's public path for a range run's check
results (the step yields them) and leaves the same again.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.partitions.subset import DefaultPartitionsSubset
from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster_shared.serdes import deserialize_value

from pairs_assets import checks, partitions
from pairs_assets.instance import range_checks_path
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, materialize_raw_bars_range
from pairs_assets_tests.planted import planted_closes, write_bars_file
from resources.dagster_sqlite_storage import PairsSqliteEventLogStorage

TECH = ["AAPL", "AMD", "MSFT"]
RAW_BARS = dg.AssetKey("raw_bars")
CHECK_NAMES = [spec.name for spec in checks.RAW_BARS_CHECKS]


def _instance(tmp_path, name: str, batched: bool, range_checks: str | None = None):
    (tmp_path / name).mkdir()
    config = {"base_dir": str(tmp_path / name / "history" / "runs")}
    if range_checks:
        config["range_checks"] = range_checks
    overrides = (
        {
            "event_log_storage": {
                "module": "resources.dagster_sqlite_storage",
                "class": "PairsSqliteEventLogStorage",
                "config": config,
            }
        }
        if batched
        else None
    )
    return dg.instance_for_test(temp_dir=str(tmp_path / name), overrides=overrides)


def _state(instance, run_id: str) -> dict:
    """What the UI shows of a run's raw_bars load, independent of storage ids and timestamps."""
    executions = {}
    for name in CHECK_NAMES:
        key = dg.AssetCheckKey(RAW_BARS, name)
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=1000):
            evaluation = record.event.get_dagster_event().asset_check_evaluation_data
            executions[(name, record.partition)] = (
                record.status,
                record.run_id == run_id,
                evaluation.passed,
                evaluation.partition,
                {k: v.value for k, v in evaluation.metadata.items()},
            )
    partition_info = {
        (info.check_key.name, info.partition_key): info.latest_execution_status
        for info in instance.event_log_storage.get_asset_check_partition_info(
            [dg.AssetCheckKey(RAW_BARS, n) for n in CHECK_NAMES]
        )
    }
    check_status = {}  # Dagster's check partition status (the UI's Partitions view): Dagster's code vs BulkCheckState
    for name in CHECK_NAMES:
        (state,) = instance.event_log_storage.get_asset_check_state(
            [(dg.AssetCheckKey(RAW_BARS, name), EMBEDDED_DAILY)]
        ).values()
        check_status[name] = {
            s.value: sorted(map(str, sub.subset_value.get_partition_keys())) for s, sub in state.subsets.items()
        }
        check_status[name] = {s: keys for s, keys in check_status[name].items() if keys}
    record = instance.get_asset_records([RAW_BARS])[0].asset_entry
    events = instance.all_logs(run_id)
    return {
        "materialized": sorted(instance.get_materialized_partitions(RAW_BARS)),
        "executions": executions,
        "partition_info": partition_info,
        "check_status": check_status,
        "event_types": sorted(
            (e.dagster_event_type.value, e.get_dagster_event().partition)
            for e in events
            if e.is_dagster_event
            if e.dagster_event_type
            in {
                DagsterEventType.ASSET_MATERIALIZATION,
                DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                DagsterEventType.ASSET_CHECK_EVALUATION,
            }
        ),
        "last_materialization_partition": record.last_materialization.dagster_event.partition,
        "last_run_is_the_run": record.last_run_id == run_id,
    }


@pytest.fixture()
def bad_bar_file(tmp_path) -> str:
    path = write_bars_file(tmp_path / "bars.csv", planted_closes(n_sessions=90)[TECH])
    frame = pd.read_csv(path)
    bad = (frame["symbol"] == "AMD") & (frame["timestamp"] == "2022-12-22")
    frame.loc[bad, ["high", "low"]] = frame.loc[bad, ["low", "high"]].to_numpy()  # high < low on one bar
    frame.to_csv(path, index=False)
    return path


def test_a_range_run_leaves_what_dagsters_own_sqlite_storage_leaves(tmp_path, sqlite_url, bad_bar_file, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "4")  # Dagster hands materializations over in batches
    sessions = [str(s.date()) for s in partitions.sessions_in_range("2022-12-19", "2022-12-28")]
    states = {}
    # Dagster's own storage takes the public path (the step yields the evaluations); the project's
    # writes them in batches by default, or yields them too with range_checks: yielded
    cases = [
        ("dagster", False, None, "yielded"),
        ("pairs", True, None, "batched"),
        ("pairs_yielded", True, "yielded", "yielded"),
    ]
    for name, batched, setting, path in cases:
        with _instance(tmp_path, name, batched, setting) as instance:
            assert isinstance(instance.event_log_storage, PairsSqliteEventLogStorage) == batched
            assert range_checks_path(instance) == path
            result = materialize_raw_bars_range(instance, sqlite_url, bad_bar_file, sessions)
            assert not result.success  # ohlc_consistent is a blocking ERROR gate: the step fails either way
            states[name] = _state(instance, result.run_id)
    dagster, pairs = states["dagster"], states["pairs"]
    assert pairs == dagster
    assert states["pairs_yielded"] == dagster
    assert dagster["materialized"] == [f"{s}|technology" for s in sessions]
    assert len(dagster["executions"]) == len(CHECK_NAMES) * len(sessions)
    assert dagster["check_status"]["ohlc_consistent"] == {
        "FAILED": ["2022-12-22|technology"],
        "SUCCEEDED": [f"{s}|technology" for s in sessions if s != "2022-12-22"],
    }
    ohlc = {p: v[0] for (n, p), v in dagster["executions"].items() if n == "ohlc_consistent"}
    assert ohlc == {
        f"{s}|technology": AssetCheckExecutionRecordStatus.FAILED
        if s == "2022-12-22"
        else AssetCheckExecutionRecordStatus.SUCCEEDED
        for s in sessions
    }


def _planned_event(run_id: str, keys: list[str]) -> EventLogEntry:
    planned = AssetCheckEvaluationPlanned(
        asset_key=RAW_BARS, check_name="bars_unique", partitions_subset=DefaultPartitionsSubset(set(keys))
    )
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
        job_name="__ASSET_JOB",
        event_specific_data=planned,
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


def _planned_rows(storage) -> dict[str, EventLogEntry]:
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable as T

    with storage.index_connection() as conn:
        rows = conn.execute(T.select().where(T.c.execution_status == "PLANNED")).mappings().all()
    return {row["partition"]: deserialize_value(row["evaluation_event"], EventLogEntry) for row in rows}


def test_a_planned_check_gets_one_row_per_partition_holding_that_partition(tmp_path):
    keys = ["2022-12-27|technology", '2022-12-28|odd "sector" é\\', "2022-12-28|technology"]
    ours = PairsSqliteEventLogStorage(str(tmp_path / "ours"))
    theirs = SqliteEventLogStorage(str(tmp_path / "theirs"))
    for storage in (ours, theirs):
        storage.store_event(_planned_event("run-1", keys))
    mine, dagsters = _planned_rows(ours), _planned_rows(theirs)
    assert sorted(mine) == sorted(dagsters) == sorted(keys)
    for key, entry in mine.items():  # the planned event, narrowed to the row's partition
        planned = entry.get_dagster_event().event_specific_data
        assert set(planned.partitions_subset.get_partition_keys()) == {key}
        assert (entry.run_id, planned.check_name) == ("run-1", "bars_unique")
    assert set(dagsters[keys[0]].get_dagster_event().event_specific_data.partitions_subset.get_partition_keys()) == set(
        keys
    )


def _evaluation_event(run_id: str, partition: str, passed: bool) -> EventLogEntry:
    evaluation = dg.AssetCheckEvaluation(
        asset_key=RAW_BARS,
        check_name="bars_unique",
        passed=passed,
        partition=partition,
        metadata={"duplicates": 0 if passed else 1},
    )
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


def test_a_batch_resolves_planned_rows_inserts_unplanned_ones_and_keeps_the_last_of_a_repeat(tmp_path):
    storage = PairsSqliteEventLogStorage(str(tmp_path / "ours"))
    storage.store_event(_planned_event("run-1", ["a|x", "b|x"]))
    storage.store_event_batch(
        [
            _evaluation_event("run-1", "a|x", True),
            _evaluation_event("run-1", "c|x", False),  # never planned: inserted
            _evaluation_event("run-1", "c|x", True),  # a repeat in the same batch: the last one wins
            _evaluation_event("", "a|x", False),  # runless: a row of its own
        ]
    )
    key = dg.AssetCheckKey(RAW_BARS, "bars_unique")
    records = storage.get_asset_check_execution_history(key, limit=10)
    got = sorted((r.run_id, r.partition, r.status.value) for r in records)
    assert got == [
        ("", "a|x", "FAILED"),
        ("run-1", "a|x", "SUCCEEDED"),
        ("run-1", "b|x", "PLANNED"),
        ("run-1", "c|x", "SUCCEEDED"),
    ]
    # every evaluation is an event of its run, mirrored in the index with its own storage id
    assert len(storage.get_logs_for_run("run-1")) == 4


def test_the_projects_dagster_yaml_opens_the_batched_event_log_in_dagsters_own_layout(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    from dagster._core.storage.runs import SqliteRunStorage

    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # opened by directory, as `DagsterInstance.from_config` does
    shutil.copyfile(Path(__file__).resolve().parents[2] / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PairsSqliteEventLogStorage)
        assert Path(storage._base_dir) == tmp_path / "history" / "runs"  # where Dagster's default keeps it
        assert isinstance(instance.run_storage, SqliteRunStorage)
        # a run worker rebuilds the instance from its reference: the same storage
        assert type(dg.DagsterInstance.from_ref(instance.get_ref()).event_log_storage) is PairsSqliteEventLogStorage


def test_the_bulk_check_status_equals_dagsters_for_planned_evaluated_and_invalid_partitions(tmp_path):
    """BulkCheckState (both project event logs) against Dagster's own check-state code on the same rows."""
    from dagster._core.storage.event_log.base import EventLogStorage

    keys = ["2022-12-23|technology", "2022-12-27|technology", "2022-12-28|technology", "2022-12-25|technology"]
    with _instance(tmp_path, "pairs", batched=True) as instance:
        storage = instance.event_log_storage
        storage.store_event(_planned_event("run-1", keys))  # a run the instance does not hold: in progress
        storage.store_event_batch(
            [
                _evaluation_event("run-1", keys[1], True),
                _evaluation_event("run-1", keys[2], False),
                _evaluation_event("run-1", keys[3], True),  # a holiday: not a partition, left out by both
            ]
        )
        check = [(dg.AssetCheckKey(RAW_BARS, "bars_unique"), EMBEDDED_DAILY)]

        def status(states) -> dict:
            (state,) = states.values()
            return {
                "subsets": {
                    s.value: sorted(map(str, sub.subset_value.get_partition_keys())) for s, sub in state.subsets.items()
                },
                "in_progress_runs": {
                    r: sorted(map(str, sub.subset_value.get_partition_keys()))
                    for r, sub in state.in_progress_runs.items()
                },
                "latest_storage_id": state.latest_storage_id,
            }

        ours, dagsters = (
            status(storage.get_asset_check_state(check)),
            status(EventLogStorage.get_asset_check_state(storage, check)),
        )
        assert ours == dagsters
        assert ours["subsets"]["IN_PROGRESS"] == [keys[0]] and ours["subsets"]["FAILED"] == [keys[2]]
