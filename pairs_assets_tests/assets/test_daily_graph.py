"""The whole daily graph for one partition, on real and planted data."""

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from pairs_assets_tests.assets.graph_harness import materialize, materialized_keys, preload_history, resources_for
from pairs_assets_tests.planted import planted_closes, write_bars_file
from pairs_assets_tests.strategies import SEED
from resources.bar_sources import EmbeddedBarSource, FileBarSource
from resources.market_data import MarketDataStore, bars_table

ALL = {
    "raw_bars",
    "correlation_matrix",
    "cointegrated_pairs",
    "garch_models",
    "model_selection",
    "gru_models",
    "trading_config",
}
FAST = {"gru_max_epochs": 3, "gru_hidden": 16}
# each test its own home (own_pairs_home, passed to resources_for): the tests materialize the same
# partitions (see assets/conftest.py)


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted_bars.csv"
    return write_bars_file(path, planted_closes())


def _config(home, date, sector):
    return json.loads((home.outputs_dir / "trading_config" / date / f"{sector}.json").read_text())


def test_embedded_data_whole_graph_for_one_partition(own_pairs_home, sqlite_url):
    source = EmbeddedBarSource()
    preload_history(sqlite_url, source, ["AAPL", "AMD", "MSFT"], "2022-12-28", SEED.history_sessions)
    result = materialize("2022-12-28", "technology", resources_for(sqlite_url, source, home=own_pairs_home, **FAST))
    assert result.success
    assert ALL <= materialized_keys(result)
    doc = _config(own_pairs_home, "2022-12-28", "technology")
    assert doc["as_of_session"] == "2022-12-28" and doc["effective_session"] == "2022-12-29"
    assert doc["schema_version"] == 1 and doc["symbols"] == ["AAPL", "AMD", "MSFT"]
    corr = pd.read_parquet(own_pairs_home.outputs_dir / "correlation_matrix" / "2022-12-28" / "technology.parquet")
    assert list(corr.columns) == ["symbol_a", "symbol_b", "correlation", "n_obs"]
    assert corr["n_obs"].eq(SEED.formation_window - 1).all()
    row = MarketDataStore(database_url=sqlite_url).latest_trading_config("technology")
    assert row["input_fingerprint"] == doc["input_fingerprint"]


def test_planted_pair_flows_to_the_config_and_reruns_are_byte_identical(own_pairs_home, sqlite_url, planted_file):
    source = FileBarSource(path=planted_file)
    preload_history(sqlite_url, source, ["AAPL", "AMD", "MSFT"], "2022-12-28", SEED.history_sessions)
    resources = resources_for(sqlite_url, source, home=own_pairs_home, **FAST)
    first = materialize("2022-12-28", "technology", resources)
    assert first.success
    path = own_pairs_home.outputs_dir / "trading_config" / "2022-12-28" / "technology.json"
    before = path.read_bytes()
    doc = json.loads(before)
    assert [p["pair_id"] for p in doc["pairs"]] in (["AAPL-MSFT"], ["MSFT-AAPL"])
    pair = doc["pairs"][0]
    assert pair["hedge_ratio"] > 0 and pair["garch"]["sigma_forecast"] > 0
    assert pair["scores"]["composite"] > SEED.score_min
    assert pair["levels"] == {"entry_z": 2.0, "exit_z": 0.5, "stop_z": 3.5}
    assert 0 < pair["sizing"]["y_fraction"] <= SEED.max_position
    garch = pd.read_parquet(own_pairs_home.outputs_dir / "garch_models" / "2022-12-28" / "technology.parquet")
    assert garch["n_obs"].iloc[0] == SEED.garch_window and bool(garch["converged"].iloc[0])
    second = materialize("2022-12-28", "technology", resources)
    assert second.success
    assert path.read_bytes() == before, "same inputs must give a byte-identical trading config"


def test_sector_with_one_symbol_succeeds_with_no_pairs(own_pairs_home, sqlite_url):
    source = EmbeddedBarSource()
    preload_history(sqlite_url, source, ["GE"], "2022-12-28", SEED.history_sessions)
    result = materialize("2022-12-28", "industrial", resources_for(sqlite_url, source, home=own_pairs_home, **FAST))
    assert result.success
    meta = result.asset_materializations_for_node("correlation_matrix")[0].metadata
    assert "industrial has 1 usable symbol(s): no pairs" in meta["note"].value
    assert _config(own_pairs_home, "2022-12-28", "industrial")["pairs"] == []


def test_stale_series_is_excluded_with_reason(own_pairs_home, sqlite_url):
    source = EmbeddedBarSource()
    preload_history(sqlite_url, source, ["CVX", "RRC", "XOM"], "1990-06-29", 60)
    result = materialize(
        "1990-06-29",
        "energy",
        resources_for(sqlite_url, source, home=own_pairs_home),
        selection=["raw_bars", "correlation_matrix"],
    )
    assert result.success
    meta = result.asset_materializations_for_node("correlation_matrix")[0].metadata
    assert "RRC" in meta["excluded_symbols"].value
    corr = pd.read_parquet(own_pairs_home.outputs_dir / "correlation_matrix" / "1990-06-29" / "energy.parquet")
    assert "RRC" not in set(corr["symbol_a"]) | set(corr["symbol_b"])


def test_failing_gate_blocks_downstream(own_pairs_home, sqlite_url):
    source = EmbeddedBarSource()
    preload_history(sqlite_url, source, ["AAPL", "AMD", "MSFT"], "2022-12-28", 80)
    # another writer left a bad intraday bar in the partition's session under the same source
    store = MarketDataStore(database_url=sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(bars_table).values(
                symbol="AMD",
                timestamp=pd.Timestamp("2022-12-28 15:00").to_pydatetime(),
                source=source.source_name,
                close=0.0,
            )
        )
    result = materialize("2022-12-28", "technology", resources_for(sqlite_url, source, home=own_pairs_home))
    assert not result.success
    assert materialized_keys(result) == {"raw_bars"}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["prices_positive_finite"].passed
    assert "AMD@2022-12-28T15:00:00+00:00 close=0.0" in checks["prices_positive_finite"].metadata["examples"].value
    assert checks["bars_unique"].passed and checks["sector_symbols_present"].passed


def test_raw_bars_range_loads_in_one_run(own_pairs_home, sqlite_url):
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS

    result = dg.materialize(
        DAILY_ASSETS,
        selection=["raw_bars"],
        resources=resources_for(sqlite_url, EmbeddedBarSource(), home=own_pairs_home),
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-01|financial",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-28|healthcare",
        },
    )
    assert result.success
    partitions_done = {e.partition for e in result.get_asset_materialization_events()}
    assert len(partitions_done) == 19 * 2  # 19 NYSE sessions in Dec 2022 up to the 28th × 2 sectors
    counts = MarketDataStore(database_url=sqlite_url).bar_counts().set_index("symbol")["bars"]
    assert counts.to_dict() == {s: 19 for s in ["BAC", "JNJ", "JPM", "LLY", "MRK", "PFE", "UNH"]}
