"""A partition key that is not a session is refused before anything is read or written.

Dagster's time-window partitions move a non-session date to the next window, so a run tagged
``2022-12-26|consumer`` (a holiday) — as ``dagster job execute --tags '{"dagster/partition": …}'``
launches it — used to load, write and record ``2022-12-27|consumer``.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets import partitions
from pairs_assets.errors import NotASessionError, PartitionKeyError
from pairs_assets.home import PairsHome
from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE, StrategySettings
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, daily_asset
from resources.bar_sources import EmbeddedBarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore

ALL_TIME = (pd.Timestamp("1990-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
raw_bars, correlation_matrix = daily_asset("raw_bars"), daily_asset("correlation_matrix")


def _run(assets, selection, tags, store, tmp_path, instance):
    return dg.materialize(
        assets,
        selection=selection,
        instance=instance,
        tags=tags,
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": StrategySettings.preset("seed"),
            "io_manager": PartitionedFileIOManager(base_dir=str(tmp_path / "outputs")),
            "home": PairsHome(
                home=str(tmp_path),
                outputs_dir=str(tmp_path / "outputs"),
                universe_file=str(EMBEDDED_UNIVERSE_FILE),
                history_start=EMBEDDED_HISTORY_START,
            ),
        },
        raise_on_error=False,
    )


def _innermost_failure(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run did not fail"
    error = failures[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert error.message.startswith(f"pairs_assets.errors.{error.cls_name}: ")
    return f"{error.cls_name}: {error.message.split(': ', 1)[1].strip()}"


def _materialized_partitions(instance) -> list[str]:
    return sorted(
        str(record.asset_materialization.partition)
        for key in (dg.AssetKey("raw_bars"), dg.AssetKey("correlation_matrix"))
        for record in instance.fetch_materializations(key, limit=100).records
    )


def test_a_holiday_key_is_refused_with_nothing_written(tmp_path):
    store = MarketDataStore(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}")
    with dg.instance_for_test() as instance:
        result = _run([raw_bars], None, {"dagster/partition": "2022-12-26|consumer"}, store, tmp_path, instance)
        assert not result.success
        assert _innermost_failure(result) == (
            "NotASessionError: partition 2022-12-26|consumer: 2022-12-26 is not an NYSE session (Monday); "
            "the previous session is 2022-12-23, the next 2022-12-27"
        )
        assert _materialized_partitions(instance) == []
    assert store.read_bars(["KO", "PEP", "PG", "WMT"], *ALL_TIME).empty


@pytest.mark.parametrize(
    ("start", "end"),
    [("2022-12-24", "2022-12-26"), ("2022-12-22", "2022-12-26"), ("2022-12-24", "2022-12-28")],
)
def test_a_range_with_a_non_session_end_is_refused_not_moved(tmp_path, start, end):
    store = MarketDataStore(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}")
    tags = {ASSET_PARTITION_RANGE_START_TAG: f"{start}|consumer", ASSET_PARTITION_RANGE_END_TAG: f"{end}|consumer"}
    with dg.instance_for_test() as instance:
        result = _run([raw_bars], None, tags, store, tmp_path, instance)
        assert not result.success
        assert "is not an NYSE session" in _innermost_failure(result)
        assert _materialized_partitions(instance) == []
    assert store.read_bars(["KO", "PEP", "PG", "WMT"], *ALL_TIME).empty


def test_a_downstream_stage_refuses_a_holiday_key_too(tmp_path):
    store = MarketDataStore(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}")
    with dg.instance_for_test() as instance:
        result = _run(
            [raw_bars, correlation_matrix],
            [correlation_matrix],
            {"dagster/partition": "2022-12-26|consumer"},
            store,
            tmp_path,
            instance,
        )
        assert not result.success
        assert _innermost_failure(result).startswith("NotASessionError: partition 2022-12-26|consumer")
        assert _materialized_partitions(instance) == []
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.parquet"))


def test_a_session_key_still_loads(tmp_path):
    store = MarketDataStore(database_url=f"sqlite:///{tmp_path / 'store.sqlite'}")
    with dg.instance_for_test() as instance:
        result = _run([raw_bars], None, {"dagster/partition": "2022-12-27|consumer"}, store, tmp_path, instance)
        assert result.success
        assert _materialized_partitions(instance) == ["2022-12-27|consumer"]
    stored = store.read_bars(["KO", "PEP", "PG", "WMT"], *ALL_TIME)
    assert set(stored["timestamp"]) == {pd.Timestamp("2022-12-27 21:00", tz="UTC")}


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        (
            "2022-12-24|consumer",
            NotASessionError,
            "2022-12-24 is not an NYSE session (Saturday); the previous session is 2022-12-23, the next 2022-12-27",
        ),
        ("2022-12-27|crypto", PartitionKeyError, "unknown sector 'crypto'"),
        ("2022-13-01|consumer", PartitionKeyError, "'2022-13-01' is not a date"),
        ("2022-12-27", PartitionKeyError, "is not DATE|SECTOR"),
        ("1989-12-29|consumer", PartitionKeyError, "precedes the first partition 1990-01-02"),
    ],
)
def test_check_partition_key_names_what_is_wrong(key, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        partitions.check_partition_key(key, EMBEDDED_DAILY)
    assert partitions.check_partition_key("2022-12-27|consumer", EMBEDDED_DAILY) == ("2022-12-27", "consumer")
