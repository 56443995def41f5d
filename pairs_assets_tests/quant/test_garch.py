"""GARCH(1,1): known answers from arch/statsmodels on a real spread, no look-ahead, failures."""

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

from pairs_assets.quant.cointegration import hedge_ratio
from pairs_assets.quant.garch import (
    GarchFit,
    InsufficientHistoryError,
    fit_garch,
    holdout_variance_forecasts,
    qlike,
)

DATASET = Path(__file__).resolve().parents[2] / "pairs_assets" / "data" / "sp500_dataset.csv.gz"
HOLDOUT = 200


@lru_cache(maxsize=1)
def spread_returns() -> np.ndarray:
    """Daily log returns of log(KO) − b·log(PEP) over the last 1000 sessions of the dataset."""
    prices = np.log(pd.read_csv(DATASET, index_col="Date", parse_dates=True)[["KO", "PEP"]].iloc[-1001:])
    beta, _ = hedge_ratio(prices.KO, prices.PEP)
    return np.diff(prices.KO.to_numpy() - beta * prices.PEP.to_numpy())


@lru_cache(maxsize=1)
def ko_pep_fit() -> GarchFit:
    return fit_garch(spread_returns(), holdout=HOLDOUT)


@lru_cache(maxsize=1)
def direct_fit():
    return arch_model(spread_returns() * 100.0, mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fit(disp="off")


def test_parameters_and_likelihood_match_arch():
    fit, reference = ko_pep_fit(), direct_fit()
    params = reference.params
    assert fit.mu == pytest.approx(params["mu"] / 100.0, rel=1e-10)
    assert fit.omega == pytest.approx(params["omega"] / 100.0**2, rel=1e-10)
    assert fit.alpha == pytest.approx(params["alpha[1]"], rel=1e-10)
    assert fit.beta == pytest.approx(params["beta[1]"], rel=1e-10)
    assert fit.persistence == pytest.approx(params["alpha[1]"] + params["beta[1]"], rel=1e-12)
    assert (fit.loglik, fit.aic, fit.bic) == pytest.approx(
        (reference.loglikelihood, reference.aic, reference.bic), rel=1e-12
    )
    sigma_next = math.sqrt(reference.forecast(horizon=1, reindex=False).variance.iloc[-1, 0]) / 100.0
    assert fit.sigma_forecast == pytest.approx(sigma_next, rel=1e-12)
    assert fit.converged and fit.n_obs == 1000 and fit.scale == 100.0


def test_constant_variance_criteria_match_arch_constant_model():
    reference = arch_model(spread_returns() * 100.0, mean="Constant", vol="Constant", dist="normal").fit(disp="off")
    fit = ko_pep_fit()
    assert (fit.aic_constant, fit.bic_constant) == pytest.approx((reference.aic, reference.bic), rel=1e-7)
    # a real spread has volatility clustering: GARCH wins on both criteria
    assert fit.aic < fit.aic_constant and fit.bic < fit.bic_constant


def test_diagnostics_match_statsmodels():
    std_resid = np.asarray(direct_fit().std_resid)
    fit = ko_pep_fit()
    assert fit.ljung_box_p == pytest.approx(
        acorr_ljungbox(std_resid, lags=[10], return_df=True)["lb_pvalue"].iloc[0], rel=1e-9
    )
    assert fit.arch_lm_p == pytest.approx(het_arch(std_resid, nlags=5, result_object=True).lmpval, rel=1e-9)


def test_holdout_forecasts_follow_the_garch_recursion_with_training_parameters():
    returns = spread_returns()
    frame = holdout_variance_forecasts(returns, HOLDOUT)
    training = arch_model(returns * 100.0, mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fit(
        disp="off", last_obs=len(returns) - HOLDOUT
    )
    mu, omega, alpha, beta = training.params
    scaled_var = frame.garch_variance.to_numpy() * 1e4
    residual_sq = (returns[-HOLDOUT:] * 100.0 - mu) ** 2
    np.testing.assert_allclose(frame.squared_residual.to_numpy() * 1e4, residual_sq, rtol=1e-12)
    # forecast for t+1 made at close t: omega + alpha·e_t² + beta·h_t — only data up to t
    np.testing.assert_allclose(scaled_var[1:], omega + alpha * residual_sq[:-1] + beta * scaled_var[:-1], rtol=1e-10)
    np.testing.assert_allclose(frame.naive_variance, np.var(returns[:-HOLDOUT]), rtol=1e-12)


def test_holdout_forecasts_have_no_look_ahead():
    returns = spread_returns()
    base = holdout_variance_forecasts(returns, HOLDOUT)
    changed = returns.copy()
    cut = len(returns) - HOLDOUT + 50
    changed[cut:] *= 3.0  # alter everything from holdout position 50 on
    other = holdout_variance_forecasts(changed, HOLDOUT)
    # the forecast for position cut is made at cut-1 and must not move; later ones may
    np.testing.assert_array_equal(base.garch_variance.loc[:cut].to_numpy(), other.garch_variance.loc[:cut].to_numpy())
    assert not np.allclose(base.garch_variance.loc[cut + 1 :], other.garch_variance.loc[cut + 1 :])


def test_forecast_ratio_is_the_qlike_ratio():
    fit = ko_pep_fit()
    frame = holdout_variance_forecasts(spread_returns(), HOLDOUT)
    floor = 1e-8 * frame.naive_variance.iloc[0]
    assert fit.qlike_garch == pytest.approx(qlike(frame.squared_residual, frame.garch_variance, floor), rel=1e-9)
    assert fit.qlike_naive == pytest.approx(qlike(frame.squared_residual, frame.naive_variance, floor), rel=1e-9)
    assert fit.forecast_ratio == pytest.approx(fit.qlike_garch / fit.qlike_naive, rel=1e-12)


def test_qlike_known_values_and_zero_guard():
    assert qlike(np.array([2.0]), np.array([2.0]), 1e-12) == 0.0
    assert qlike(np.array([1.0]), np.array([2.0]), 1e-12) == pytest.approx(0.5 - math.log(0.5) - 1.0)
    assert math.isfinite(qlike(np.array([0.0]), np.array([1.0]), 1e-12))


def test_as_dict_has_every_field_in_order():
    fit = ko_pep_fit()
    assert list(fit.as_dict()) == [
        "mu", "omega", "alpha", "beta", "persistence", "loglik", "aic", "bic", "aic_constant",
        "bic_constant", "sigma_forecast", "qlike_garch", "qlike_naive", "forecast_ratio",
        "ljung_box_p", "arch_lm_p", "converged", "convergence_message", "n_obs", "scale", "estimator",
    ]  # fmt: skip
    assert fit.estimator == "arch"


def test_non_convergence_is_recorded_not_raised():
    # unscaled-down data (scale 0.01 → values ~1e-4) defeats arch's optimiser
    fit = fit_garch(spread_returns(), holdout=HOLDOUT, scale=0.01)
    assert fit.converged is False
    assert "full-sample fit:" in fit.convergence_message and "training fit:" in fit.convergence_message


def test_bad_inputs_raise_naming_the_field():
    returns = spread_returns()
    with pytest.raises(InsufficientHistoryError, match="min_obs=500"):
        fit_garch(returns[:499], holdout=50)
    with pytest.raises(InsufficientHistoryError, match="holdout=800"):
        fit_garch(returns, holdout=800)
    with pytest.raises(ValueError, match="returns contains 1 NaN"):
        fit_garch(np.r_[returns[:-1], np.nan], holdout=HOLDOUT)
    with pytest.raises(ValueError, match="holdout"):
        fit_garch(returns, holdout=0)
    with pytest.raises(ValueError, match="scale"):
        fit_garch(returns, holdout=HOLDOUT, scale=-1.0)


def test_training_features_and_the_live_filter_agree_exactly():
    """gru_models' GARCH features and the signal job's filter run the same recursion on the same parameters."""
    from pairs_assets.quant import signals
    from pairs_assets.quant.garch import garch_filter

    rng = np.random.default_rng(3)
    returns = pd.Series(rng.standard_normal(800) * 0.01, index=pd.bdate_range("2019-01-01", periods=800))
    frame, params = garch_filter(returns, fit_until=600)
    live = signals.GarchParams(sigma_forecast=float("nan"), **params)
    sigma, resid = signals.garch_filter_fixed(returns.to_numpy(), live)
    np.testing.assert_array_equal(frame["garch_sigma"].to_numpy(), sigma)
    np.testing.assert_array_equal(frame["garch_std_resid"].to_numpy(), resid)
