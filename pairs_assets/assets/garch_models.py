"""garch_models: GARCH(1,1) (``arch``) on each cointegrated pair's spread returns over a long window."""


import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets.common import GROUP, markdown_table, partition_parts, read_window, stopwatch, universe
from pairs_assets.quant.cointegration import spread
from pairs_assets.quant.garch import fit_garch, unconditional_sigma
from pairs_assets.quant.scoring import forecast_score
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore

GARCH_COLUMNS = [
    "pair_id", "mu", "omega", "alpha", "beta", "persistence", "loglik", "aic", "bic", "sigma_forecast",
    "forecast_score", "ljung_box_p", "arch_lm_p", "converged", "n_obs",
    # beyond the contract: what the scores and the trading side need
    "aic_constant", "bic_constant", "qlike_garch", "qlike_naive", "forecast_ratio", "unconditional_sigma",
    "convergence_message", "scale",
]


def spread_returns(closes: pd.DataFrame, y: str, x: str, hedge_ratio: float, intercept: float) -> pd.Series:
    """Daily changes of the spread log(y) − β·log(x) − α (the formation window's β and α)."""
    return spread(closes[y], closes[x], hedge_ratio, intercept).diff().dropna()


def empty_garch_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in GARCH_COLUMNS})
    return frame.astype({"pair_id": object, "converged": bool, "n_obs": "int64", "convergence_message": object})


@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    ins={"cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping())},
    deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.garch_window + 1))],
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
    rows = []
    with stopwatch() as timer:
        if cointegrated_pairs.empty:
            fits, window_label, fingerprint = empty_garch_frame(), "n/a (no pairs)", "n/a"
        else:
            legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
            window = read_window(
                store, bar_source.source_name, legs, date, strategy.garch_window + 1, partition=context.partition_key
            )
            for pair in cointegrated_pairs.itertuples():
                returns = spread_returns(window.closes, pair.y, pair.x, pair.hedge_ratio, pair.intercept)
                fit = fit_garch(returns.to_numpy(), holdout=strategy.garch_holdout, min_obs=500)
                row = {"pair_id": pair.pair_id, **fit.as_dict()}
                row["forecast_score"] = float(forecast_score(fit.forecast_ratio))
                row["unconditional_sigma"] = unconditional_sigma(fit.omega, fit.alpha, fit.beta)
                rows.append(row)
            fits = pd.DataFrame(rows)[GARCH_COLUMNS]
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
