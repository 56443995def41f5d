"""Batched GARCH(1,1) (fit_garch_many) against arch and statsmodels on real same-sector spreads."""

import itertools
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from arch import arch_model
from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

from pairs_assets.quant import _garch_numba as kernels
from pairs_assets.quant import garch
from pairs_assets.quant.cointegration import hedge_ratio
from pairs_assets.quant.garch import ARCH, BATCHED, InsufficientHistoryError, fit_garch, fit_garch_many

DATA = Path(__file__).resolve().parents[2] / "pairs_assets" / "data"
WINDOW = 1000  # returns per series, the default garch_window
HOLDOUT = 250  # the default garch_holdout


def same_sector_spreads(windows_per_pair: int, window: int = WINDOW) -> tuple[list[str], list[np.ndarray]]:
    """Spread log returns of every same-sector pair of the embedded dataset over several windows.

    For each pair (sectors from universe.yaml) and each of ``windows_per_pair`` windows of
    ``window + 1`` sessions spread evenly over 1990-2022: log(y) − b·log(x) with the window's OLS
    hedge ratio b, differenced. Returns (labels "Y-X@end-date", series).
    """
    prices = np.log(pd.read_csv(DATA / "sp500_dataset.csv.gz", index_col="Date", parse_dates=True))
    sectors = yaml.safe_load((DATA / "universe.yaml").read_text())["sectors"]
    pairs = [pair for symbols in sectors.values() for pair in itertools.combinations(sorted(symbols), 2)]
    ends = np.linspace(window + 1, len(prices), windows_per_pair).astype(int)
    labels, series = [], []
    for end in ends:
        for y, x in pairs:
            frame = prices[[y, x]].iloc[end - window - 1 : end]
            beta, _ = hedge_ratio(frame[y], frame[x])
            series.append(np.diff(frame[y].to_numpy() - beta * frame[x].to_numpy()))
            labels.append(f"{y}-{x}@{frame.index[-1].date()}")
    return labels, series


@lru_cache(maxsize=1)
def real_spreads():
    return same_sector_spreads(windows_per_pair=3)


@lru_cache(maxsize=1)
def batched_and_reference():
    labels, series = real_spreads()
    batched = fit_garch_many(series, holdout=HOLDOUT, labels=labels)
    reference = [fit_garch(values, holdout=HOLDOUT) for values in series]
    return batched, reference


def test_loglik_matches_arch_on_real_spreads():
    batched, reference = batched_and_reference()
    assert len(batched) == len(reference) == 96
    gaps = np.array([b.loglik - r.loglik for b, r in zip(batched, reference)])
    # the bar is 99% on 1,000 spreads (bench_garch.py); on 96 spreads allow one miss
    assert np.mean(np.abs(gaps) < 1e-3) >= 0.98, gaps[np.abs(gaps) >= 1e-3]
    # where the likelihoods agree, so do the parameters and everything computed from them
    agree = [(b, r) for b, r in zip(batched, reference) if abs(b.loglik - r.loglik) < 1e-6]
    assert len(agree) >= 0.9 * len(batched)
    for b, r in agree:
        assert b.persistence == pytest.approx(r.persistence, abs=1e-3)
        assert b.sigma_forecast == pytest.approx(r.sigma_forecast, rel=1e-3)
        assert (b.aic, b.bic) == pytest.approx((r.aic, r.bic), abs=2e-6)
        assert (b.aic_constant, b.bic_constant) == pytest.approx((r.aic_constant, r.bic_constant), rel=1e-12)
        assert b.ljung_box_p == pytest.approx(r.ljung_box_p, abs=1e-3)
        assert b.arch_lm_p == pytest.approx(r.arch_lm_p, abs=1e-3)
        assert (b.n_obs, b.scale, b.converged) == (r.n_obs, r.scale, True)
    # the holdout forecasts depend on the training fit: most agree closely
    ratios = np.array([abs(b.forecast_ratio - r.forecast_ratio) for b, r in zip(batched, reference)])
    assert np.mean(ratios < 1e-3) >= 0.85


def test_estimator_is_recorded_and_alpha_zero_goes_to_arch():
    batched, _ = batched_and_reference()
    assert {fit.estimator for fit in batched} <= {BATCHED, f"{ARCH}/{BATCHED}"}
    for fit in batched:
        if fit.estimator == BATCHED:
            assert fit.alpha > 0.0 and "batched Newton converged" in fit.convergence_message
        else:  # the full-sample fit came from arch, with the reason recorded
            assert "full-sample fit: arch fallback (alpha on its lower bound 0)" in fit.convergence_message


def test_deterministic_parts_equal_arch_and_statsmodels_given_the_parameters():
    """Forecasts, standardized residuals, diagnostics and QLIKE from arch's own parameters."""
    _, series = real_spreads()
    for values in series[:12]:
        scaled = values * 100.0
        n_train = scaled.size - HOLDOUT
        full = arch_model(scaled, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")
        train = arch_model(scaled, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off", last_obs=n_train)
        out = np.full(kernels.RESULT_SIZE, np.nan)
        out[:4] = full.params.to_numpy()
        out[kernels.TRAIN_OFFSET : kernels.TRAIN_OFFSET + 4] = train.params.to_numpy()
        kernels.summarise(scaled, HOLDOUT, out, 10, 5, 1e-8)

        sigma2_next = full.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0]
        assert out[kernels.SIGMA2_NEXT] == pytest.approx(sigma2_next, rel=1e-12)
        std_resid = np.asarray(full.std_resid)
        lb = acorr_ljungbox(std_resid, lags=[10], return_df=True)["lb_stat"].iloc[0]
        assert out[kernels.LJUNG_BOX_Q] == pytest.approx(lb, rel=1e-9)
        assert out[kernels.ARCH_LM] == pytest.approx(het_arch(std_resid, nlags=5, result_object=True).lm, rel=1e-9)
        forecasts = garch.holdout_variance_forecasts(values, holdout=HOLDOUT)
        squared = forecasts["squared_residual"].to_numpy() * 1e4
        floor = 1e-8 * forecasts["naive_variance"].iloc[0] * 1e4
        qlike_garch = garch.qlike(squared, forecasts["garch_variance"].to_numpy() * 1e4, floor)
        assert out[kernels.QLIKE_GARCH] == pytest.approx(qlike_garch, rel=1e-10)

        # the likelihood, backcast and variance bounds are arch's: same value at arch's optimum
        mean = scaled.mean()
        backcast, lower, upper = kernels.backcast_and_bounds(scaled - mean)
        mu, omega, alpha, beta = full.params.to_numpy()
        nll = kernels.negloglik(scaled, mu, omega, alpha, beta, backcast, lower, upper)
        assert -nll == pytest.approx(full.loglikelihood, rel=1e-12)
        variance = kernels.conditional_variance(scaled - mu, omega, alpha, beta, backcast, lower, upper)
        np.testing.assert_allclose(np.sqrt(variance), np.asarray(full.conditional_volatility), rtol=1e-12)


def test_analytic_derivatives_match_finite_differences():
    _, series = real_spreads()
    scaled = series[5] * 100.0
    backcast, lower, upper = kernels.backcast_and_bounds(scaled - scaled.mean())
    theta = np.array([0.01, 0.05, 0.08, 0.85])
    grad, hess = np.zeros(4), np.zeros((4, 4))
    kernels.negloglik_derivatives(scaled, *theta, backcast, lower, upper, grad, hess)
    step = 1e-6
    numeric_grad, numeric_hess = np.zeros(4), np.zeros((4, 4))
    for i in range(4):
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        numeric_grad[i] = (
            kernels.negloglik(scaled, *up, backcast, lower, upper)
            - kernels.negloglik(scaled, *down, backcast, lower, upper)
        ) / (2 * step)
        g_up, g_down, h_tmp = np.zeros(4), np.zeros(4), np.zeros((4, 4))
        kernels.negloglik_derivatives(scaled, *up, backcast, lower, upper, g_up, h_tmp)
        kernels.negloglik_derivatives(scaled, *down, backcast, lower, upper, g_down, h_tmp)
        numeric_hess[i] = (g_up - g_down) / (2 * step)
    np.testing.assert_allclose(grad, numeric_grad, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(hess, numeric_hess, rtol=1e-5, atol=1e-2)


def test_non_convergence_falls_back_to_arch_and_is_recorded(monkeypatch):
    labels, series = real_spreads()
    monkeypatch.setattr(garch, "_BATCH_MAX_ITER", 1)
    fits = fit_garch_many(series[:3], holdout=HOLDOUT, labels=labels[:3])
    for fit, values in zip(fits, series[:3]):
        reference = fit_garch(values, holdout=HOLDOUT)
        assert fit.estimator == ARCH
        assert "full-sample fit: arch fallback (no convergence in 1 iterations)" in fit.convergence_message
        assert "training fit: arch fallback (no convergence in 1 iterations)" in fit.convergence_message
        for field in (
            "mu",
            "omega",
            "alpha",
            "beta",
            "loglik",
            "aic",
            "bic",
            "sigma_forecast",
            "qlike_garch",
            "qlike_naive",
            "forecast_ratio",
            "ljung_box_p",
            "arch_lm_p",
        ):
            assert getattr(fit, field) == pytest.approx(getattr(reference, field), rel=1e-8, abs=1e-12), field
        assert fit.converged == reference.converged

    kept = fit_garch_many(series[:2], holdout=HOLDOUT, fallback=False)
    assert [fit.estimator for fit in kept] == [BATCHED, BATCHED]
    assert not any(fit.converged for fit in kept)
    assert all("not trustworthy (no convergence in 1 iterations)" in fit.convergence_message for fit in kept)


def test_inputs_list_array_and_errors_name_the_series():
    _, series = real_spreads()
    as_list = fit_garch_many(series[:3], holdout=HOLDOUT)
    as_array = fit_garch_many(np.vstack(series[:3]), holdout=HOLDOUT)
    assert [f.as_dict() for f in as_list] == [f.as_dict() for f in as_array]
    assert fit_garch_many([], holdout=HOLDOUT) == []
    # series of different lengths are fine
    mixed = fit_garch_many([series[0], series[1][-600:]], holdout=100)
    assert [fit.n_obs for fit in mixed] == [1000, 600]

    broken = series[1].copy()
    broken[10] = np.nan
    with pytest.raises(ValueError, match=r"KO-PEP: returns contains 1 NaN"):
        fit_garch_many([series[0], broken], holdout=HOLDOUT, labels=["AAPL-AMD", "KO-PEP"])
    with pytest.raises(InsufficientHistoryError, match=r"series 1: returns has 100 observations"):
        fit_garch_many([series[0], series[1][:100]], holdout=20)
    with pytest.raises(ValueError, match="labels must have 2 entries"):
        fit_garch_many(series[:2], holdout=HOLDOUT, labels=["one"])
    with pytest.raises(ValueError, match="one row per series"):
        fit_garch_many(np.zeros((2, 3, 4)), holdout=HOLDOUT)


def test_fit_garch_still_reports_arch():
    _, series = real_spreads()
    fit = fit_garch(series[0], holdout=HOLDOUT)
    assert fit.estimator == ARCH and math.isfinite(fit.loglik)
