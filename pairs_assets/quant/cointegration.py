"""Cointegration of log-price pairs: Engle-Granger, Johansen, half-life, multiple testing.

The Engle-Granger test here is a vectorised re-implementation of
``statsmodels.tsa.stattools.coint(y, x, trend="c", method="aeg")`` for ``autolag`` in
{"aic", "bic", None}: one closed-form OLS of y on [x, 1] per ordering, then the augmented
Dickey-Fuller regression without deterministic terms on the residuals with the lag order chosen
by information criterion over a common sample (Schwert's default maximum lag), exactly as
statsmodels' ``adfuller(..., regression="n")`` does — but for all orderings at once, and with every
candidate lag's residual sum of squares read off one small Cholesky factor of the Gram matrix
instead of one OLS fit per lag. P-values use statsmodels' MacKinnon response-surface tables
(those of ``mackinnonp(stat, regression="c", N=2)``), evaluated vectorised.
The test suite checks statistic and p-value against ``coint`` to 1e-8 on real-data windows;
``pairs_assets_tests/benchmarks/bench_cointegration.py`` measures the speed-up.

References: Engle & Granger (1987), "Co-integration and error correction", Econometrica 55;
MacKinnon (1994, 2010) response surfaces for p-values; Said & Dickey (1984) / Schwert (1989) for
the ADF lag length; Johansen (1991) for the trace statistic; Benjamini & Hochberg (1995) for the
false discovery rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# statsmodels/scipy are imported inside the functions that use them: importing the definitions
# (a code server start) should not pay for them (issue 9 item 16).
from pairs_assets.quant.prices import (
    InsufficientHistoryError,
    UnusableSeriesError,
    validate_closes,
)

__all__ = [
    "PAIRS_COLUMNS",
    "REJECTED_COLUMNS",
    "CointegrationResult",
    "EngleGrangerResult",
    "benjamini_hochberg",
    "engle_granger",
    "engle_granger_many",
    "find_cointegrated_pairs",
    "half_life",
    "hedge_ratio",
    "spread",
    "johansen_trace_many",
]

PAIRS_COLUMNS = [
    "pair_id",
    "y",
    "x",
    "correlation",
    "hedge_ratio",
    "intercept",
    "eg_stat",
    "eg_pvalue",
    "eg_pvalue_reverse",
    "johansen_trace",
    "half_life",
    "n_obs",
    "window_start",
    "window_end",
]
REJECTED_COLUMNS = ["pair_id", "correlation", "eg_pvalue", "eg_pvalue_reverse", "reason"]

# statsmodels.coint skips the ADF step and reports (-inf, 0) when R² of the cointegrating
# regression reaches 1 - 100·sqrt(machine eps); we use the same cut-off to stay identical.
_COLLINEAR_R2 = 1.0 - 100.0 * math.sqrt(np.finfo(np.double).eps)
_AUTOLAGS = ("aic", "bic", "t-stat")


def _as_vector(values, field: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{field} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{field} contains NaN or infinite values")
    return array


def _as_pair(y, x) -> tuple[np.ndarray, np.ndarray]:
    y_arr = _as_vector(y, "y")
    x_arr = _as_vector(x, "x")
    if y_arr.shape != x_arr.shape:
        raise ValueError(f"y and x must have the same length, got {y_arr.size} and {x_arr.size}")
    return y_arr, x_arr


def spread(price_y, price_x, hedge_ratio: float, intercept: float = 0.0):
    """The pair's spread ``ln(P_y) − β·ln(P_x) − a`` from prices.

    Parameters
    ----------
    price_y, price_x : float, ndarray or pandas.Series
        Prices (not logs) of the dependent and the regressor; Series must be aligned.
    hedge_ratio : float
        β, the OLS slope of :func:`hedge_ratio` on log prices.
    intercept : float, default 0.0
        a, the OLS intercept.

    Returns
    -------
    float, ndarray or pandas.Series
        The spread, of the inputs' type.
    """
    return np.log(price_y) - hedge_ratio * np.log(price_x) - intercept


def hedge_ratio(y, x) -> tuple[float, float]:
    """OLS hedge ratio of ``y`` on ``[1, x]``: the closed-form solution.

    Parameters
    ----------
    y, x : array_like
        Equal-length 1-D log prices, finite; ``x`` not constant.

    Returns
    -------
    beta : float
        The slope, ``y ≈ intercept + beta·x``.
    intercept : float
        The intercept.

    Raises
    ------
    InsufficientHistoryError
        Fewer than 2 observations.
    UnusableSeriesError
        ``x`` is constant.

    Notes
    -----
    Equal to ``statsmodels.OLS(y, add_constant(x))`` (the tests check it).
    """
    y_arr, x_arr = _as_pair(y, x)
    if y_arr.size < 2:
        raise InsufficientHistoryError(f"hedge_ratio needs at least 2 observations, got {y_arr.size}")
    x_centered = x_arr - x_arr.mean()
    sxx = float(x_centered @ x_centered)
    if sxx == 0.0:
        raise UnusableSeriesError("hedge_ratio: x is constant")
    beta = float(x_centered @ (y_arr - y_arr.mean())) / sxx
    return beta, float(y_arr.mean() - beta * x_arr.mean())


def _as_columns(y, x) -> tuple[np.ndarray, np.ndarray]:
    """``y`` and ``x`` as float arrays of equal 2-D shape (n_obs, n_series); 1-D inputs are one column."""
    y_arr = np.asarray(y, dtype=float)
    x_arr = np.asarray(x, dtype=float)
    if y_arr.ndim == 1 and x_arr.ndim == 1:
        y_arr, x_arr = y_arr[:, None], x_arr[:, None]
    if y_arr.ndim != 2 or y_arr.shape != x_arr.shape:
        raise ValueError(f"y and x must be 2-D arrays of equal shape, got {y_arr.shape} and {x_arr.shape}")
    return y_arr, x_arr


def _default_maxlag(nobs: int) -> int:
    # Schwert (1989) rule as in statsmodels.adfuller; no deterministic terms in the ADF step.
    maxlag = int(np.ceil(12.0 * np.power(nobs / 100.0, 1 / 4.0)))
    return min(nobs // 2 - 1, maxlag)


def _labels(labels: Sequence[str] | None, count: int) -> list[str]:
    if labels is None:
        return [f"column {i}" for i in range(count)]
    if len(labels) != count:
        raise ValueError(f"labels must have {count} entries, got {len(labels)}")
    return [str(label) for label in labels]


def _adf_columns(resid: np.ndarray, diffs: np.ndarray, lags: int, level_first: bool) -> np.ndarray:
    """Columns of the ADF regression (no deterministic terms) with ``lags`` lagged differences.

    resid: (P, n), diffs: (P, n-1). Returns (P, n-1-lags, lags+2): the regressors — lagged level
    first or last, then/before lagged differences 1..lags — and the target Δe_t as last column;
    the same rows as statsmodels' ``lagmat(..., trim="both", original="in")``.
    """
    n = resid.shape[1]
    level = [resid[:, lags : n - 1]]
    lagged = [diffs[:, lags - j : n - 1 - j] for j in range(1, lags + 1)]
    regressors = level + lagged if level_first else lagged + level
    return np.stack(regressors + [diffs[:, lags : n - 1]], axis=2)


def _gram_cholesky(columns: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of each [X, y]'[X, y] (P, k+1, k+1).

    Its last row holds Q'y (the projections of y on the orthonormalised regressors, in column
    order) and, on the diagonal, sqrt(SSR) of the regression of y on all k regressors — one tiny
    factorisation per test instead of one least-squares fit per candidate lag.
    """
    return np.linalg.cholesky(np.matmul(columns.transpose(0, 2, 1), columns))


def _adf_tstat(resid: np.ndarray, diffs: np.ndarray, lags: int) -> np.ndarray:
    """t-statistic of the lagged level in the ADF regression with ``lags`` lags, per row.

    With the level as the last regressor, its OLS coefficient is ``(Q'y)_k / R_kk`` and its
    standard error ``s / R_kk``, so t = (Q'y)_k / s with s² = SSR / (rows − regressors).
    """
    columns = _adf_columns(resid, diffs, lags, level_first=False)
    n_rows, n_regressors = columns.shape[1], lags + 1
    factor = _gram_cholesky(columns)
    scale = factor[:, -1, -1] ** 2 / (n_rows - n_regressors)
    return factor[:, -1, -2] / np.sqrt(scale)


def _mackinnon_pvalues(stats: np.ndarray) -> np.ndarray:
    """MacKinnon (1994) p-values for Engle-Granger with a constant and N=2, vectorised.

    The same response surface and cut-offs as statsmodels ``mackinnonp(stat, "c", N=2)`` (tests
    compare the two); one vectorised normal CDF call instead of one call per statistic.
    """
    from scipy.stats import norm
    from statsmodels.tsa.adfvalues import tau_c_largep, tau_c_smallp, tau_max_c, tau_min_c, tau_star_c

    index = 1  # N - 1 for two I(1) variables
    inside = np.clip(stats, tau_min_c[index], tau_max_c[index])  # outside: 0 or 1 below
    small = np.polyval(np.asarray(tau_c_smallp[index])[::-1], inside)
    large = np.polyval(np.asarray(tau_c_largep[index])[::-1], inside)
    pvalues = norm.cdf(np.where(inside <= tau_star_c[index], small, large))
    pvalues = np.where(stats > tau_max_c[index], 1.0, pvalues)
    return np.where(stats < tau_min_c[index], 0.0, pvalues)


def _adf_tstats(
    resid: np.ndarray, diffs: np.ndarray, maxlag: int, autolag: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """ADF t-statistics (no deterministic terms) of each residual row and the lag order ``autolag`` chose."""
    n_tests = resid.shape[0]
    # Lag order by information criterion on the common sample of maxlag lags.
    if autolag is None:
        chosen = np.full(n_tests, maxlag)
    else:
        factor = _gram_cholesky(_adf_columns(resid, diffs, maxlag, level_first=True))
        n_rows = resid.shape[1] - 1 - maxlag
        projections_sq = factor[:, -1, :-1] ** 2
        # SSR with the first k regressors = full SSR + the squared projections on the dropped ones
        dropped = np.cumsum(projections_sq[:, ::-1], axis=1)[:, ::-1]
        ssr = factor[:, -1, -1:] ** 2 + np.concatenate([dropped[:, 1:], np.zeros((n_tests, 1))], axis=1)
        n_params = np.arange(1, maxlag + 2)
        penalty = 2.0 if autolag == "aic" else np.log(n_rows)
        # -2·loglik + penalty·k with statsmodels' Gaussian OLS log-likelihood; argmin keeps the
        # smallest lag on a tie, as statsmodels' min over (criterion, lag) does
        criterion = n_rows * (np.log(2.0 * np.pi) + np.log(ssr / n_rows) + 1.0) + penalty * n_params
        chosen = np.argmin(criterion, axis=1)

    # t-statistic of the lagged level, re-estimated on the longest sample for the chosen lag.
    tstats = np.empty(n_tests)
    for lags in np.unique(chosen):
        rows = np.flatnonzero(chosen == lags)
        tstats[rows] = _adf_tstat(resid[rows], diffs[rows], int(lags))
    return tstats, chosen


# Orderings per block: the ADF design of a block (orderings × rows × (maxlag + 2) doubles) stays
# near this many elements (~64 MB), so memory no longer grows with the number of candidates.
_BLOCK_ELEMENTS = 8_000_000


def _check_maxlag(n_obs: int, maxlag: int | None) -> int:
    if maxlag is None:
        maxlag = _default_maxlag(n_obs)
        if maxlag < 0:
            raise InsufficientHistoryError(f"Engle-Granger needs more than {n_obs} observations")
    elif maxlag < 0 or maxlag > n_obs // 2 - 1:
        raise ValueError(f"maxlag must be in [0, n_obs//2 - 1] = [0, {n_obs // 2 - 1}], got {maxlag}")
    # the lag-selection regression has n_obs-1-maxlag rows and maxlag+1 columns
    if n_obs - 2 * maxlag - 2 < 1:
        raise InsufficientHistoryError(
            f"Engle-Granger with maxlag {maxlag} needs at least {2 * maxlag + 3} observations, got {n_obs}"
        )
    return maxlag


def _block_size(n_obs: int, maxlag: int) -> int:
    return max(1, _BLOCK_ELEMENTS // (n_obs * (maxlag + 3)))


def _engle_granger_block(
    y_arr: np.ndarray, x_arr: np.ndarray, maxlag: int, autolag: str | None, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engle-Granger statistics, p-values and ADF lags (-1: not tested, collinear) of one block of
    orderings (columns of y_arr, x_arr)."""
    n_tests = y_arr.shape[1]
    for field, array in (("y", y_arr), ("x", x_arr)):
        bad = ~np.isfinite(array).all(axis=0)
        if bad.any():
            raise ValueError(f"{field} contains NaN or infinite values in: {[names[i] for i in np.flatnonzero(bad)]}")

    # Step 1: cointegrating regression y = a + b·x + e, closed form on centred data.
    x_c = (x_arr - x_arr.mean(axis=0)).T
    y_c = (y_arr - y_arr.mean(axis=0)).T
    sxx = (x_c * x_c).sum(axis=1)
    syy = (y_c * y_c).sum(axis=1)
    for field, ss in (("x", sxx), ("y", syy)):
        if (ss == 0.0).any():
            raise UnusableSeriesError(f"{field} is constant in: {[names[i] for i in np.flatnonzero(ss == 0.0)]}")
    beta = (x_c * y_c).sum(axis=1) / sxx
    resid = y_c - beta[:, None] * x_c
    r_squared = 1.0 - (resid * resid).sum(axis=1) / syy

    stats = np.full(n_tests, -np.inf)
    pvalues = np.zeros(n_tests)
    lags = np.full(n_tests, -1)
    testable = np.flatnonzero(r_squared < _COLLINEAR_R2)
    if testable.size == 0:
        return stats, pvalues, lags
    resid = resid[testable]
    diffs = np.diff(resid, axis=1)

    try:
        tstats, chosen = _adf_tstats(resid, diffs, maxlag, autolag)
    except np.linalg.LinAlgError as error:
        raise ValueError(
            f"ADF regression on the residuals is singular (degenerate price data) for one of: "
            f"{[names[i] for i in testable]}"
        ) from error
    stats[testable] = tstats
    pvalues[testable] = _mackinnon_pvalues(tstats)
    lags[testable] = chosen
    return stats, pvalues, lags


def _engle_granger_columns(
    y_values: np.ndarray,
    x_values: np.ndarray,
    dependents: np.ndarray,
    regressors: np.ndarray,
    maxlag: int | None,
    autolag: str | None,
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Engle-Granger of y_values[:, dependents[j]] on x_values[:, regressors[j]] for each j, in blocks.

    Returns ``(stats, pvalues, lags, maxlag)``: per ordering the statistic, p-value and ADF lag
    order (-1 where the ordering is collinear and not tested), and the maximum lag searched.
    Only one block of orderings is materialised at a time, so memory is bounded by the block
    size whatever the number of orderings (the statistics are computed column by column, so the
    blocks do not change them).
    """
    n_obs = y_values.shape[0]
    n_tests = len(dependents)
    stats = np.empty(n_tests)
    pvalues = np.empty(n_tests)
    lags = np.empty(n_tests, dtype=int)
    if n_tests == 0:
        return stats, pvalues, lags, 0
    maxlag = _check_maxlag(n_obs, maxlag)
    size = _block_size(n_obs, maxlag)
    for start in range(0, n_tests, size):
        stop = min(start + size, n_tests)
        stats[start:stop], pvalues[start:stop], lags[start:stop] = _engle_granger_block(
            y_values[:, dependents[start:stop]], x_values[:, regressors[start:stop]], maxlag, autolag, names[start:stop]
        )
    return stats, pvalues, lags, maxlag


def engle_granger_many(
    y: np.ndarray,
    x: np.ndarray,
    maxlag: int | None = None,
    autolag: str | None = "aic",
    labels: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Engle-Granger (augmented) cointegration tests for many (y, x) orderings at once.

    Orderings whose cointegrating regression has R² ≥ 1 - 100·sqrt(eps) get ``(-inf, 0.0)`` like
    statsmodels (the test is unreliable there). The orderings are processed in blocks (about 64 MB
    of regression design each), so memory does not grow with ``n_tests`` beyond the inputs.

    Parameters
    ----------
    y, x : ndarray
        Shape (n_obs, n_tests): column j tests ``y[:, j]`` on ``x[:, j]`` (1-D arrays: one test).
    maxlag : int, optional
        The largest ADF lag; default Schwert's rule ``ceil(12·(n/100)^¼)`` capped at ``n//2 - 1``.
    autolag : {"aic", "bic", None}, default "aic"
        Lag selection; None uses ``maxlag`` lags.
    labels : sequence of str, optional
        Names of the tests, for error messages.

    Returns
    -------
    stats : ndarray
        The ADF t-statistic of the residuals of OLS y on [x, 1], one per test.
    pvalues : ndarray
        MacKinnon's asymptotic p-value for two I(1) variables with a constant.

    See Also
    --------
    engle_granger : one test, as an :class:`EngleGrangerResult` with lags and critical values.

    References
    ----------
    statsmodels ``coint(y, x, trend="c", autolag=...)`` reproduced to 1e-8 (tests);
    Engle & Granger (1987); MacKinnon (1994, 2010).
    """
    autolag = autolag.lower() if isinstance(autolag, str) else autolag
    if autolag not in (None, "aic", "bic"):
        raise ValueError(f"autolag must be 'aic', 'bic' or None for engle_granger_many, got {autolag!r}")
    y_arr, x_arr = _as_columns(y, x)
    n_obs, n_tests = y_arr.shape
    names = _labels(labels, n_tests)
    if n_tests == 0:
        return np.empty(0), np.empty(0)
    columns = np.arange(n_tests)
    stats, pvalues, _lags, _maxlag = _engle_granger_columns(y_arr, x_arr, columns, columns, maxlag, autolag, names)
    return stats, pvalues


@dataclass(frozen=True)
class EngleGrangerResult:
    """The result of one Engle-Granger test, as ``arch.unitroot.cointegration.engle_granger`` reports it.

    Attributes
    ----------
    stat : float
        The ADF t-statistic of the cointegrating regression's residuals (``-inf`` when ``y`` and
        ``x`` are collinear: statsmodels' convention, the test is not run).
    pvalue : float
        MacKinnon's (1994, 2010) asymptotic p-value for two I(1) variables with a constant.
    lags : int or None
        The ADF lag order used (chosen by ``autolag``, or ``max_lags`` without it); None when the
        test was not run (collinear).
    max_lags : int
        The largest lag order searched.
    critical_values : dict of str to float
        MacKinnon (2010) critical values at ``"1%"``, ``"5%"`` and ``"10%"`` for ``nobs - 1``
        observations (statsmodels ``coint``'s choice, matching Stata's ``egranger``).
    nobs : int
        Observations in the cointegrating regression.
    hedge_ratio, intercept : float
        The cointegrating regression ``y = intercept + hedge_ratio · x + e`` (OLS).
    """

    stat: float
    pvalue: float
    lags: int | None
    max_lags: int
    critical_values: dict[str, float]
    nobs: int
    hedge_ratio: float
    intercept: float
    trend: str = "c"
    null_hypothesis: str = "No Cointegration"
    alternative_hypothesis: str = "Cointegration"

    def __str__(self) -> str:
        crit = ", ".join(f"{level}: {value:.3f}" for level, value in self.critical_values.items())
        lags = "not run (collinear)" if self.lags is None else f"{self.lags} of at most {self.max_lags}"
        return (
            f"Engle-Granger cointegration test (trend {self.trend!r}, {self.nobs} observations): "
            f"statistic {self.stat:.4f}, p-value {self.pvalue:.4g}, lags {lags}; critical values {crit}. "
            f"H0: {self.null_hypothesis}; H1: {self.alternative_hypothesis}."
        )


def _critical_values(nobs: int) -> dict[str, float]:
    from statsmodels.tsa.adfvalues import mackinnoncrit

    return dict(zip(("1%", "5%", "10%"), map(float, mackinnoncrit(N=2, regression="c", nobs=nobs - 1))))


def engle_granger(y, x, maxlag: int | None = None, autolag: str | None = "aic") -> EngleGrangerResult:
    """Engle-Granger cointegration test of ``y`` on ``x``, with a constant in the cointegrating regression.

    Statistic and p-value equal ``statsmodels.tsa.stattools.coint(y, x, trend="c")`` to 1e-8
    (the tests check it); for "aic", "bic" and None they come from the vectorised path of
    :func:`engle_granger_many`. "t-stat" lag selection follows ``coint`` itself (an OLS fit, then
    ``adfuller`` on its residuals).

    Parameters
    ----------
    y : array_like
        The dependent series (log prices), 1-D, finite.
    x : array_like
        The regressor, the same length as ``y``, finite and not constant.
    maxlag : int, optional
        The largest ADF lag; default Schwert's rule ``ceil(12·(n/100)^¼)`` capped at ``n//2 - 1``.
    autolag : {"aic", "bic", "t-stat", None}, default "aic"
        How the lag order is chosen; None uses ``maxlag`` lags.

    Returns
    -------
    EngleGrangerResult
        Statistic, p-value, lags, critical values and the cointegrating regression.

    Raises
    ------
    InsufficientHistoryError
        Too few observations for ``maxlag``.
    UnusableSeriesError
        ``x`` or ``y`` is constant.
    ValueError
        Unequal lengths, non-finite values or an unknown ``autolag``.

    References
    ----------
    Engle & Granger (1987), "Co-integration and error correction", Econometrica 55;
    MacKinnon (1994, 2010); statsmodels ``coint``; arch ``engle_granger``.
    """
    y_arr, x_arr = _as_pair(y, x)
    if isinstance(autolag, str) and autolag.lower() not in _AUTOLAGS:
        raise ValueError(f"autolag must be one of {_AUTOLAGS} or None, got {autolag!r}")
    if isinstance(autolag, str) and autolag.lower() == "t-stat":
        for field, values in (("y", y_arr), ("x", x_arr)):
            if not np.isfinite(values).all():
                raise ValueError(f"{field} contains NaN or infinite values")
        return _engle_granger_tstat_lags(y_arr, x_arr, maxlag, *hedge_ratio(y_arr, x_arr))
    columns = np.zeros(1, dtype=np.intp)
    stats, pvalues, lags, used_maxlag = _engle_granger_columns(
        y_arr[:, None], x_arr[:, None], columns, columns, maxlag, autolag, ["y-x"]
    )
    beta, alpha = hedge_ratio(y_arr, x_arr)
    return EngleGrangerResult(
        stat=float(stats[0]),
        pvalue=float(pvalues[0]),
        lags=None if lags[0] < 0 else int(lags[0]),
        max_lags=int(used_maxlag),
        critical_values=_critical_values(y_arr.size),
        nobs=int(y_arr.size),
        hedge_ratio=beta,
        intercept=alpha,
    )


def _engle_granger_tstat_lags(
    y_arr: np.ndarray, x_arr: np.ndarray, maxlag: int | None, beta: float, alpha: float
) -> EngleGrangerResult:
    """``coint(y, x, trend="c", autolag="t-stat")`` step by step, keeping the lag ``adfuller`` chose."""
    from statsmodels.tsa.adfvalues import mackinnonp
    from statsmodels.tsa.stattools import adfuller

    used_maxlag = _check_maxlag(y_arr.size, maxlag)
    resid = y_arr - alpha - beta * x_arr
    r_squared = 1.0 - float(resid @ resid) / float(((y_arr - y_arr.mean()) ** 2).sum())
    if r_squared >= _COLLINEAR_R2:
        stat, lags = -np.inf, None
    else:
        result = adfuller(resid, maxlag=used_maxlag, autolag="t-stat", regression="n", result_object=False)
        stat, lags = float(result[0]), int(result[2])
    return EngleGrangerResult(
        stat=float(stat),
        pvalue=float(mackinnonp(stat, regression="c", N=2)),
        lags=lags,
        max_lags=used_maxlag,
        critical_values=_critical_values(y_arr.size),
        nobs=int(y_arr.size),
        hedge_ratio=beta,
        intercept=alpha,
    )


def johansen_trace_many(y, x, det_order: int = 0, k_ar_diff: int = 1) -> np.ndarray:
    """Johansen r = 0 trace statistics of many systems [y_j, x_j] at once.

    Parameters
    ----------
    y, x : ndarray
        Shape (n_obs, n_systems); column j is one system (log prices).
    det_order : {-1, 0, 1}, default 0
        Deterministic terms: -1 none, 0 a constant, 1 a linear trend.
    k_ar_diff : int, default 1
        Lagged differences in the VECM.

    Returns
    -------
    ndarray
        n_systems trace statistics ``−T·Σ ln(1 − λ_i)``, λ the eigenvalues of
        S_kk⁻¹·S_k0·S_00⁻¹·S_0k — statsmodels ``coint_johansen(...).lr1[0]`` step for step
        (detrending by projection on ``vander(linspace(-1, 1, n), order + 1)``, lagged differences
        partialled out by least squares), batched over the systems; the tests compare the two to 1e-8.

    References
    ----------
    Johansen (1991); statsmodels ``coint_johansen``.
    """
    y_arr, x_arr = _as_columns(y, x)
    if det_order not in (-1, 0, 1):
        raise ValueError(f"det_order must be -1, 0 or 1, got {det_order}")
    if k_ar_diff < 0:
        raise ValueError(f"k_ar_diff must be >= 0, got {k_ar_diff}")
    n_obs, n_systems = y_arr.shape
    if n_obs <= k_ar_diff + 3:
        raise InsufficientHistoryError(
            f"the Johansen trace with k_ar_diff {k_ar_diff} needs more than {k_ar_diff + 3} observations, got {n_obs}"
        )
    if n_systems == 0:
        return np.empty(0)
    endog = np.stack([y_arr.T, x_arr.T], axis=2)  # (systems, n_obs, 2)

    def detrend(values: np.ndarray, order: int) -> np.ndarray:
        if order == -1:
            return values
        trend = np.vander(np.linspace(-1, 1, values.shape[1]), order + 1)
        return values - trend @ (np.linalg.pinv(trend) @ values)

    def partial_out(values: np.ndarray, regressors: np.ndarray) -> np.ndarray:
        if regressors.shape[2] == 0:
            return values
        return values - regressors @ (np.linalg.pinv(regressors) @ values)

    lagged_order = 0 if det_order > -1 else det_order
    endog = detrend(endog, det_order)
    dx = np.diff(endog, axis=1)
    # lagmat(dx, k)[k:]: row t holds dx[t-1], ..., dx[t-k] (each lag's two columns together)
    n_rows = dx.shape[1] - k_ar_diff
    z = (
        np.concatenate([dx[:, k_ar_diff - lag : k_ar_diff - lag + n_rows] for lag in range(1, k_ar_diff + 1)], axis=2)
        if k_ar_diff > 0
        else np.empty((n_systems, n_rows, 0))
    )
    z = detrend(z, lagged_order)
    r0t = partial_out(detrend(dx[:, k_ar_diff:], lagged_order), z)
    levels = endog[:, : n_obs - k_ar_diff][:, 1:]
    rkt = partial_out(detrend(levels, lagged_order), z)
    t = rkt.shape[1]
    skk = np.einsum("pti,ptj->pij", rkt, rkt) / t
    sk0 = np.einsum("pti,ptj->pij", rkt, r0t) / t
    s00 = np.einsum("pti,ptj->pij", r0t, r0t) / t
    sig = sk0 @ np.linalg.inv(s00) @ sk0.transpose(0, 2, 1)
    eigenvalues = np.linalg.eigvals(np.linalg.inv(skk) @ sig)
    return -t * np.sum(np.log(1.0 - eigenvalues), axis=1).real


def half_life(spread) -> float:
    """Mean-reversion half-life of a spread, in sessions.

    From the OLS AR(1) regression ``Δs_t = c + λ·s_{t-1} + e_t``: ``-ln 2 / ln(1 + λ)``.
    When -2 < λ < -1 the AR coefficient is negative and the half-life of its envelope,
    ``-ln 2 / ln|1 + λ|``, is returned (0.0 for λ = -1).

    Parameters
    ----------
    spread : array_like
        1-D spread levels (e.g. ``y - intercept - beta·x``), at least 3.

    Returns
    -------
    float
        The half-life; ``math.inf`` when λ >= 0 (no mean reversion) or 1+λ <= -1 (explosive).

    Raises
    ------
    InsufficientHistoryError
        Fewer than 3 observations.
    UnusableSeriesError
        The spread is constant.

    References
    ----------
    Discretised Ornstein-Uhlenbeck process / AR(1) (e.g. Chan, "Algorithmic Trading", 2013).
    """
    levels = _as_vector(spread, "spread")
    if levels.size < 3:
        raise InsufficientHistoryError(f"half_life needs at least 3 observations, got {levels.size}")
    lagged = levels[:-1]
    change = np.diff(levels)
    lagged_c = lagged - lagged.mean()
    sxx = float(lagged_c @ lagged_c)
    if sxx == 0.0:
        raise UnusableSeriesError("half_life: spread is constant")
    slope = float(lagged_c @ (change - change.mean())) / sxx
    if slope >= 0.0:
        return math.inf
    ar_coefficient = abs(1.0 + slope)
    if ar_coefficient == 0.0:
        return 0.0
    if ar_coefficient >= 1.0:
        return math.inf
    return -math.log(2.0) / math.log(ar_coefficient)


def benjamini_hochberg(pvalues, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg step-up rejections at false discovery rate ``alpha``.

    Parameters
    ----------
    pvalues : array_like
        1-D p-values in [0, 1], any order.
    alpha : float
        The false discovery rate, in (0, 1).

    Returns
    -------
    ndarray of bool
        In the input order, True where the null is rejected.

    Raises
    ------
    ValueError
        ``alpha`` outside (0, 1), p-values not 1-D, NaN or outside [0, 1].

    References
    ----------
    Benjamini & Hochberg (1995); statsmodels ``multipletests(method="fdr_bh")``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha (fdr_alpha) must be in (0, 1), got {alpha}")
    values = np.asarray(pvalues, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    if np.isnan(values).any() or (values < 0.0).any() or (values > 1.0).any():
        raise ValueError("pvalues must lie in [0, 1] without NaN")
    from statsmodels.stats.multitest import multipletests

    return np.asarray(multipletests(values, alpha=alpha, method="fdr_bh")[0], dtype=bool)


@dataclass(frozen=True)
class CointegrationResult:
    """Output of :func:`find_cointegrated_pairs`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        :data:`PAIRS_COLUMNS` (the ``cointegrated_pairs`` contract), sorted by eg_pvalue then pair_id.
    rejected : pandas.DataFrame
        :data:`REJECTED_COLUMNS`: every correlation candidate that did not pass, with the reason,
        in the same order.
    """

    pairs: pd.DataFrame
    rejected: pd.DataFrame


def _column_dtype(column: str, index_dtype):
    if column in ("pair_id", "y", "x", "reason"):
        return object
    if column == "n_obs":
        return "int64"
    if column in ("window_start", "window_end"):
        return index_dtype
    return "float64"


def _empty_pairs(index_dtype) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=_column_dtype(column, index_dtype)) for column in PAIRS_COLUMNS})


def _empty_rejected() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=_column_dtype(column, None)) for column in REJECTED_COLUMNS})


def find_cointegrated_pairs(
    log_prices: pd.DataFrame,
    correlations: pd.DataFrame,
    correlation_min: float,
    pvalue_max: float,
    require_both_orderings: bool = True,
    fdr_alpha: float | None = None,
) -> CointegrationResult:
    """Screen correlated pairs for cointegration over one formation window.

    The dependent series (y) is the ordering with the lower Engle-Granger p-value (the
    alphabetically first symbol on a tie). For passing pairs the hedge ratio and intercept (OLS y
    on [1, x]), the Johansen r=0 trace statistic (:func:`johansen_trace_many`) and the spread
    half-life are added. The Engle-Granger tests run in blocks of orderings, so memory stays
    bounded with every pair of hundreds of symbols a candidate (``bench_cointegration.py``).
    Candidates whose series are (almost) perfectly collinear are rejected, because the test is
    unreliable there (statsmodels reports stat -inf).

    Parameters
    ----------
    log_prices : pandas.DataFrame
        Sessions (sorted DatetimeIndex) × symbols: log closes of the formation window, finite.
    correlations : pandas.DataFrame
        :func:`~pairs_assets.quant.correlation.correlation_long` of the same window
        (symbol_a, symbol_b, correlation).
    correlation_min : float
        Candidates have correlation >= this.
    pvalue_max : float
        The Engle-Granger p-value must be < this.
    require_both_orderings : bool, default True
        The reverse ordering (x on y) must also have p < ``pvalue_max``.
    fdr_alpha : float, optional
        The pair's p-value must also survive Benjamini-Hochberg at this false discovery rate across
        all candidates (applied to the smaller of the two orderings' p-values, which is
        anti-conservative; ``require_both_orderings`` tempers that).

    Returns
    -------
    CointegrationResult
        Pairs with :data:`PAIRS_COLUMNS`, rejected candidates with :data:`REJECTED_COLUMNS`, each
        sorted by eg_pvalue then pair_id; empty inputs give empty frames with those columns.

    References
    ----------
    See the module docstring (Engle-Granger, MacKinnon, Johansen, Benjamini-Hochberg).
    """
    validate_closes(log_prices, "log_prices")
    missing_columns = {"symbol_a", "symbol_b", "correlation"} - set(correlations.columns)
    if missing_columns:
        raise ValueError(f"correlations is missing column(s): {sorted(missing_columns)}")
    if not -1.0 <= correlation_min <= 1.0:
        raise ValueError(f"correlation_min must be in [-1, 1], got {correlation_min}")
    if not 0.0 < pvalue_max <= 1.0:
        raise ValueError(f"pvalue_max must be in (0, 1], got {pvalue_max}")
    if fdr_alpha is not None and not 0.0 < fdr_alpha < 1.0:
        raise ValueError(f"fdr_alpha must be in (0, 1) or None, got {fdr_alpha}")

    index_dtype = log_prices.index.dtype
    candidates = correlations.loc[correlations["correlation"] >= correlation_min]
    if candidates.empty:
        return CointegrationResult(_empty_pairs(index_dtype), _empty_rejected())
    firsts, seconds = [], []
    for sym_a, sym_b in zip(candidates["symbol_a"], candidates["symbol_b"]):
        if sym_a == sym_b:
            raise ValueError(f"correlations has a pair of a symbol with itself: {sym_a}")
        absent = [s for s in (sym_a, sym_b) if s not in log_prices.columns]
        if absent:
            raise ValueError(f"correlations pair {sym_a}-{sym_b} names symbol(s) not in log_prices: {absent}")
        first, second = sorted((sym_a, sym_b), key=str)
        firsts.append(first)
        seconds.append(second)
    repeated = pd.Series([f"{a}-{b}" for a, b in zip(firsts, seconds)]).loc[lambda ids: ids.duplicated()]
    if not repeated.empty:
        raise ValueError(f"correlations lists pair(s) more than once: {sorted(set(repeated))}")
    corr_values = candidates["correlation"].to_numpy(dtype=float)
    involved = sorted(set(firsts + seconds), key=str)
    finite = np.isfinite(log_prices[involved].to_numpy(dtype=float)).all(axis=0)
    if not finite.all():
        bad = [symbol for symbol, ok in zip(involved, finite) if not ok]
        raise UnusableSeriesError(f"log_prices has NaN or infinite values for: {bad}")

    n_pairs = len(firsts)
    dependents = firsts + seconds
    regressors = seconds + firsts
    labels = [f"{y}-{x}" for y, x in zip(dependents, regressors)]
    # one log-price column per symbol; the orderings index into it block by block
    position = {symbol: i for i, symbol in enumerate(involved)}
    symbol_values = log_prices[involved].to_numpy(dtype=float)
    stats, pvalues, _lags, _maxlag = _engle_granger_columns(
        symbol_values,
        symbol_values,
        np.array([position[s] for s in dependents], dtype=np.intp),
        np.array([position[s] for s in regressors], dtype=np.intp),
        None,
        "aic",
        labels,
    )
    first_is_y = pvalues[:n_pairs] <= pvalues[n_pairs:]
    eg_pvalue = np.where(first_is_y, pvalues[:n_pairs], pvalues[n_pairs:])
    eg_pvalue_reverse = np.where(first_is_y, pvalues[n_pairs:], pvalues[:n_pairs])
    eg_stat = np.where(first_is_y, stats[:n_pairs], stats[n_pairs:])
    fdr_pass = benjamini_hochberg(eg_pvalue, fdr_alpha) if fdr_alpha is not None else np.ones(n_pairs, bool)

    collinear = np.isneginf(eg_stat)
    passed_rows, rejected_rows, passed = [], [], []
    for i in range(n_pairs):
        y_sym, x_sym = (firsts[i], seconds[i]) if first_is_y[i] else (seconds[i], firsts[i])
        pair_id = f"{y_sym}-{x_sym}"
        reason = None
        if collinear[i]:
            reason = "series are (almost) perfectly collinear; Engle-Granger is unreliable"
        elif not eg_pvalue[i] < pvalue_max:
            reason = f"eg_pvalue {eg_pvalue[i]:.4g} >= pvalue_max {pvalue_max:g}"
        elif require_both_orderings and not eg_pvalue_reverse[i] < pvalue_max:
            reason = (
                f"reverse ordering {x_sym}-{y_sym} not cointegrated: "
                f"eg_pvalue_reverse {eg_pvalue_reverse[i]:.4g} >= pvalue_max {pvalue_max:g}"
            )
        elif not fdr_pass[i]:
            reason = f"not significant after Benjamini-Hochberg at fdr_alpha {fdr_alpha:g} across {n_pairs} candidates"
        if reason is not None:
            rejected_rows.append((pair_id, corr_values[i], eg_pvalue[i], eg_pvalue_reverse[i], reason))
        else:
            passed.append((i, pair_id, y_sym, x_sym))

    if passed:
        y_block = symbol_values[:, [position[y_sym] for _, _, y_sym, _ in passed]]
        x_block = symbol_values[:, [position[x_sym] for _, _, _, x_sym in passed]]
        traces = johansen_trace_many(y_block, x_block)
        for column, ((i, pair_id, y_sym, x_sym), trace) in enumerate(zip(passed, traces)):
            y_values, x_values = y_block[:, column], x_block[:, column]
            beta, intercept = hedge_ratio(y_values, x_values)
            passed_rows.append(
                (
                    pair_id,
                    y_sym,
                    x_sym,
                    corr_values[i],
                    beta,
                    intercept,
                    eg_stat[i],
                    eg_pvalue[i],
                    eg_pvalue_reverse[i],
                    float(trace),
                    half_life(y_values - intercept - beta * x_values),
                    len(log_prices),
                    log_prices.index[0],
                    log_prices.index[-1],
                )
            )

    pairs = _empty_pairs(index_dtype)
    if passed_rows:
        pairs = pd.DataFrame(passed_rows, columns=PAIRS_COLUMNS).astype(pairs.dtypes.to_dict())
    rejected = _empty_rejected()
    if rejected_rows:
        rejected = pd.DataFrame(rejected_rows, columns=REJECTED_COLUMNS).astype(rejected.dtypes.to_dict())
    return CointegrationResult(
        pairs=pairs.sort_values(["eg_pvalue", "pair_id"], kind="mergesort").reset_index(drop=True),
        rejected=rejected.sort_values(["eg_pvalue", "pair_id"], kind="mergesort").reset_index(drop=True),
    )
