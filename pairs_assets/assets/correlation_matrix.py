"""correlation_matrix: log-return correlations of the sector's usable symbols over the formation window."""


import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets.common import GROUP, markdown_table, partition_parts, read_window, reasons_table, stopwatch, universe
from pairs_assets.quant.stages import correlation_stage
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.formation_window + DEFAULT_STRATEGY.reselect_every - 1))],
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    description="Pearson correlations of daily log returns over the formation window (long form: "
    "symbol_a, symbol_b, correlation, n_obs). Stale or constant series are excluded with a reason.",
)
def correlation_matrix(
    context: dg.AssetExecutionContext, store: MarketDataStore, bar_source: BarSource, strategy: StrategySettings
) -> dg.Output[pd.DataFrame]:
    date, sector = partition_parts(context)
    symbols = universe().symbols(sector)
    with stopwatch() as timer:
        window = read_window(
            store, bar_source.source_name, symbols, partitions.formation_session(date, strategy.reselect_every),
            strategy.formation_window, partition=context.partition_key,
        )
        stage = correlation_stage(window.closes, strategy)
        matrix, excluded, usable = stage.matrix, stage.excluded, stage.usable
    note = (
        f"sector {sector} has {len(usable)} usable symbol(s): no pairs to correlate"
        if len(usable) < 2
        else f"{len(matrix)} pairs of {len(usable)} symbols"
    )
    return dg.Output(
        matrix,
        metadata={
            "window": window.label,
            "symbols": ", ".join(symbols),
            "excluded_symbols": reasons_table(excluded),
            "pairs": len(matrix),
            "pairs_at_or_above_threshold": int((matrix["correlation"] >= strategy.correlation_min).sum()),
            "correlation_min": strategy.correlation_min,
            "note": note,
            "top_pairs": markdown_table(matrix.sort_values("correlation", ascending=False)),
            "input_fingerprint": window.fingerprint,
            "elapsed_seconds": timer["seconds"],
        },
    )
