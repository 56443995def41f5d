"""garch_models: GARCH(1,1) on each cointegrated pair's spread returns over a long window, all pairs of a
partition in one batched fit (``quant.garch.fit_garch_many``; ``arch`` as its recorded fallback)."""

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
from pairs_assets.quant.stages import empty_garch_frame, garch_stage
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


def garch_models_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its window (``strategy``'s ``garch_sessions``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="garch_models",
        partitions_def=daily,
        ins={"cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping())},
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.reach(strategy.garch_sessions),
            f"{strategy.garch_sessions} sessions (garch_sessions) ending at its formation session, every {strategy.reselect_every}",
        ),
        check_specs=checks.check_specs(checks.GARCH_CHECKS, daily),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"arch", "parquet"},
        description="GARCH(1,1) with constant mean and normal errors on each pair's spread returns over "
        "garch_window sessions: parameters, log-likelihood, AIC/BIC, persistence, 1-step σ forecast, "
        "out-of-sample QLIKE against a naive variance forecast, Ljung-Box and ARCH-LM p-values.",
    )(garch_models)


def garch_models(
    context: dg.AssetExecutionContext,
    cointegrated_pairs,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
):
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        with stopwatch() as timer:
            sector_ranges = ranges.sector_ranges(
                context, store, bar_source.source_name, strategy, home, lookback=strategy.garch_sessions
            )
            outputs = ranges.per_cohort(
                sector_ranges,
                lambda rng, _f, dates: garch_partition(
                    rng.windows, str(dates[0].date()), rng.sector, cointegrated_pairs[rng.key(dates[0])], strategy
                ),
            )
        fits = {key: value[0] for key, value in outputs.items()}
        ranges.record_partition_metadata(context, {key: value[1] for key, value in outputs.items()})
        yield dg.Output(
            fits,
            metadata=ranges.range_metadata(
                sector_ranges,
                timer["seconds"],
                models=sum(len(f) for f in fits.values()),
                garch_window=strategy.garch_window,
                forecast_holdout=strategy.garch_holdout,
            ),
        )
        yield from ranges.check_outputs(context)
        yield from ranges.check_evaluations(context, checks.GARCH_CHECKS, {k: v[2] for k, v in outputs.items()})
        return
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        fits, metadata, check_results = garch_partition(
            WindowReader(store, bar_source.source_name, home=home), date, sector, cointegrated_pairs, strategy
        )
    yield dg.Output(fits, metadata={**metadata, "elapsed_seconds": timer["seconds"]})
    yield from check_results


def garch_partition(
    windows: WindowReader, date: str, sector: str, cointegrated_pairs: pd.DataFrame, strategy: StrategySettings
) -> tuple[pd.DataFrame, dict, list[dg.AssetCheckResult]]:
    """One partition's GARCH fits, metadata and check results (a one-partition run and a range run alike)."""
    if cointegrated_pairs.empty:
        fits, window_label, fingerprint = empty_garch_frame(), "n/a (no pairs)", "n/a"
    else:
        legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
        window = windows.read(
            legs,
            windows.formation_session(date, strategy.reselect_every, strategy.formation_phase),
            strategy.garch_sessions,
            partition=f"{date}|{sector}",
        )
        fits = garch_stage(window.closes, cointegrated_pairs, strategy)
        window_label, fingerprint = window.label, window.fingerprint
    check_results = checks.garch_results(fits, strategy)
    metadata = {
        "window": window_label,
        "models": len(fits),
        "converged": int(fits["converged"].sum()) if len(fits) else 0,
        # which code fitted each pair: the batched estimator, or arch as its recorded fallback
        "estimators": dg.MetadataValue.json(
            {str(k): int(v) for k, v in fits["estimator"].value_counts().sort_index().items()}
        ),
        "garch_window": strategy.garch_window,
        "forecast_holdout": strategy.garch_holdout,
        "note": "no cointegrated pairs: nothing to fit" if fits.empty else f"{len(fits)} GARCH(1,1) fit(s)",
        "models_table": markdown_table(
            fits,
            [
                "pair_id",
                "omega",
                "alpha",
                "beta",
                "persistence",
                "sigma_forecast",
                "forecast_ratio",
                "ljung_box_p",
                "arch_lm_p",
                "converged",
                "estimator",
            ],
        ),
        "input_fingerprint": fingerprint,
    }
    return fits, metadata, check_results
