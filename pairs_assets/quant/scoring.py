"""Composite model score of a pair on an absolute scale (comparable across days and sectors).

Each component lies in [0, 1]; ``σ(u) = 1 / (1 + e^(−u))`` is the logistic function.

* **aic_score**, with Δ = mean(ΔAIC, ΔBIC), Δ = constant-variance criterion − GARCH criterion on
  the same data (positive: GARCH explains the spread's variance better), on one of two scales:

  - ``aic_scale="per_observation"`` (the default): d = max(Δ, 0) / n per return fitted, and
    aic_score = d / (d + AIC_PER_OBS_SCALE). d is (up to the parameter penalty) twice the mean
    log-likelihood ratio per observation, so pairs fitted on different windows compare, and the
    score does not saturate: AIC_PER_OBS_SCALE = 0.077 is the median d of the cointegrated
    pair-days of 1995–2010 (the development years, seed selection, n = 166), which score 0.5; the
    largest seen there (d = 1.15) scores 0.94; no GARCH gain scores 0.
  - ``aic_scale="total"`` (the seed's): σ(Δ / 10), 10 being the conventional "very strong
    evidence" difference (Burnham & Anderson 2002). Every real pair's Δ is in the hundreds over a
    1,000-return window (KO-PEP, XOM-CVX, JPM-BAC, AAPL-MSFT, KO-PG: 139–417), so it scores
    1.0000 for all of them and does not discriminate; kept for the ``seed`` preset.
* **forecast_score** = σ( 10 · (1 − forecast_ratio) ), forecast_ratio = out-of-sample QLIKE of
  GARCH / QLIKE of the naive constant-variance forecast (Patton 2011). Equal accuracy scores 0.5;
  a 10 % lower loss scores 0.73.
* **backtest_score** = σ( annualised Sharpe ratio of the recent backtest ); 0.5 when it made no
  trades.
* **diagnostic_score** = 0.5 · min(1, p_LB / α) + 0.5 · min(1, p_ARCH / α), with p_LB the Ljung-Box
  and p_ARCH the ARCH-LM p-value of the standardised residuals and α = ``diag_alpha``: full marks
  when neither test rejects an adequate model at level α, proportionally less otherwise.
* **composite** = w_aic · aic_score + w_forecast · forecast_score + w_backtest · backtest_score
  + w_diag · diagnostic_score, weights default (0.4, 0.3, 0.2, 0.1) and summing to 1, so the
  composite is in [0, 1] as well.

A pair is **selected** when composite > ``threshold`` and its GARCH fit converged. **rank** 1 is
the best composite (ties broken by pair_id).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit

from pairs_assets.quant.strategy import DEFAULT_STRATEGY, Strategy

__all__ = [
    "AIC_PER_OBS_SCALE",
    "AIC_SCALES",
    "AIC_SCALE",
    "FORECAST_SLOPE",
    "SCORE_COLUMNS",
    "forecast_score",
    "score_models",
]

SCORE_COLUMNS = [
    "pair_id",
    "aic_score",
    "forecast_score",
    "backtest_score",
    "diagnostic_score",
    "composite",
    "selected",
    "rank",
]
# Scale constants of the formula (module docstring), not selection thresholds.
AIC_SCALE = 10.0
#: median per-observation ΔIC of the development years' cointegrated pair-days (module docstring)
AIC_PER_OBS_SCALE = 0.077
AIC_SCALES = ("per_observation", "total")
FORECAST_SLOPE = 10.0

_GARCH_COLUMNS = [
    "pair_id",
    "aic",
    "bic",
    "aic_constant",
    "bic_constant",
    "forecast_ratio",
    "ljung_box_p",
    "arch_lm_p",
    "converged",
]
_BACKTEST_COLUMNS = ["pair_id", "sharpe", "n_trades"]


def _empty_scores() -> pd.DataFrame:
    dtypes = {
        "pair_id": object,
        "aic_score": "float64",
        "forecast_score": "float64",
        "backtest_score": "float64",
        "diagnostic_score": "float64",
        "composite": "float64",
        "selected": bool,
        "rank": "int64",
    }
    return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in dtypes.items()})


def _check_frame(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s): {missing}")
    duplicated = frame["pair_id"][frame["pair_id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"{name} has duplicated pair_id(s): {sorted(map(str, duplicated))}")
    for column in columns[1:]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame["pair_id"][values.isna() | ~np.isfinite(values.astype(float))]
        if len(bad):
            raise ValueError(f"{name}.{column} is missing or not finite for pair(s): {sorted(map(str, bad))}")


#: The seed design's composite gate (preset ``seed``'s ``score_min``): this function's default cut-off.
_SEED_SCORE_MIN = Strategy.preset("seed").score_min


def score_models(
    garch: pd.DataFrame,
    backtests: pd.DataFrame,
    weights: tuple[float, float, float, float] = tuple(DEFAULT_STRATEGY.score_weights),
    threshold: float = _SEED_SCORE_MIN,
    diag_alpha: float = DEFAULT_STRATEGY.diagnostics_alpha,
    aic_scale: str = DEFAULT_STRATEGY.aic_scale,
) -> pd.DataFrame:
    """Score each pair's GARCH model and recent backtest (formula in the module docstring).

    Parameters
    ----------
    garch : pandas.DataFrame
        One row per pair with (at least) pair_id, aic, bic, aic_constant, bic_constant,
        forecast_ratio, ljung_box_p, arch_lm_p, converged (see :class:`~pairs_assets.quant.garch.GarchFit`).
    backtests : pandas.DataFrame
        One row per pair with pair_id, sharpe, n_trades (see
        :class:`~pairs_assets.quant.backtest.BacktestResult`), covering every pair in ``garch``.
    weights : tuple of 4 float, default (0.4, 0.3, 0.2, 0.1)
        (aic, forecast, backtest, diagnostic) weights, non-negative, summing to 1.
    threshold : float, default 0.7
        Selection cut-off on the composite.
    diag_alpha : float, default 0.05
        Significance level of the diagnostics.
    aic_scale : {"per_observation", "total"}, default "per_observation"
        ``per_observation`` needs an ``n_obs`` column in ``garch``.

    Returns
    -------
    pandas.DataFrame
        pair_id, aic_score, forecast_score, backtest_score, diagnostic_score, composite, selected,
        rank; sorted by rank.

    References
    ----------
    Akaike (1974), Schwarz (1978), Burnham & Anderson (2002) for criterion differences; Patton
    (2011) QLIKE; Ljung & Box (1978); Engle (1982) ARCH-LM; Sharpe (1966).
    """
    if len(weights) != 4:
        raise ValueError(f"weights must have 4 entries (aic, forecast, backtest, diagnostic), got {len(weights)}")
    if any(not math.isfinite(w) or w < 0.0 for w in weights):
        raise ValueError(f"weights must be finite and non-negative, got {tuple(weights)}")
    if not math.isclose(sum(weights), 1.0, rel_tol=0.0, abs_tol=1e-9):
        raise ValueError(f"weights must sum to 1, got {tuple(weights)} (sum {sum(weights)})")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not 0.0 < diag_alpha < 1.0:
        raise ValueError(f"diag_alpha must be in (0, 1), got {diag_alpha}")
    if aic_scale not in AIC_SCALES:
        raise ValueError(f"aic_scale must be one of {AIC_SCALES}, got {aic_scale!r}")
    per_observation = aic_scale == "per_observation"
    _check_frame(garch, "garch", _GARCH_COLUMNS + (["n_obs"] if per_observation else []))
    _check_frame(backtests, "backtests", _BACKTEST_COLUMNS)
    if garch.empty:
        return _empty_scores()
    missing = sorted(set(map(str, garch["pair_id"])) - set(map(str, backtests["pair_id"])))
    if missing:
        raise ValueError(f"backtests has no row for pair(s): {missing}")

    n_obs = garch["n_obs"].to_numpy(dtype=float) if per_observation else None
    if per_observation and (n_obs <= 0).any():
        raise ValueError(f"garch.n_obs must be positive for pair(s): {sorted(map(str, garch['pair_id'][n_obs <= 0]))}")
    merged = garch[_GARCH_COLUMNS + (["n_obs"] if per_observation else [])].merge(
        backtests[_BACKTEST_COLUMNS], on="pair_id", how="left", validate="one_to_one"
    )
    column = {name: merged[name].to_numpy(dtype=float) for name in _GARCH_COLUMNS[1:-1] + _BACKTEST_COLUMNS[1:]}
    delta_aic = column["aic_constant"] - column["aic"]
    delta_bic = column["bic_constant"] - column["bic"]
    delta = (delta_aic + delta_bic) / 2.0
    if per_observation:
        gain = np.maximum(delta, 0.0) / merged["n_obs"].to_numpy(dtype=float)
        aic_score = gain / (gain + AIC_PER_OBS_SCALE)
    else:
        aic_score = expit(delta / AIC_SCALE)
    forecast_component = forecast_score(column["forecast_ratio"])
    backtest_score = np.where(column["n_trades"] > 0, expit(column["sharpe"]), 0.5)
    diagnostic_score = 0.5 * np.minimum(1.0, column["ljung_box_p"] / diag_alpha) + 0.5 * np.minimum(
        1.0, column["arch_lm_p"] / diag_alpha
    )
    w_aic, w_forecast, w_backtest, w_diag = weights
    composite = (
        w_aic * aic_score + w_forecast * forecast_component + w_backtest * backtest_score + w_diag * diagnostic_score
    )
    scores = pd.DataFrame(
        {
            "pair_id": merged["pair_id"].astype(object).to_numpy(),
            "aic_score": aic_score,
            "forecast_score": forecast_component,
            "backtest_score": backtest_score,
            "diagnostic_score": diagnostic_score,
            "composite": composite,
            "selected": (composite > threshold) & merged["converged"].astype(bool).to_numpy(),
        }
    )
    scores = scores.sort_values(["composite", "pair_id"], ascending=[False, True], kind="mergesort").reset_index(
        drop=True
    )
    scores["rank"] = np.arange(1, len(scores) + 1, dtype=np.int64)
    return scores[SCORE_COLUMNS]


def forecast_score(forecast_ratio):
    """The forecast component σ(10 · (1 − forecast_ratio)).

    Parameters
    ----------
    forecast_ratio : float or ndarray
        qlike_garch / qlike_naive.

    Returns
    -------
    float or ndarray
        In (0, 1); above 0.5 when GARCH forecasts better than the constant variance.
    """
    return expit(FORECAST_SLOPE * (1.0 - np.asarray(forecast_ratio, dtype=float)))
