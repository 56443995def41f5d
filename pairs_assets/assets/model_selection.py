"""model_selection: the composite score (40% AIC/BIC, 30% forecast, 20% recent backtest, 10% diagnostics)."""

import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import (
    GROUP,
    WindowReader,
    history_window_metadata,
    markdown_table,
    partition_parts,
    stopwatch,
)
from pairs_assets.home import PairsHome
from pairs_assets.quant.stages import selection_stage
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


def model_selection_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its window (``strategy``'s ``backtest_sessions``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="model_selection",
        partitions_def=daily,
        ins={
            "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "garch_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        },
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.reach(strategy.backtest_sessions),
            f"{strategy.backtest_sessions} sessions (backtest_sessions) ending at its formation session, every {strategy.reselect_every}",
        ),
        check_specs=checks.check_specs(checks.MODEL_SELECTION_CHECKS, daily),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"pandas", "parquet"},
        description="Composite score on an absolute scale = 0.4·AIC/BIC + 0.3·forecast + 0.2·backtest + "
        "0.1·diagnostics (see docs/methodology.md 'Scoring'); pairs above score_min are selected, ranked.",
    )(model_selection)


def model_selection(
    context: dg.AssetExecutionContext,
    cointegrated_pairs,
    garch_models,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
):
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        with stopwatch() as timer:
            sector_ranges = ranges.sector_ranges(
                context, store, bar_source.source_name, strategy, home, lookback=strategy.backtest_sessions
            )
            outputs = ranges.per_cohort(
                sector_ranges,
                lambda rng, _f, dates: selection_partition(
                    rng.windows,
                    str(dates[0].date()),
                    rng.sector,
                    cointegrated_pairs[rng.key(dates[0])],
                    garch_models[rng.key(dates[0])],
                    strategy,
                ),
            )
        scores = {key: value[0] for key, value in outputs.items()}
        ranges.record_partition_metadata(context, {key: value[1] for key, value in outputs.items()})
        yield dg.Output(
            scores,
            metadata=ranges.range_metadata(
                sector_ranges,
                timer["seconds"],
                pairs_scored=sum(len(s) for s in scores.values()),
                selected=sum(int(s["selected"].sum()) for s in scores.values() if len(s)),
                partitions_with_selected_pairs=sum(bool(len(s)) and bool(s["selected"].any()) for s in scores.values()),
                score_min=strategy.score_min,
            ),
        )
        yield from ranges.check_outputs(context)
        yield from ranges.check_evaluations(
            context, checks.MODEL_SELECTION_CHECKS, {k: v[2] for k, v in outputs.items()}
        )
        return
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        scores, metadata, check_results = selection_partition(
            WindowReader(store, bar_source.source_name, home=home),
            date,
            sector,
            cointegrated_pairs,
            garch_models,
            strategy,
        )
    yield dg.Output(scores, metadata={**metadata, "elapsed_seconds": timer["seconds"]})
    yield from check_results


def selection_partition(
    windows: WindowReader,
    date: str,
    sector: str,
    cointegrated_pairs: pd.DataFrame,
    garch_models: pd.DataFrame,
    strategy: StrategySettings,
) -> tuple[pd.DataFrame, dict, list[dg.AssetCheckResult]]:
    """One partition's scores, metadata and check results (a one-partition run and a range run alike)."""
    window_label, closes = "n/a (no pairs)", None
    if not cointegrated_pairs.empty:
        legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
        formation = windows.formation_session(date, strategy.reselect_every, strategy.formation_phase)
        window = windows.read(legs, formation, strategy.backtest_sessions, partition=f"{date}|{sector}")
        window_label, closes = window.label, window.closes
    scores, backtest_frame = selection_stage(closes, cointegrated_pairs, garch_models, strategy)
    check_results = checks.model_selection_results(scores, strategy)
    shown = scores.merge(backtest_frame[["pair_id", "sharpe", "n_trades"]], on="pair_id", how="left")
    metadata = {
        "backtest_window": window_label,
        "pairs_scored": len(scores),
        "selected": int(scores["selected"].sum()) if len(scores) else 0,
        "score_min": strategy.score_min,
        "weights": ", ".join(f"{w:g}" for w in strategy.score_weights),
        "note": "no pairs to score" if scores.empty else f"{int(scores['selected'].sum())} of {len(scores)} selected",
        "ranking": markdown_table(
            shown.sort_values("rank"),
            [
                "rank",
                "pair_id",
                "composite",
                "aic_score",
                "forecast_score",
                "backtest_score",
                "diagnostic_score",
                "sharpe",
                "n_trades",
                "selected",
            ],
        ),
    }
    return scores, metadata, check_results
