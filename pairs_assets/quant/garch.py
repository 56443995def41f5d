"""GARCH(1,1) volatility model of a spread's returns, with out-of-sample forecast evaluation.

Model: constant mean, GARCH(1,1) variance, normal errors (Bollerslev 1986), estimated by
``arch.arch_model(..., mean="Constant", vol="GARCH", p=1, q=1, dist="normal")``.

Scaling: the fit runs on ``returns * scale`` (default 100, i.e. percent) because arch's optimiser
is tuned for data whose magnitude is roughly 1-1000; raw daily log returns (~0.01) give poorly
scaled gradients and spurious non-convergence. ``mu``, ``omega`` and ``sigma_forecast`` are
reported back in the input's units (``mu/scale``, ``omega/scale²``, ``sigma/scale``); ``alpha``,
``beta`` are unit-free; ``loglik``, ``aic``, ``bic`` and their constant-variance counterparts stay
in the *scaled* units (a log-likelihood shifts by ``n·ln(scale)`` under rescaling, so only
differences between models on the same scale are meaningful — which is how scoring uses them).

Forecast evaluation (no look-ahead): parameters are estimated on ``returns[:-holdout]`` only; with
those parameters fixed, the variance recursion is filtered through the data and the one-step
forecast made at the close of t (data up to t) is compared with the squared residual at t+1, for
each of the last ``holdout`` observations. The naive benchmark is the training sample's variance.
Both use Patton's (2011) QLIKE loss ``L = r²/h − ln(r²/h) − 1``, robust to the noise of the r²
proxy. Reference: Patton, A. (2011), "Volatility forecast comparison using imperfect volatility
proxies", Journal of Econometrics 160.

Many series at once: :func:`fit_garch_many` gives the same :class:`GarchFit` fields from a compiled
(numba) estimator of the same likelihood — arch's backcast, variance bounds, starting-value grid and
forecast recursion, maximised by a projected Newton method — and refits with arch, recording it in
``estimator``, wherever the compiled fit is not trustworthy. ``bench_garch.py`` measures speed and
agreement with arch on 1,000 real spreads.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

# arch/statsmodels are imported inside the functions that use them: importing the definitions
# (a code server start) should not pay for them (issue 9 item 16).
from pairs_assets.quant.prices import InsufficientHistoryError, UnusableSeriesError

__all__ = [
    "GarchFit",
    "ARCH",
    "BATCHED",
    "InsufficientHistoryError",
    "filter_fixed",
    "filter_fixed_many",
    "fit_garch",
    "fit_garch_many",
    "garch_filter",
    "holdout_variance_forecasts",
    "qlike",
    "unconditional_sigma",
]


@dataclass(frozen=True)
class GarchFit:
    """Everything a caller needs from one GARCH(1,1) fit (see the module docstring for units).

    Attributes
    ----------
    mu, omega, alpha, beta : float
        Parameters of r_t = mu + e_t, h_t = omega + alpha·e²_{t-1} + beta·h_{t-1} (mu, omega in input
        units).
    persistence : float
        alpha + beta.
    loglik, aic, bic : float
        Of the GARCH fit on the scaled data.
    aic_constant, bic_constant : float
        Of the constant-mean, constant-variance normal model on the same scaled data (2 parameters).
    sigma_forecast : float
        One-step-ahead conditional σ after the last observation (input units).
    qlike_garch, qlike_naive : float
        Mean QLIKE over the holdout.
    forecast_ratio : float
        qlike_garch / qlike_naive (< 1: GARCH forecasts better).
    ljung_box_p, arch_lm_p : float
        Ljung-Box and Engle's ARCH-LM p-values of the standardized residuals.
    converged : bool
        Both the training and the full-sample optimisations converged.
    convergence_message : str
        The optimiser's message(s).
    n_obs : int
        Number of returns.
    scale : float
        The factor applied before fitting.
    estimator : str
        Which code produced the fits: "arch" (:func:`fit_garch`, or the recorded fallback of
        :func:`fit_garch_many`), "batched" (the compiled estimator of :func:`fit_garch_many`), or
        "<full-sample>/<training>" (e.g. "arch/batched") when the two fits came from different code.
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    persistence: float
    loglik: float
    aic: float
    bic: float
    aic_constant: float
    bic_constant: float
    sigma_forecast: float
    qlike_garch: float
    qlike_naive: float
    forecast_ratio: float
    ljung_box_p: float
    arch_lm_p: float
    converged: bool
    convergence_message: str
    n_obs: int
    scale: float
    estimator: str = "arch"

    def as_dict(self) -> dict[str, float | bool | str | int]:
        """The fields as a plain dict (field order preserved)."""
        return asdict(self)


def qlike(squared_residuals: np.ndarray, variances: np.ndarray, floor: float) -> float:
    """Mean QLIKE loss ``r²/h − ln(r²/h) − 1`` (Patton 2011).

    Parameters
    ----------
    squared_residuals : ndarray
        The variance proxy r², 1-D.
    variances : ndarray
        Forecasts h > 0, the same length.
    floor : float
        r² values below it are raised to it, so ``ln(r²/h)`` stays finite when a return is exactly
        zero (a stale quote).

    Returns
    -------
    float
        The mean loss (0 is perfect).
    """
    proxy = np.maximum(np.asarray(squared_residuals, dtype=float), floor)
    h = np.asarray(variances, dtype=float)
    if (h <= 0.0).any() or not np.isfinite(h).all():
        raise ValueError("qlike: variances must be positive and finite")
    ratio = proxy / h
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def _validated_returns(returns, holdout: int, scale: float, min_obs: int) -> np.ndarray:
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"returns contains {int((~np.isfinite(values)).sum())} NaN or infinite value(s)")
    if not scale > 0.0 or not math.isfinite(scale):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    if not isinstance(holdout, (int, np.integer)) or holdout < 1:
        raise ValueError(f"holdout must be a positive integer, got {holdout!r}")
    if values.size < min_obs:
        raise InsufficientHistoryError(
            f"returns has {values.size} observations; GARCH needs at least min_obs={min_obs}"
        )
    if values.size - holdout < min_obs / 2:
        raise InsufficientHistoryError(
            f"holdout={holdout} leaves {values.size - holdout} training observations of {values.size}; "
            f"at least min_obs/2={min_obs / 2:g} are needed"
        )
    if np.ptp(values) == 0.0:
        raise UnusableSeriesError("returns are constant; a variance model cannot be fitted")
    return values


def _model(scaled: np.ndarray):
    from arch import arch_model

    return arch_model(scaled, mean="Constant", vol="GARCH", p=1, q=1, dist="normal")


def _fit(scaled: np.ndarray, last_obs: int | None = None):
    # Scaling is chosen by the caller (documented above) and non-convergence is recorded in the
    # result, so arch's warnings about both would only repeat what GarchFit reports.
    # (arch installs its own ConvergenceWarning filter, hence show_warning=False; catch_warnings
    # keeps that filter change from leaking into the caller's process.)
    from arch.utility.exceptions import DataScaleWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataScaleWarning)
        return _model(scaled).fit(disp="off", last_obs=last_obs, show_warning=False)


def _holdout(scaled: np.ndarray, holdout: int):
    n_train = scaled.size - holdout
    train_result = _fit(scaled, last_obs=n_train)
    forecast = train_result.forecast(horizon=1, start=n_train - 1, reindex=False)
    # the row made at close t is the forecast for t+1; the last row (for n) is beyond the data
    garch_variance = forecast.variance.to_numpy()[:-1, 0]
    squared_residuals = (scaled[n_train:] - float(train_result.params["mu"])) ** 2
    naive_variance = np.full(holdout, float(np.var(scaled[:n_train])))
    return squared_residuals, garch_variance, naive_variance, train_result


def holdout_variance_forecasts(returns, holdout: int, scale: float = 100.0, min_obs: int = 500) -> pd.DataFrame:
    """One-step variance forecasts for the last ``holdout`` returns, without look-ahead.

    Parameters
    ----------
    returns : array_like
        1-D, finite.
    holdout : int
        Number of final observations to forecast.
    scale, min_obs
        As in :func:`fit_garch`.

    Returns
    -------
    pandas.DataFrame
        Indexed by observation position: ``squared_residual`` (the proxy (r_t − mu)², mu from the
        training fit), ``garch_variance`` (forecast made at t-1 with parameters fitted on
        ``returns[:-holdout]``) and ``naive_variance`` (the training sample's variance), all in the
        input's units.

    References
    ----------
    arch ``ARCHModelResult.forecast(start=..., reindex=False)``.
    """
    values = _validated_returns(returns, holdout, scale, min_obs)
    squared, garch_var, naive_var, _ = _holdout(values * scale, holdout)
    return pd.DataFrame(
        {
            "squared_residual": squared / scale**2,
            "garch_variance": garch_var / scale**2,
            "naive_variance": naive_var / scale**2,
        },
        index=pd.RangeIndex(values.size - holdout, values.size, name="position"),
    )


def _message(result) -> str:
    return str(getattr(result.optimization_result, "message", ""))


def fit_garch(
    returns,
    holdout: int,
    scale: float = 100.0,
    min_obs: int = 500,
    ljung_box_lags: int = 10,
    arch_lm_lags: int = 5,
    qlike_floor: float = 1e-8,
) -> GarchFit:
    """Fit a constant-mean GARCH(1,1) with normal errors and evaluate its variance forecasts.

    Parameters, likelihood, criteria, sigma_forecast and diagnostics come from the full-sample
    refit. Non-convergence (arch ``convergence_flag != 0``) is recorded in ``converged`` /
    ``convergence_message``, never raised.

    Parameters
    ----------
    returns : array_like
        1-D spread log returns, finite.
    holdout : int
        Final observations used for the out-of-sample QLIKE comparison (its parameters are fitted
        on the rest).
    scale : float, default 100.0
        Multiplier applied before fitting (see the module docstring).
    min_obs : int, default 500
        Minimum number of returns (and min_obs/2 for the training part).
    ljung_box_lags : int, default 10
        Lag of the Ljung-Box test (statsmodels ``acorr_ljungbox``).
    arch_lm_lags : int, default 5
        Lags of Engle's ARCH-LM test (statsmodels ``het_arch``).
    qlike_floor : float, default 1e-8
        Squared residuals below ``qlike_floor × training variance`` are raised to it in QLIKE (a zero
        return would make the loss infinite).

    Returns
    -------
    GarchFit

    Raises
    ------
    ValueError
        NaN/inf returns or bad arguments.
    InsufficientHistoryError
        ``len(returns) < min_obs`` or the training part is shorter than ``min_obs/2``.

    References
    ----------
    Bollerslev (1986); Patton (2011) QLIKE; Ljung & Box (1978); Engle (1982); arch.
    """
    values = _validated_returns(returns, holdout, scale, min_obs)
    if not qlike_floor > 0.0:
        raise ValueError(f"qlike_floor must be positive, got {qlike_floor}")
    scaled = values * scale
    n_obs = scaled.size

    squared, garch_var, naive_var, train_result = _holdout(scaled, holdout)
    floor = qlike_floor * float(naive_var[0])
    qlike_garch = qlike(squared, garch_var, floor)
    qlike_naive = qlike(squared, naive_var, floor)

    result = _fit(scaled)
    params = result.params
    variance_next = float(result.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0])
    std_resid = np.asarray(result.std_resid, dtype=float)
    from statsmodels.stats.diagnostic import acorr_ljungbox, het_arch

    ljung_box = acorr_ljungbox(std_resid, lags=[ljung_box_lags], return_df=True)
    arch_lm = het_arch(std_resid, nlags=arch_lm_lags, result_object=True)

    constant_variance = float(np.var(scaled))
    loglik_constant = -0.5 * n_obs * (math.log(2.0 * math.pi * constant_variance) + 1.0)
    constant_params = 2  # mean and variance

    converged = result.convergence_flag == 0 and train_result.convergence_flag == 0
    message = _message(result)
    if train_result.convergence_flag != 0 or result.convergence_flag != 0:
        message = f"full-sample fit: {_message(result)}; training fit: {_message(train_result)}"
    alpha, beta = float(params["alpha[1]"]), float(params["beta[1]"])
    return GarchFit(
        mu=float(params["mu"]) / scale,
        omega=float(params["omega"]) / scale**2,
        alpha=alpha,
        beta=beta,
        persistence=alpha + beta,
        loglik=float(result.loglikelihood),
        aic=float(result.aic),
        bic=float(result.bic),
        aic_constant=-2.0 * loglik_constant + 2.0 * constant_params,
        bic_constant=-2.0 * loglik_constant + math.log(n_obs) * constant_params,
        sigma_forecast=math.sqrt(variance_next) / scale,
        qlike_garch=qlike_garch,
        qlike_naive=qlike_naive,
        forecast_ratio=qlike_garch / qlike_naive,
        ljung_box_p=float(ljung_box["lb_pvalue"].iloc[0]),
        arch_lm_p=float(arch_lm.lmpval),
        converged=bool(converged),
        convergence_message=message,
        n_obs=int(n_obs),
        scale=float(scale),
    )


# Optimiser settings of the batched estimator: Newton iterations, projected-gradient tolerance
# (in the optimiser's unit-free coordinates) and the Newton decrement below which a step cannot
# change the log-likelihood by more than ~1e-10.
_BATCH_MAX_ITER = 100
_BATCH_GRADIENT_TOL = 1e-6
_BATCH_DECREMENT_TOL = 1e-10
BATCHED = "batched"
ARCH = "arch"


def _as_series_list(series) -> list:
    if isinstance(series, np.ndarray):
        if series.ndim != 2:
            raise ValueError(
                f"series must be a 2-D array (one row per series) or a list of 1-D series, got shape {series.shape}"
            )
        return list(series)
    if isinstance(series, pd.DataFrame):
        raise ValueError(
            "series as a DataFrame is ambiguous; pass a list of columns or a 2-D array with one row per series"
        )
    return list(series)


def fit_garch_many(
    series,
    holdout: int,
    scale: float = 100.0,
    min_obs: int = 500,
    ljung_box_lags: int = 10,
    arch_lm_lags: int = 5,
    qlike_floor: float = 1e-8,
    labels=None,
    fallback: bool = True,
) -> list[GarchFit]:
    """:func:`fit_garch` for many return series at once, compiled, with arch as recorded fallback.

    Parameters
    ----------
    series : list of 1-D arrays, or 2-D array
        Spread returns, one series per list item or per *row* of a 2-D array (lengths may
        differ in a list).
    holdout, scale, min_obs, ljung_box_lags, arch_lm_lags, qlike_floor
        As in :func:`fit_garch`, the same for every series.
    labels : sequence of str, optional
        Names of the series (e.g. pair ids) for error messages.
    fallback : bool
        Refit with arch every fit whose compiled result is not trustworthy (see Notes).

    Returns
    -------
    list of GarchFit
        One per series, in input order, with the same fields and units as :func:`fit_garch`;
        ``estimator`` says which code produced it ("batched", "arch", or
        "<full-sample>/<training>" when they differ) and ``convergence_message`` why.

    Raises
    ------
    ValueError, InsufficientHistoryError, UnusableSeriesError
        As :func:`fit_garch`, with the series' label in the message.

    Notes
    -----
    The same model, likelihood, backcast, variance bounds, starting-value grid, forecast
    recursion and diagnostics as arch/statsmodels (see ``pairs_assets.quant._garch_numba``),
    maximised by a projected Newton method with the exact Hessian (numba) instead of arch's SLSQP.
    Each of a series' two fits (training part, full sample) is refitted with arch from arch's own
    starting values — the reference answer — when the compiled fit stops without meeting its
    convergence test, has a conditional variance on arch's variance bounds at the optimum (the
    likelihood has a kink there), has non-finite values, or (full-sample fit) puts α on its lower
    bound 0, where β is identified only through the decay of the backcast, the likelihood is flat
    and SLSQP and Newton stop at different points. The forecasts and diagnostics are then
    recomputed from arch's parameters. A series whose forecast variance is not positive is
    refitted whole by :func:`fit_garch`. With ``fallback=False`` untrusted fits are kept with
    ``converged=False``. Ljung-Box and ARCH-LM are computed as statsmodels
    ``acorr_ljungbox``/``het_arch`` do. ``bench_garch.py`` measures speed and agreement.

    References
    ----------
    Bollerslev (1986); Patton (2011) QLIKE; Ljung & Box (1978); Engle (1982); arch (Sheppard,
    ``arch_model``) — the tests compare every field with :func:`fit_garch` on real spreads.
    """
    from scipy.stats import chi2

    from pairs_assets.quant import _garch_numba as kernels

    items = _as_series_list(series)
    names = [f"series {i}" for i in range(len(items))] if labels is None else [str(label) for label in labels]
    if len(names) != len(items):
        raise ValueError(f"labels must have {len(items)} entries, got {len(names)}")
    if not qlike_floor > 0.0:
        raise ValueError(f"qlike_floor must be positive, got {qlike_floor}")
    for lags, field in ((ljung_box_lags, "ljung_box_lags"), (arch_lm_lags, "arch_lm_lags")):
        if not isinstance(lags, (int, np.integer)) or lags < 1:
            raise ValueError(f"{field} must be a positive integer, got {lags!r}")
    validated = []
    for name, values in zip(names, items):
        try:
            validated.append(_validated_returns(values, holdout, scale, min_obs))
        except (ValueError, InsufficientHistoryError, UnusableSeriesError) as error:
            raise type(error)(f"{name}: {error}") from error

    raw = np.empty((len(validated), kernels.RESULT_SIZE))
    for i, values in enumerate(validated):
        raw[i] = kernels.fit_series(
            values * scale,
            int(holdout),
            int(ljung_box_lags),
            int(arch_lm_lags),
            float(qlike_floor),
            _BATCH_MAX_ITER,
            _BATCH_GRADIENT_TOL,
            _BATCH_DECREMENT_TOL,
            1,
        )

    estimators: list[tuple[str, str]] = []
    notes: list[str] = []
    replaced: dict[int, GarchFit] = {}
    for i, values in enumerate(validated):
        row = raw[i]
        used, messages = [], []
        for part, offset, last_obs in (
            ("full-sample", 0, None),
            ("training", kernels.TRAIN_OFFSET, values.size - holdout),
        ):
            reasons = _untrusted(row, offset, kernels, check_alpha=offset == 0)
            if not reasons or not fallback:
                used.append(BATCHED)
                iterations = int(row[offset + kernels.ITERATIONS])
                state = "converged" if not reasons else f"not trustworthy ({'; '.join(reasons)})"
                messages.append(f"{part} fit: batched Newton {state} after {iterations} iterations")
                continue
            # arch from its own starting values on the same sample: the reference answer
            result = _fit(values * scale, last_obs=last_obs)
            params = result.params
            row[offset + kernels.MU] = float(params["mu"])
            row[offset + kernels.OMEGA] = float(params["omega"])
            row[offset + kernels.ALPHA] = float(params["alpha[1]"])
            row[offset + kernels.BETA] = float(params["beta[1]"])
            row[offset + kernels.NLL] = -float(result.loglikelihood)
            row[offset + kernels.CONVERGED] = 1.0 if result.convergence_flag == 0 else 0.0
            row[offset + kernels.CLIPPED] = 0.0
            used.append(ARCH)
            messages.append(f"{part} fit: arch fallback ({'; '.join(reasons)}): {_message(result)}")
        if ARCH in used:
            kernels.summarise(
                values * scale, int(holdout), row, int(ljung_box_lags), int(arch_lm_lags), float(qlike_floor)
            )
        if row[kernels.BAD_FORECAST] != 0.0:
            messages.append("a forecast variance is not positive and finite")
            if fallback:  # fit_garch decides (it raises on a non-positive forecast variance)
                replaced[i] = fit_garch(
                    values,
                    holdout=holdout,
                    scale=scale,
                    min_obs=min_obs,
                    ljung_box_lags=ljung_box_lags,
                    arch_lm_lags=arch_lm_lags,
                    qlike_floor=qlike_floor,
                )
                replaced[i] = replace(replaced[i], convergence_message="arch fallback: " + "; ".join(messages))
        estimators.append((used[0], used[1]))
        notes.append("; ".join(messages))
    if not len(raw):
        return []
    ljung_box_p = chi2.sf(raw[:, kernels.LJUNG_BOX_Q], ljung_box_lags)
    arch_lm_p = chi2.sf(raw[:, kernels.ARCH_LM], arch_lm_lags)

    fits: list[GarchFit] = []
    train = kernels.TRAIN_OFFSET
    for i, values in enumerate(validated):
        if i in replaced:
            fits.append(replaced[i])
            continue
        row = raw[i]
        n_obs = values.size
        loglik = -float(row[kernels.NLL])
        loglik_constant = -0.5 * n_obs * (math.log(2.0 * math.pi * float(np.var(values * scale))) + 1.0)
        alpha, beta = float(row[kernels.ALPHA]), float(row[kernels.BETA])
        qlike_garch, qlike_naive = float(row[kernels.QLIKE_GARCH]), float(row[kernels.QLIKE_NAIVE])
        full_estimator, train_estimator = estimators[i]
        usable = row[kernels.BAD_FORECAST] == 0.0
        fits.append(
            GarchFit(
                mu=float(row[kernels.MU]) / scale,
                omega=float(row[kernels.OMEGA]) / scale**2,
                alpha=alpha,
                beta=beta,
                persistence=alpha + beta,
                loglik=loglik,
                aic=-2.0 * loglik + 2.0 * 4,
                bic=-2.0 * loglik + math.log(n_obs) * 4,
                aic_constant=-2.0 * loglik_constant + 2.0 * 2,
                bic_constant=-2.0 * loglik_constant + math.log(n_obs) * 2,
                sigma_forecast=math.sqrt(float(row[kernels.SIGMA2_NEXT])) / scale if usable else math.nan,
                qlike_garch=qlike_garch if usable else math.nan,
                qlike_naive=qlike_naive,
                forecast_ratio=qlike_garch / qlike_naive if usable else math.nan,
                ljung_box_p=float(ljung_box_p[i]),
                arch_lm_p=float(arch_lm_p[i]),
                converged=bool(row[kernels.CONVERGED] == 1.0 and row[train + kernels.CONVERGED] == 1.0 and usable),
                convergence_message=notes[i],
                n_obs=int(n_obs),
                scale=float(scale),
                estimator=full_estimator
                if full_estimator == train_estimator
                else f"{full_estimator}/{train_estimator}",
            )
        )
    return fits


def _untrusted(row: np.ndarray, offset: int, kernels, check_alpha: bool) -> list[str]:
    """Why a batched fit is not used (empty: it is): the cases where it and arch may part ways.

    ``check_alpha``: also distrust α = 0 (applied to the full-sample fit, whose parameters and
    likelihood are reported; the training fit only feeds the holdout forecasts, and refitting its
    α = 0 cases with arch would cost more than the batched fits themselves — see the benchmark).
    """
    reasons = []
    if row[offset + kernels.CONVERGED] != 1.0:
        reasons.append(f"no convergence in {int(row[offset + kernels.ITERATIONS])} iterations")
    if row[offset + kernels.CLIPPED] > 0:
        reasons.append(f"{int(row[offset + kernels.CLIPPED])} conditional variance(s) on arch's variance bounds")
    if check_alpha and row[offset + kernels.ALPHA] <= 0.0:
        # α = 0 leaves β identified only through the decay of the backcast: the likelihood is
        # flat there and SLSQP and Newton stop at different points (measured in the benchmark)
        reasons.append("alpha on its lower bound 0")
    if not np.isfinite(row[offset : offset + kernels.FIT_SIZE]).all():
        reasons.append("non-finite parameters or likelihood")
    return reasons


def unconditional_sigma(omega: float, alpha: float, beta: float) -> float:
    """σ_∞ = √(ω / (1 − α − β)) of a stationary GARCH(1,1).

    Parameters
    ----------
    omega, alpha, beta : float

    Returns
    -------
    float
        NaN when α + β ≥ 1 or ω ≤ 0.
    """
    persistence = alpha + beta
    return math.sqrt(omega / (1.0 - persistence)) if persistence < 1.0 and omega > 0.0 else math.nan


def filter_fixed(
    changes, *, mu: float, omega: float, alpha: float, beta: float, fallback_sigma: float = math.nan
) -> tuple[np.ndarray, np.ndarray]:
    """Conditional σ_t and standardized residuals of ``changes`` under fixed GARCH(1,1) parameters.

    h_t = ω + α·ε²_{t−1} + β·h_{t−1}, ε_t = r_t − μ, started at the unconditional variance (the
    sample variance, or ``fallback_sigma``², when the parameters are not stationary). σ_t uses
    values up to t−1 only. A NaN change lets the variance evolve without a shock (ε² := h) and
    gives a NaN residual — the live path has gaps. It equals arch's ``ARCHModel.fix`` filter once
    the start-up (arch backcasts h_1) has decayed like β^t (checked in the tests); it is written
    out because arch cannot filter across missing values.

    Parameters
    ----------
    changes : array_like
        1-D changes r_t (NaN allowed).
    mu, omega, alpha, beta : float
        The parameters (input units).
    fallback_sigma : float, optional
        The start σ when the parameters are not stationary and the sample has no variance.

    Returns
    -------
    sigma : ndarray
        σ_t per change.
    resid : ndarray
        ε_t / σ_t (NaN where the change is NaN).

    References
    ----------
    Bollerslev (1986), "Generalized autoregressive conditional heteroskedasticity".
    """
    r = np.asarray(changes, dtype="float64")
    n = len(r)
    sigma = np.full(n, np.nan)
    resid = np.full(n, np.nan)
    if n == 0:
        return sigma, resid
    eps = r - mu
    h = unconditional_sigma(omega, alpha, beta) ** 2
    if not math.isfinite(h):
        finite = eps[np.isfinite(eps)]
        h = float(np.var(finite)) if len(finite) > 1 else fallback_sigma**2
    for t in range(n):
        sigma[t] = math.sqrt(h)
        e = eps[t]
        if math.isfinite(e):
            resid[t] = e / sigma[t]
            shock = e * e
        else:
            shock = h
        h = omega + alpha * shock + beta * h
    return sigma, resid


def filter_fixed_many(changes, *, mu, omega, alpha, beta, fallback_sigma=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`filter_fixed` of many series at once.

    Row p equals ``filter_fixed(changes[p], mu=mu[p], ...)`` bit for bit (the same start and the
    same float operations, vectorised across rows; checked in the tests).

    Parameters
    ----------
    changes : ndarray
        ``[P, n]``.
    mu, omega, alpha, beta : array_like
        Length P.
    fallback_sigma : array_like, optional
        Length P.

    Returns
    -------
    sigma, resid : ndarray
        ``[P, n]`` each.
    """
    r = np.asarray(changes, dtype="float64")
    if r.ndim != 2:
        raise ValueError(f"changes must be [P, n], got shape {r.shape}")
    n_series, n = r.shape
    mu, omega, alpha, beta = (
        np.broadcast_to(np.asarray(v, dtype="float64"), (n_series,)) for v in (mu, omega, alpha, beta)
    )
    fallback = (
        np.full(n_series, math.nan)
        if fallback_sigma is None
        else np.broadcast_to(np.asarray(fallback_sigma, dtype="float64"), (n_series,))
    )
    sigma = np.full((n_series, n), np.nan)
    resid = np.full((n_series, n), np.nan)
    if n == 0:
        return sigma, resid
    eps = r - mu[:, None]
    h = np.empty(n_series)
    for p in range(n_series):  # the start as filter_fixed computes it, scalar by scalar
        start = unconditional_sigma(float(omega[p]), float(alpha[p]), float(beta[p])) ** 2
        if not math.isfinite(start):
            finite = eps[p][np.isfinite(eps[p])]
            start = float(np.var(finite)) if len(finite) > 1 else float(fallback[p]) ** 2
        h[p] = start
    with np.errstate(invalid="ignore"):
        for t in range(n):
            sigma[:, t] = np.sqrt(h)
            e = eps[:, t]
            ok = np.isfinite(e)
            resid[:, t] = np.where(ok, e / sigma[:, t], np.nan)
            shock = np.where(ok, e * e, h)
            h = omega + alpha * shock + beta * h
    return sigma, resid


def garch_filter(returns: pd.Series, fit_until: int, scale: float = 100.0) -> tuple[pd.DataFrame, dict[str, float]]:
    """GARCH(1,1) conditional σ and standardized residuals, the parameters fitted on a prefix only.

    The parameters are estimated with ``arch`` on ``returns[:fit_until]`` (e.g. everything before a
    model's test slice); the whole series is then filtered with them by :func:`filter_fixed` — the
    recursion the signal job runs on the live spread
    (:func:`pairs_assets.quant.signals.garch_filter_fixed`), so training and trading features
    agree. σ_t uses returns up to t−1 only: no value after t enters the features at t, and no value
    after ``fit_until`` enters the parameters.

    Parameters
    ----------
    returns : pandas.Series
        Spread returns indexed by session.
    fit_until : int
        Returns used for the fit.
    scale : float, default 100.0
        As in :func:`fit_garch`.

    Returns
    -------
    frame : pandas.DataFrame
        Indexed like ``returns``: ``garch_sigma`` (input units) and ``garch_std_resid``.
    params : dict of str to float
        ``mu, omega, alpha, beta`` in input units.
    """
    values = np.asarray(returns, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"returns contains {int((~np.isfinite(values)).sum())} NaN or infinite value(s)")
    if not 0 < fit_until <= values.size:
        raise ValueError(f"fit_until must be in 1..{values.size}, got {fit_until}")
    fitted = _fit(values * scale, last_obs=fit_until).params
    params = {
        "mu": float(fitted["mu"]) / scale,
        "omega": float(fitted["omega"]) / scale**2,
        "alpha": float(fitted["alpha[1]"]),
        "beta": float(fitted["beta[1]"]),
    }
    sigma, std_resid = filter_fixed(values, **params)
    frame = pd.DataFrame({"garch_sigma": sigma, "garch_std_resid": std_resid}, index=returns.index)
    return frame, params
