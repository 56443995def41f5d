"""The single entry point: ``defs`` — assets, checks, jobs, schedules, sensors and resources.

Every command uses it: ``dagster dev -w workspace.yaml``, ``dagster job execute -m
pairs_assets.definitions …``, ``dagster asset materialize -m pairs_assets.definitions …`` and the
``pairs`` CLI.
"""

from __future__ import annotations

import dagster as dg

from pairs_assets.assets.cointegrated_pairs import cointegrated_pairs
from pairs_assets.assets.correlation_matrix import correlation_matrix
from pairs_assets.assets.garch_models import garch_models
from pairs_assets.assets.gru_models import gru_models
from pairs_assets.assets.model_performance import model_rankings, model_trends
from pairs_assets.assets.model_selection import model_selection
from pairs_assets.assets.raw_bars import raw_bars
from pairs_assets.assets.trading_config import trading_config
from pairs_assets.jobs import daily_pairs, model_performance_job
from pairs_assets.settings import Paths, StrategySettings, paths
from resources.bar_sources import BarSource, EmbeddedBarSource, FileBarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry
from sensors.performance import model_performance_refresh
from sensors.schedules import daily_pairs_schedule

ASSETS = [
    raw_bars,
    correlation_matrix,
    cointegrated_pairs,
    garch_models,
    model_selection,
    gru_models,
    trading_config,
    model_rankings,
    model_trends,
]


def bar_source_for(p: Paths) -> BarSource:
    """``PAIRS_BARS_FILE`` set → that file; otherwise the embedded dataset."""
    if p.bars_file is not None:
        return FileBarSource(path=str(p.bars_file))
    return EmbeddedBarSource()


def build_resources(p: Paths) -> dict:
    return {
        "store": MarketDataStore(database_url=p.database_url),
        "bar_source": bar_source_for(p),
        "strategy": StrategySettings(),
        "io_manager": PartitionedFileIOManager(base_dir=str(p.outputs_dir)),
        "model_registry": ModelRegistry(tracking_uri=p.mlflow_tracking_uri, local_store_dir=str(p.mlflow_dir)),
    }


def build_definitions(p: Paths | None = None) -> dg.Definitions:
    p = p or paths()
    return dg.Definitions(
        assets=ASSETS,
        jobs=[daily_pairs, model_performance_job],
        schedules=[daily_pairs_schedule],
        sensors=[model_performance_refresh],
        resources=build_resources(p),
    )


defs = build_definitions()
