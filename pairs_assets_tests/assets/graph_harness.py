"""Materialize the daily graph in-process on a temporary instance and a real SQLite store.

The assets come from explicit inputs (``build_assets``: a history start, a universe, a strategy; no
environment), the resources from a :class:`Paths` given to :func:`resources_for` (by default the
process's ``paths()``, which the graph tests' ``own_pairs_home`` fixture points at a folder of theirs).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets.assets.common import GROUP
from pairs_assets.assets.trading_signals import trading_signals_asset
from pairs_assets.definitions import build_assets, home_resource_for
from pairs_assets.partitions import daily_partitions_def, partition_key
from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE, Paths, StrategySettings, paths
from pairs_assets.universe import load_universe
from resources.bar_sources import BarSource, EmbeddedBarSource, FileBarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry


def daily_assets(
    history_start: str = EMBEDDED_HISTORY_START,
    universe_file=EMBEDDED_UNIVERSE_FILE,
    strategy: StrategySettings | None = None,
) -> list:
    """The daily_pairs group built for ``history_start`` × the sectors of ``universe_file``."""
    daily = daily_partitions_def(history_start, load_universe(universe_file).sector_names)
    return [a for a in build_assets(daily, strategy or StrategySettings()) if a.group_names_by_key.get(a.key) == GROUP]


DAILY_ASSETS = daily_assets()
#: The daily partitions of the embedded data (its history start × its universe's sectors, to its last session).
EMBEDDED_DAILY = daily_partitions_def(
    EMBEDDED_HISTORY_START, load_universe(EMBEDDED_UNIVERSE_FILE).sector_names, EmbeddedBarSource().last_session()
)
#: trading_signals on those partitions.
TRADING_SIGNALS = trading_signals_asset(EMBEDDED_DAILY)


def daily_asset(name: str) -> dg.AssetsDefinition:
    """One asset of :data:`DAILY_ASSETS` by name."""
    (found,) = [a for a in DAILY_ASSETS if a.key == dg.AssetKey(name)]
    return found


def resources_for(store_url: str, bar_source: BarSource, *, home: Paths | None = None, **strategy) -> dict:
    """The daily graph's resources on the home ``home`` (default: the process's ``paths()``)."""
    p = home or paths()
    return {
        "store": MarketDataStore(database_url=store_url),
        "bar_source": bar_source,
        "strategy": StrategySettings.preset("seed", **strategy),  # the seed unless overridden (strategies.py)
        "home": home_resource_for(p),
        "io_manager": PartitionedFileIOManager(base_dir=str(p.outputs_dir)),
        "model_registry": ModelRegistry(tracking_uri=p.mlflow_tracking_uri, local_store_dir=str(p.mlflow_dir)),
    }


def preload_history(
    store_url: str,
    bar_source: BarSource,
    symbols,
    as_of: str,
    n_sessions: int,
    *,
    history_start: str = EMBEDDED_HISTORY_START,
) -> int:
    """Load the window's history straight into the store (the graph's own raw_bars test is separate)."""
    from pairs_assets import partitions

    sessions = partitions.window_sessions(as_of, n_sessions, history_start=history_start)
    bars = bar_source.load_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    return MarketDataStore(database_url=store_url).upsert_bars(bars, context="test preload")


def materialize(date: str, sector: str, resources: dict, selection=None, instance=None, assets=None):
    """The daily_pairs group (``assets``, default :data:`DAILY_ASSETS`) for one partition."""
    return dg.materialize(
        assets or DAILY_ASSETS,
        partition_key=partition_key(date, sector),
        resources=resources,
        selection=selection,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def materialize_raw_bars_range(
    instance, store_url: str, bars_file: str, sessions: list[str], sector: str = "technology"
):
    """raw_bars for ``sessions`` of ``sector`` in one range run (a single-run backfill), read from ``bars_file``."""
    return materialize_raw_bars_range_with(instance, store_url, FileBarSource(path=bars_file), sessions, sector)


def materialize_raw_bars_range_with(
    instance, store_url: str, bar_source: BarSource, sessions: list[str], sector: str = "technology"
):
    """raw_bars for ``sessions`` of ``sector`` in one range run, read from ``bar_source``."""
    return dg.materialize(
        DAILY_ASSETS,
        selection=["raw_bars"],
        resources=resources_for(store_url, bar_source),
        instance=instance,
        raise_on_error=False,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{sessions[0]}|{sector}",
            ASSET_PARTITION_RANGE_END_TAG: f"{sessions[-1]}|{sector}",
        },
    )


def materialized_keys(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
