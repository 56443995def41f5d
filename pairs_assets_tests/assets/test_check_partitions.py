"""Asset checks are partition-scoped (issue 9, item 15).

Before, every check evaluation was recorded with partition NULL, so one failed run painted the
asset's check red for every partition. Now each evaluation records the partition it judged: a
one-partition run its partition, a raw_bars range run one evaluation per check and partition,
each on that partition's bars alone.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from pairs_assets import checks, partitions
from pairs_assets.definitions import defs
from pairs_assets_tests.assets.graph_harness import (
    EMBEDDED_DAILY,
    materialize,
    materialize_raw_bars_range,
    preload_history,
    resources_for,
)
from pairs_assets_tests.planted import planted_closes, write_bars_file
from resources.bar_sources import FileBarSource

TECH = ["AAPL", "AMD", "MSFT"]
RAW_BARS_CHECK_NAMES = [spec.name for spec in checks.RAW_BARS_CHECKS]


def check_partition_status(instance, check_name: str) -> dict[str, str]:
    """{partition: status} as Dagster's check partition status has it (the check's *Partitions*
    view in the UI reads the same ``AssetCheckState``); Missing partitions are absent."""
    from dagster._core.storage.asset_check_state import AssetCheckState  # what the UI's resolver loads

    key = dg.AssetCheckKey(dg.AssetKey("raw_bars"), check_name)
    (state,) = instance.event_log_storage.get_asset_check_state([(key, EMBEDDED_DAILY)]).values()
    assert isinstance(state, AssetCheckState)
    out: dict[str, str] = {}
    for status, subset in state.subsets.items():
        for partition in subset.subset_value.get_partition_keys():
            assert partition not in out, (partition, out[partition], status)
            out[str(partition)] = status.value
    return out


def _executions(instance, check_name: str) -> list:
    key = dg.AssetCheckKey(dg.AssetKey("raw_bars"), check_name)
    return list(instance.event_log_storage.get_asset_check_execution_history(key, limit=1000))


@pytest.fixture()
def bars_file(tmp_path) -> str:
    return write_bars_file(tmp_path / "bars.csv", planted_closes(n_sessions=90)[TECH])


def test_every_check_of_the_graph_is_scoped_to_its_assets_partitions():
    graph = defs.resolve_asset_graph()
    check_keys = list(graph.asset_check_keys)
    assert {k.name for k in check_keys} >= set(RAW_BARS_CHECK_NAMES) | {"eg_pvalue_below_max", "composite_above_min"}
    for key in check_keys:
        spec = graph.get(key)
        assert spec.partitions_def == graph.get(key.asset_key).partitions_def, key
        if key.asset_key == dg.AssetKey("paper_book"):
            # the paper book is one account: partitioned by session only (its checks see every sector)
            assert isinstance(spec.partitions_def, dg.TimeWindowPartitionsDefinition), key
        else:
            # the definitions' daily partitions (the test environment: the embedded history and universe)
            assert spec.partitions_def == EMBEDDED_DAILY, key


def test_a_one_partition_run_records_its_partition_on_each_check(tmp_path, sqlite_url, bars_file):
    source = FileBarSource(path=bars_file)
    preload_history(sqlite_url, source, TECH, "2022-12-27", 70)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize(
            "2022-12-28", "technology", resources_for(sqlite_url, source), selection=["raw_bars"], instance=instance
        )
        assert result.success
        assert {e.partition for e in result.get_asset_check_evaluations()} == {"2022-12-28|technology"}
        for name in RAW_BARS_CHECK_NAMES:
            (record,) = _executions(instance, name)
            assert record.partition == "2022-12-28|technology", name
            assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED, name


def test_a_range_run_fails_only_the_partition_with_the_bad_bar(tmp_path, sqlite_url, bars_file):
    frame = pd.read_csv(bars_file)
    bad = (frame["symbol"] == "AMD") & (frame["timestamp"] == "2022-12-22")
    frame.loc[bad, ["high", "low"]] = frame.loc[bad, ["low", "high"]].to_numpy()  # high < low on one bar
    frame.to_csv(bars_file, index=False)
    sessions = [str(s.date()) for s in partitions.sessions_in_range("2022-12-19", "2022-12-28")]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize_raw_bars_range(instance, sqlite_url, bars_file, sessions)
        assert not result.success  # ohlc_consistent is a blocking ERROR gate
        ohlc = {r.partition: r.status for r in _executions(instance, "ohlc_consistent")}
        assert ohlc == {
            f"{s}|technology": (
                AssetCheckExecutionRecordStatus.FAILED
                if s == "2022-12-22"
                else AssetCheckExecutionRecordStatus.SUCCEEDED
            )
            for s in sessions
        }
        # a range run records its evaluations in batches: read them back from the event log
        evaluations = [
            r.event.get_dagster_event().asset_check_evaluation_data
            for n in RAW_BARS_CHECK_NAMES
            for r in _executions(instance, n)
        ]
        (failed,) = [e for e in evaluations if not e.passed]
        assert failed.partition == "2022-12-22|technology"
        assert "AMD@2022-12-22" in failed.metadata["examples"].value and failed.metadata["violations"].value == 1
        for name in RAW_BARS_CHECK_NAMES:  # every check judged every partition: none NULL, none left PLANNED
            records = _executions(instance, name)
            assert sorted(r.partition for r in records) == [f"{s}|technology" for s in sessions], name
            assert all(r.status != AssetCheckExecutionRecordStatus.PLANNED for r in records), name
            # the check's partition status (the UI's Partitions view) is each partition's result
            assert check_partition_status(instance, name) == {r.partition: r.status.value for r in records}, name


def test_a_clean_range_run_succeeds_with_every_check_passed_on_every_partition(tmp_path, sqlite_url, bars_file):
    sessions = [str(s.date()) for s in partitions.sessions_in_range("2022-12-21", "2022-12-28")]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize_raw_bars_range(instance, sqlite_url, bars_file, sessions)
        assert result.success
        assert len(result.get_asset_materialization_events()) == len(sessions)
        for name in RAW_BARS_CHECK_NAMES:
            records = _executions(instance, name)
            assert sorted(r.partition for r in records) == [f"{s}|technology" for s in sessions], name
            assert {r.status for r in records} == {AssetCheckExecutionRecordStatus.SUCCEEDED}, name
            assert check_partition_status(instance, name) == {f"{s}|technology": "SUCCEEDED" for s in sessions}, name
        # each evaluation targets its partition's materialization, as a yielded AssetCheckResult does
        materializations = {
            r.partition_key: r
            for r in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_bars")), limit=100
            ).records
        }
        for record in _executions(instance, "bars_unique"):
            target = record.event.get_dagster_event().asset_check_evaluation_data.target_materialization_data
            mat = materializations[record.partition]
            assert (target.storage_id, target.run_id) == (mat.storage_id, result.run_id)
            assert target.timestamp == pytest.approx(mat.timestamp, abs=1e-3)
