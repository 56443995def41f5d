"""Materialize the daily graph in-process on a temporary instance and a real SQLite store."""

from __future__ import annotations

import dagster as dg

from pairs_assets.assets.common import GROUP
from pairs_assets.definitions import ASSETS
from pairs_assets.partitions import partition_key
from pairs_assets.settings import StrategySettings, paths
from resources.bar_sources import BarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry


DAILY_ASSETS = [a for a in ASSETS if a.group_names_by_key.get(a.key) == GROUP]


def resources_for(store_url: str, bar_source: BarSource, **strategy) -> dict:
    return {
        "store": MarketDataStore(database_url=store_url),
        "bar_source": bar_source,
        "strategy": StrategySettings(**strategy),
        "io_manager": PartitionedFileIOManager(base_dir=str(paths().outputs_dir)),
        "model_registry": ModelRegistry(tracking_uri=paths().mlflow_tracking_uri, local_store_dir=str(paths().mlflow_dir)),
    }


def preload_history(store_url: str, bar_source: BarSource, symbols, as_of: str, n_sessions: int) -> int:
    """Load the window's history straight into the store (the graph's own raw_bars test is separate)."""
    from pairs_assets import partitions

    sessions = partitions.window_sessions(as_of, n_sessions)
    bars = bar_source.load_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    return MarketDataStore(database_url=store_url).upsert_bars(bars, context="test preload")


def materialize(date: str, sector: str, resources: dict, selection=None, instance=None):
    """The daily_pairs group for one partition."""
    return dg.materialize(
        DAILY_ASSETS,
        partition_key=partition_key(date, sector),
        resources=resources,
        selection=selection,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def materialized_keys(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
