"""garch_models: GARCH(1,1) (``arch``) on each cointegrated pair's spread returns over a long window."""


import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets.common import GROUP, markdown_table, partition_parts, read_window, stopwatch, universe
from pairs_assets.quant.stages import empty_garch_frame, garch_stage
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    ins={"cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping())},
    deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.garch_sessions + DEFAULT_STRATEGY.reselect_every - 1))],
    check_specs=checks.GARCH_CHECKS,
    group_name=GROUP,
    kinds={"arch", "parquet"},
    description="GARCH(1,1) with constant mean and normal errors on each pair's spread returns over "
    "garch_window sessions: parameters, log-likelihood, AIC/BIC, persistence, 1-step σ forecast, "
    "out-of-sample QLIKE against a naive variance forecast, Ljung-Box and ARCH-LM p-values.",
)
def garch_models(
    context: dg.AssetExecutionContext,
    cointegrated_pairs: pd.DataFrame,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
):
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        if cointegrated_pairs.empty:
            fits, window_label, fingerprint = empty_garch_frame(), "n/a (no pairs)", "n/a"
        else:
            legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
            window = read_window(
                store, bar_source.source_name, legs, partitions.formation_session(date, strategy.reselect_every),
                strategy.garch_sessions, partition=context.partition_key,
            )
            fits = garch_stage(window.closes, cointegrated_pairs, strategy)
            window_label, fingerprint = window.label, window.fingerprint
        check_results = checks.garch_results(fits, strategy)
    yield dg.Output(
        fits,
        metadata={
            "window": window_label,
            "models": len(fits),
            "converged": int(fits["converged"].sum()) if len(fits) else 0,
            "garch_window": strategy.garch_window,
            "forecast_holdout": strategy.garch_holdout,
            "note": "no cointegrated pairs: nothing to fit" if fits.empty else f"{len(fits)} GARCH(1,1) fit(s)",
            "models_table": markdown_table(
                fits, ["pair_id", "omega", "alpha", "beta", "persistence", "sigma_forecast", "forecast_ratio", "ljung_box_p", "arch_lm_p", "converged"]
            ),
            "input_fingerprint": fingerprint,
            "elapsed_seconds": timer["seconds"],
        },
    )
    yield from check_results
