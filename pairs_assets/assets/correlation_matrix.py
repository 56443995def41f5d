"""correlation_matrix: log-return correlations of the sector's usable symbols over the formation window."""

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import (
    GROUP,
    WindowReader,
    history_window_metadata,
    markdown_table,
    partition_parts,
    reasons_table,
    stopwatch,
)
from pairs_assets.home import PairsHome
from pairs_assets.quant.stages import correlation_stage
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


def correlation_matrix_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its window (``strategy``'s ``formation_window``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="correlation_matrix",
        partitions_def=daily,
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.reach(strategy.formation_window),
            f"{strategy.formation_window} sessions (formation_window) ending at its formation session, every {strategy.reselect_every}",
        ),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"pandas", "parquet"},
        description="Pearson correlations of daily log returns over the formation window (long form: "
        "symbol_a, symbol_b, correlation, n_obs). Stale or constant series are excluded with a reason.",
    )(correlation_matrix)


def correlation_matrix(
    context: dg.AssetExecutionContext,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
) -> dg.Output:
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        with stopwatch() as timer:
            sector_ranges = ranges.sector_ranges(
                context, store, bar_source.source_name, strategy, home, lookback=strategy.formation_window
            )
            outputs = ranges.per_cohort(
                sector_ranges,
                lambda rng, _formation, dates: correlation_partition(
                    rng.windows, str(dates[0].date()), rng.sector, strategy
                ),
            )
        matrices = {key: matrix for key, (matrix, _meta) in outputs.items()}
        ranges.record_partition_metadata(context, {key: meta for key, (_matrix, meta) in outputs.items()})
        return dg.Output(
            matrices,
            metadata=ranges.range_metadata(
                sector_ranges,
                timer["seconds"],
                pairs=sum(len(m) for m in matrices.values()),
                correlation_min=strategy.correlation_min,
            ),
        )
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        matrix, metadata = correlation_partition(
            WindowReader(store, bar_source.source_name, home=home), date, sector, strategy
        )
    return dg.Output(matrix, metadata={**metadata, "elapsed_seconds": timer["seconds"]})


def correlation_partition(
    windows: WindowReader, date: str, sector: str, strategy: StrategySettings
) -> tuple[pd.DataFrame, dict]:
    """One partition's correlation matrix and its metadata (a one-partition run and a range run alike)."""
    symbols = windows.universe.symbols(sector)
    window = windows.read(
        symbols,
        windows.formation_session(date, strategy.reselect_every, strategy.formation_phase),
        strategy.formation_window,
        partition=f"{date}|{sector}",
    )
    stage = correlation_stage(window.closes, strategy)
    matrix, excluded, usable = stage.matrix, stage.excluded, stage.usable
    note = (
        f"sector {sector} has {len(usable)} usable symbol(s): no pairs to correlate"
        if len(usable) < 2
        else f"{len(matrix)} pairs of {len(usable)} symbols"
    )
    return matrix, {
        "window": window.label,
        "symbols": ", ".join(symbols),
        "excluded_symbols": reasons_table(excluded),
        "pairs": len(matrix),
        "pairs_at_or_above_threshold": int((matrix["correlation"] >= strategy.correlation_min).sum()),
        "correlation_min": strategy.correlation_min,
        "note": note,
        "top_pairs": markdown_table(matrix.sort_values("correlation", ascending=False)),
        "input_fingerprint": window.fingerprint,
    }
