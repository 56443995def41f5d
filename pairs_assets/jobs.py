"""Jobs: the daily pair-identification graph (one run per as-of session × sector)."""

from __future__ import annotations

import dagster as dg

from pairs_assets.assets.common import GROUP
from pairs_assets.partitions import daily_partitions_def

daily_pairs = dg.define_asset_job(
    "daily_pairs",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=daily_partitions_def(),
    description="raw bars → correlation → cointegrated pairs → GARCH → model selection → GRU → trading config, "
    "for one as-of session × sector.",
    tags={"dagster/max_retries": "0"},
    # One process per run: the stages are sequential, and a subprocess per step re-imports torch,
    # mlflow and arch (~6 s each on 2 cores) for sub-second steps.
    executor_def=dg.in_process_executor,
)

model_performance_job = dg.define_asset_job(
    "model_performance_job",
    selection=dg.AssetSelection.assets("model_rankings", "model_trends"),
    description="Rebuild model_rankings and model_trends from the model_performance table.",
)

signal_job = dg.define_asset_job(
    "signal_job",
    selection=dg.AssetSelection.assets("trading_signals"),
    partitions_def=daily_partitions_def(),
    description="5-minute signals for the session after the partition's as-of session, from its trading config "
    "and the latest bars; orders through the broker resource (dry-run by default).",
    executor_def=dg.in_process_executor,
)
