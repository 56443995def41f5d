"""cointegrated_pairs: correlation ≥ threshold, then Engle-Granger both ways, Johansen, half-life."""


import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets.common import GROUP, markdown_table, partition_parts, read_window, reasons_table, stopwatch, universe
from pairs_assets.quant.prices import find_unusable_symbols
from pairs_assets.quant.stages import cointegration_stage
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    ins={"correlation_matrix": dg.AssetIn(partition_mapping=partitions.same_partition_mapping())},
    deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.formation_window + DEFAULT_STRATEGY.reselect_every - 1))],
    check_specs=checks.COINTEGRATED_PAIRS_CHECKS,
    group_name=GROUP,
    kinds={"statsmodels", "parquet"},
    description="Pairs with correlation ≥ correlation_min that pass Engle-Granger (p < eg_pvalue_max) with "
    "hedge ratio, intercept, Johansen trace and half-life; optional Benjamini-Hochberg control.",
)
def cointegrated_pairs(
    context: dg.AssetExecutionContext,
    correlation_matrix: pd.DataFrame,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
):
    date, sector = partition_parts(context)
    symbols = universe().symbols(sector)
    with stopwatch() as timer:
        window = read_window(
            store, bar_source.source_name, symbols, partitions.formation_session(date, strategy.reselect_every),
            strategy.formation_window, partition=context.partition_key,
        )
        excluded = find_unusable_symbols(window.closes, max_flat_fraction=strategy.max_flat_fraction)
        result, log_prices = cointegration_stage(window.closes, correlation_matrix, strategy)
        pairs = result.pairs
        check_results = checks.cointegrated_pairs_results(pairs, log_prices, strategy)
    rejected = dict(zip(result.rejected["pair_id"], result.rejected["reason"])) if not result.rejected.empty else {}
    yield dg.Output(
        pairs,
        metadata={
            "window": window.label,
            "candidates": int((correlation_matrix["correlation"] >= strategy.correlation_min).sum()),
            "pairs": len(pairs),
            "correlation_min": strategy.correlation_min,
            "eg_pvalue_max": strategy.eg_pvalue_max,
            "require_both_orderings": strategy.eg_require_both_orderings,
            "fdr_alpha": str(strategy.fdr_alpha),
            "excluded_symbols": reasons_table(excluded),
            "rejected_candidates": reasons_table(rejected),
            "note": "no cointegrated pairs in this window" if pairs.empty else f"{len(pairs)} cointegrated pair(s)",
            "top_pairs": markdown_table(
                pairs, ["pair_id", "correlation", "hedge_ratio", "eg_pvalue", "eg_pvalue_reverse", "johansen_trace", "half_life"]
            ),
            "input_fingerprint": window.fingerprint,
            "elapsed_seconds": timer["seconds"],
        },
    )
    yield from check_results
