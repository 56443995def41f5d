"""model_selection: the composite score (40% AIC/BIC, 30% forecast, 20% recent backtest, 10% diagnostics)."""


import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets.common import GROUP, markdown_table, partition_parts, read_window, stopwatch
from pairs_assets.quant.stages import selection_stage
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore

@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    ins={
        "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        "garch_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
    },
    deps=[
        dg.AssetDep(
            "raw_bars",
            partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.backtest_sessions + DEFAULT_STRATEGY.reselect_every - 1),
        )
    ],
    check_specs=checks.MODEL_SELECTION_CHECKS,
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    description="Composite score on an absolute scale = 0.4·AIC/BIC + 0.3·forecast + 0.2·backtest + "
    "0.1·diagnostics (see README 'Scoring'); pairs above score_min are selected, ranked.",
)
def model_selection(
    context: dg.AssetExecutionContext,
    cointegrated_pairs: pd.DataFrame,
    garch_models: pd.DataFrame,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
):
    date, _sector = partition_parts(context)
    with stopwatch() as timer:
        window_label, closes = "n/a (no pairs)", None
        if not cointegrated_pairs.empty:
            legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
            formation = partitions.formation_session(date, strategy.reselect_every)
            window = read_window(
                store, bar_source.source_name, legs, formation, strategy.backtest_sessions, partition=context.partition_key
            )
            window_label, closes = window.label, window.closes
        scores, backtest_frame = selection_stage(closes, cointegrated_pairs, garch_models, strategy)
        check_results = checks.model_selection_results(scores, strategy)
    shown = scores.merge(backtest_frame[["pair_id", "sharpe", "n_trades"]], on="pair_id", how="left")
    yield dg.Output(
        scores,
        metadata={
            "backtest_window": window_label,
            "pairs_scored": len(scores),
            "selected": int(scores["selected"].sum()) if len(scores) else 0,
            "score_min": strategy.score_min,
            "weights": ", ".join(f"{w:g}" for w in strategy.score_weights),
            "note": "no pairs to score" if scores.empty else f"{int(scores['selected'].sum())} of {len(scores)} selected",
            "ranking": markdown_table(
                shown.sort_values("rank"),
                ["rank", "pair_id", "composite", "aic_score", "forecast_score", "backtest_score", "diagnostic_score", "sharpe", "n_trades", "selected"],
            ),
            "elapsed_seconds": timer["seconds"],
        },
    )
    yield from check_results
