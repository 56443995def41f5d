"""Summary statistics of an executed walk-forward: Sharpe, drawdown, trade statistics, deflated Sharpe.

Inputs are the two frames of :class:`pairs_assets.quant.walkforward.execution.ExecutionResult`:
``daily`` (per session: pnl, turnover, n_positions, …) and ``trades`` (per trade: pnl, holding,
entry_exec, …). P&L is in units of capital (capital fixed at 1, no compounding), so returns are
additive: annualised return = mean daily P&L × periods_per_year.

The deflated Sharpe ratio (Bailey & López de Prado 2014) is the probabilistic Sharpe ratio
(Bailey & López de Prado 2012) of the observed Sharpe against the Sharpe one would expect from the
best of ``n_trials`` independent strategies with no skill:

* ``PSR(SR*) = Φ( (SR − SR*)·√(T − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²) )`` with SR the
  per-period (not annualised) Sharpe ratio, T the number of observations, γ₃ the skewness and γ₄
  the (non-excess) kurtosis of the returns;
* ``SR* = √V·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))``, γ ≈ 0.5772 the Euler-Mascheroni
  constant, N = n_trials, V the variance of the trials' Sharpe ratios (SR* = 0 for N = 1).

When the trials' Sharpe ratios are not known, V defaults to the sampling variance of the Sharpe
estimator itself, ``(1 − γ₃·SR + (γ₄ − 1)/4·SR²)/(T − 1)`` (Mertens 2002; the squared
denominator of the PSR): the dispersion trial Sharpes would have if every trial were the same
skill-less strategy observed with fresh noise. Pass ``sharpe_variance`` (per-period units) when the
trials' Sharpe ratios are available.

Intervals: the circular block bootstrap (Politis & Romano 1992) resamples the daily P&L in blocks
of ``block`` consecutive sessions (wrapping round the end), so the serial dependence inside a block
— a position held for days — is kept; ``block`` 1 is the i.i.d. bootstrap. The 95% interval is
the percentile interval of the annualised Sharpe over ``n_boot`` resamples drawn from a seeded
generator (the same seed and length give the same resamples, so every row of a table and the
difference of two strategies on the same days use the same draws: a paired bootstrap). A resample
whose P&L is all zero (no position in any drawn block) has Sharpe 0.

References: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5); Bailey &
López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2); Mertens
(2002), "Comments on variance of the IID estimator in Lo (2002)"; Politis & Romano (1992), "A
circular block-resampling procedure for stationary data", in Exploring the Limits of Bootstrap.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

# scipy.stats is imported where used: importing the definitions should not pay ~1 s for it.

__all__ = [
    "BOOTSTRAP_BLOCK",
    "BOOTSTRAP_RESAMPLES",
    "DEFAULT_PERIODS",
    "EULER_MASCHERONI",
    "SUMMARY_KEYS",
    "by_period",
    "deflated_sharpe_ratio",
    "block_bootstrap_sharpes",
    "expected_maximum_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_difference",
    "sharpe_estimator_variance",
    "sharpe_interval",
    "summarize",
]

EULER_MASCHERONI = 0.5772156649015329
BOOTSTRAP_BLOCK = 21
BOOTSTRAP_RESAMPLES = 2000
SUMMARY_KEYS = [
    "sharpe",
    "sharpe_low",
    "sharpe_high",
    "ann_return",
    "ann_vol",
    "max_drawdown",
    "trades",
    "avg_holding",
    "hit_rate",
    "turnover",
    "exposure",
    "t_stat",
    "psr",
    "deflated_sharpe",
]
DEFAULT_PERIODS: tuple[tuple[str, str, str], ...] = (
    ("1995-2005", "1995-01-01", "2005-12-31"),
    ("2006-2015", "2006-01-01", "2015-12-31"),
    ("2016-2022", "2016-01-01", "2022-12-31"),
)


def sharpe_estimator_variance(sharpe: float, n_obs: int, skewness: float, kurt: float) -> float:
    """Sampling variance of a per-period Sharpe ratio estimate under non-normal returns.

    Parameters
    ----------
    sharpe : float
        Per-period (not annualised) Sharpe ratio estimate.
    n_obs : int
        Number of return observations T.
    skewness, kurt : float
        Skewness γ₃ and non-excess kurtosis γ₄ of the returns (3 for normal returns).

    Returns
    -------
    float
        ``(1 − γ₃·SR + (γ₄ − 1)/4·SR²)/(T − 1)``; NaN when T < 2 or the numerator is not positive.

    References
    ----------
    Mertens (2002); Bailey & López de Prado (2012), eq. for the PSR's denominator.
    """
    numerator = 1.0 - skewness * sharpe + (kurt - 1.0) / 4.0 * sharpe**2
    if n_obs < 2 or not numerator > 0.0:
        return math.nan
    return numerator / (n_obs - 1)


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_obs: int, skewness: float, kurt: float) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark`` given the estimate ``sharpe``.

    Parameters
    ----------
    sharpe, benchmark : float
        Estimated and benchmark Sharpe ratios, per period (not annualised).
    n_obs : int
        Number of return observations T.
    skewness, kurt : float
        Skewness and non-excess kurtosis of the returns.

    Returns
    -------
    float
        ``Φ((SR − SR*)·√(T − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²))``; NaN when undefined.

    References
    ----------
    Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier".
    """
    variance = sharpe_estimator_variance(sharpe, n_obs, skewness, kurt)
    if not (math.isfinite(variance) and math.isfinite(benchmark) and math.isfinite(sharpe)):
        return math.nan
    from scipy.stats import norm

    return float(norm.cdf((sharpe - benchmark) / math.sqrt(variance)))


def expected_maximum_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent skill-less Sharpe ratios with variance ``sharpe_variance``.

    Parameters
    ----------
    n_trials : int
        Number of independent configurations tried (N ≥ 1).
    sharpe_variance : float
        Variance V of the trials' Sharpe ratios (per-period units), ≥ 0.

    Returns
    -------
    float
        ``√V·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))`` with γ the Euler-Mascheroni constant;
        0 for N = 1 (no selection).

    References
    ----------
    Bailey & López de Prado (2014), eq. (the "False Strategy" theorem's approximation).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if not sharpe_variance >= 0.0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance!r}")
    if n_trials == 1:
        return 0.0
    from scipy.stats import norm

    quantiles = (1.0 - EULER_MASCHERONI) * norm.ppf(1.0 - 1.0 / n_trials) + EULER_MASCHERONI * norm.ppf(
        1.0 - 1.0 / (n_trials * math.e)
    )
    return float(math.sqrt(sharpe_variance) * quantiles)


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    skewness: float,
    kurt: float,
    n_trials: int = 1,
    sharpe_variance: float | None = None,
) -> float:
    """Deflated Sharpe ratio: the PSR of ``sharpe`` against the expected best of ``n_trials``.

    Parameters
    ----------
    sharpe : float
        Per-period (not annualised) Sharpe ratio of the selected strategy.
    n_obs : int
        Number of return observations T.
    skewness, kurt : float
        Skewness and non-excess kurtosis of its returns.
    n_trials : int
        Number of independent configurations tried (N ≥ 1).
    sharpe_variance : float, optional
        Variance of the trials' per-period Sharpe ratios. Default: the estimator's own sampling
        variance :func:`sharpe_estimator_variance` (see the module docstring).

    Returns
    -------
    float
        ``PSR(SR*)`` with ``SR* = expected_maximum_sharpe(n_trials, V)``, a probability in [0, 1];
        NaN when the inputs do not define it (T < 2, non-finite moments).

    References
    ----------
    Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", Journal of Portfolio Management 40(5).
    """
    if sharpe_variance is None:
        sharpe_variance = sharpe_estimator_variance(sharpe, n_obs, skewness, kurt)
        if not math.isfinite(sharpe_variance):
            return math.nan
    benchmark = expected_maximum_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, benchmark, n_obs, skewness, kurt)


def _bootstrap_settings(block, n_boot, level) -> tuple[int, int, float]:
    if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 1:
        raise ValueError(f"block must be an integer >= 1 (sessions), got {block!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return int(block), int(n_boot), float(level)


def block_bootstrap_sharpes(
    pnl,
    block: int = BOOTSTRAP_BLOCK,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    periods_per_year: int = 252,
) -> np.ndarray:
    """Annualised Sharpe ratios of circular block-bootstrap resamples of one or more P&L series.

    Parameters
    ----------
    pnl : array-like, shape (n,) or (m, n)
        Daily P&L; several rows are resampled with the same blocks (paired, same sessions).
    block : int
        Block length in sessions (1: the i.i.d. bootstrap; longer than n: n).
    n_boot : int
        Resamples.
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed and n give the same blocks.
    periods_per_year : int

    Returns
    -------
    ndarray, shape (n_boot,) or (m, n_boot)
        Each resample is ⌈n/block⌉ blocks of ``block`` consecutive sessions starting at uniform
        positions, wrapping round the end (the last block cut so the resample has n sessions);
        Sharpe = mean/std(ddof=1)·√periods_per_year of the resample, 0 where the resample's P&L
        is constant zero, NaN where it is constant and not zero. Moments come from cumulative sums
        of the doubled series, so a resample costs ⌈n/block⌉ operations, not n.

    References
    ----------
    Politis & Romano (1992), the circular block bootstrap; Künsch (1989), the moving-block bootstrap.
    """
    values = np.asarray(pnl, dtype=float)
    single = values.ndim == 1
    values = np.atleast_2d(values)
    n = values.shape[1]
    block, n_boot, _ = _bootstrap_settings(block, n_boot, 0.5)
    if n < 2:
        out = np.full((values.shape[0], n_boot), math.nan)
        return out[0] if single else out
    block = min(block, n)
    k = -(-n // block)
    starts = np.random.default_rng(seed).integers(0, n, size=(n_boot, k))
    last = n - (k - 1) * block  # the last block's length
    doubled = np.concatenate([values, values], axis=1)
    zero = np.zeros((values.shape[0], 1))
    s1 = np.empty((values.shape[0], n_boot))
    s2 = np.empty((values.shape[0], n_boot))
    for power, out in ((1, s1), (2, s2)):
        cumulative = np.concatenate([zero, np.cumsum(doubled**power, axis=1)], axis=1)
        position = np.arange(n)
        full = cumulative[:, position + block] - cumulative[:, position]  # the sum of a block starting at each session
        tail = cumulative[:, position + last] - cumulative[:, position]
        out[:] = full[:, starts[:, :-1]].sum(axis=2) + tail[:, starts[:, -1]]
    mean = s1 / n
    var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
    # a variance at rounding level of the squares' sum is a constant resample
    constant = var <= 1e-12 * np.maximum(s2 / n, np.finfo(float).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpes = np.where(constant, np.where(mean == 0.0, 0.0, math.nan), mean / np.sqrt(var)) * math.sqrt(
            periods_per_year
        )
    return sharpes[0] if single else sharpes


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)


def sharpe_interval(
    pnl,
    block: int = BOOTSTRAP_BLOCK,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    periods_per_year: int = 252,
) -> tuple[float, float]:
    """Percentile interval of the annualised Sharpe ratio from the circular block bootstrap.

    Parameters
    ----------
    pnl : array-like
        Daily P&L.
    block, n_boot, seed, periods_per_year
        As for :func:`block_bootstrap_sharpes`.
    level : float
        Coverage (0.95).

    Returns
    -------
    (float, float)
        The (1 − level)/2 and (1 + level)/2 quantiles of the resamples' Sharpe ratios; NaN when
        fewer than 2 sessions or no finite resample.
    """
    block, n_boot, level = _bootstrap_settings(block, n_boot, level)
    return _percentiles(block_bootstrap_sharpes(pnl, block, n_boot, seed, periods_per_year), level)


def sharpe_difference(
    pnl_a: pd.Series,
    pnl_b: pd.Series,
    block: int = BOOTSTRAP_BLOCK,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    periods_per_year: int = 252,
) -> tuple[float, float, float]:
    """Sharpe of ``a`` minus Sharpe of ``b`` on the sessions both have, with a paired bootstrap interval.

    Parameters
    ----------
    pnl_a, pnl_b : Series
        Daily P&L indexed by session; only the common sessions are used.
    block, n_boot, seed, level, periods_per_year
        As for :func:`sharpe_interval`; both series are resampled with the same blocks.

    Returns
    -------
    (float, float, float)
        The difference of the annualised Sharpe ratios and its interval; NaN when either Sharpe is
        undefined.
    """
    block, n_boot, level = _bootstrap_settings(block, n_boot, level)
    common = pnl_a.index.intersection(pnl_b.index)
    a = pnl_a.loc[common].to_numpy(dtype=float)
    b = pnl_b.loc[common].to_numpy(dtype=float)
    point = _annual_sharpe(a, periods_per_year) - _annual_sharpe(b, periods_per_year)
    if not math.isfinite(point):
        return math.nan, math.nan, math.nan
    draws = block_bootstrap_sharpes(np.vstack([a, b]), block, n_boot, seed, periods_per_year)
    low, high = _percentiles(draws[0] - draws[1], level)
    return float(point), low, high


def _annual_sharpe(pnl: np.ndarray, periods_per_year: int) -> float:
    if pnl.size < 2:
        return math.nan
    return _ratio(float(pnl.mean()), float(pnl.std(ddof=1))) * math.sqrt(periods_per_year)


def _require(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s): {missing}")


def _ratio(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0.0:
        return math.nan
    return numerator / denominator


def summarize(
    daily: pd.DataFrame,
    trades: pd.DataFrame,
    n_trials: int = 1,
    periods_per_year: int = 252,
    sharpe_variance: float | None = None,
    *,
    selected: bool = True,
    block: int = BOOTSTRAP_BLOCK,
    n_boot: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Summary statistics of one executed strategy (:data:`SUMMARY_KEYS`).

    Parameters
    ----------
    daily : DataFrame
        Per-session ``pnl`` (net), ``turnover`` and ``n_positions`` (``ExecutionResult.daily``).
    trades : DataFrame
        Per-trade ``pnl`` (net) and ``holding`` (``ExecutionResult.trades``).
    n_trials : int
        Configurations tried, for the deflated Sharpe ratio.
    periods_per_year : int
        Annualisation factor (252 sessions).
    sharpe_variance : float, optional
        Variance of the trials' per-period Sharpe ratios for the deflated Sharpe ratio (default: see
        :func:`deflated_sharpe_ratio`).
    selected : bool
        Whether these returns are the outcome of a selection among ``n_trials`` configurations
        (development years); False (held-out years, a fixed baseline): ``deflated_sharpe`` is NaN
        and ``psr`` is the number to read.
    block, n_boot, seed, level
        The Sharpe interval's circular block bootstrap (:func:`sharpe_interval`).

    Returns
    -------
    dict
        ``sharpe`` (mean/std(ddof=1)·√periods_per_year of daily net P&L), ``sharpe_low`` and
        ``sharpe_high`` (its block-bootstrap interval, :func:`sharpe_interval`), ``ann_return``
        (mean·periods_per_year), ``ann_vol`` (std·√periods_per_year), ``max_drawdown`` (largest fall
        of cumulative P&L from its running peak, starting at 0; ≥ 0), ``trades`` (count),
        ``avg_holding`` (mean sessions held), ``hit_rate`` (share of trades with net P&L > 0),
        ``turnover`` (mean daily traded notional·periods_per_year), ``exposure`` (share of sessions
        with a position held at the close), ``t_stat`` (mean/(std(ddof=1)/√n) of trade net P&L),
        ``psr`` (:func:`probabilistic_sharpe_ratio` against 0), ``deflated_sharpe``
        (:func:`deflated_sharpe_ratio` of the daily per-period Sharpe with the sample skewness and
        kurtosis (biased moments) of daily P&L; NaN unless ``selected``). Undefined values (no
        sessions, no trades, zero variance) are NaN.

    References
    ----------
    Sharpe (1966); Bailey & López de Prado (2014).
    """
    _require(daily, ["pnl", "turnover", "n_positions"], "daily")
    _require(trades, ["pnl", "holding"], "trades")
    from scipy.stats import kurtosis, skew

    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, numbers.Real) or not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year!r}")
    pnl = daily["pnl"].to_numpy(dtype=float)
    n_obs = pnl.size
    if n_obs and not np.isfinite(pnl).all():
        raise ValueError("daily pnl contains NaN or infinite values")
    mean = float(pnl.mean()) if n_obs else math.nan
    std = float(pnl.std(ddof=1)) if n_obs >= 2 else math.nan
    per_period_sharpe = _ratio(mean, std)
    expected_maximum_sharpe(n_trials, 0.0)  # validates n_trials even when the DSR is undefined
    psr = deflated = low = high = math.nan
    if n_obs >= 2 and std > 0.0:
        moments = (float(skew(pnl, bias=True)), float(kurtosis(pnl, fisher=False, bias=True)))
        psr = probabilistic_sharpe_ratio(per_period_sharpe, 0.0, n_obs, *moments)
        if selected:
            deflated = deflated_sharpe_ratio(
                per_period_sharpe, n_obs, *moments, n_trials=n_trials, sharpe_variance=sharpe_variance
            )
        low, high = sharpe_interval(pnl, block, n_boot, seed, level, periods_per_year)
    if n_obs:
        cumulative = np.concatenate([[0.0], np.cumsum(pnl)])
        max_drawdown = float(np.max(np.maximum.accumulate(cumulative) - cumulative))
    else:
        max_drawdown = math.nan

    trade_pnl = trades["pnl"].to_numpy(dtype=float)
    n_trades = trade_pnl.size
    trade_std = float(trade_pnl.std(ddof=1)) if n_trades >= 2 else math.nan
    return {
        "sharpe": per_period_sharpe * math.sqrt(periods_per_year),
        "sharpe_low": low,
        "sharpe_high": high,
        "ann_return": mean * periods_per_year,
        "ann_vol": std * math.sqrt(periods_per_year),
        "max_drawdown": max_drawdown,
        "trades": int(n_trades),
        "avg_holding": float(trades["holding"].to_numpy(dtype=float).mean()) if n_trades else math.nan,
        "hit_rate": float(np.mean(trade_pnl > 0.0)) if n_trades else math.nan,
        "turnover": float(daily["turnover"].to_numpy(dtype=float).mean()) * periods_per_year if n_obs else math.nan,
        "exposure": float(np.mean(daily["n_positions"].to_numpy() > 0)) if n_obs else math.nan,
        "t_stat": _ratio(float(trade_pnl.mean()), trade_std / math.sqrt(n_trades)) if n_trades >= 2 else math.nan,
        "psr": psr,
        "deflated_sharpe": deflated,
    }


def by_period(
    daily: pd.DataFrame,
    trades: pd.DataFrame,
    periods: Sequence[tuple[str, object, object]] = DEFAULT_PERIODS,
    n_trials: int = 1,
    periods_per_year: int = 252,
    sharpe_variance: float | None = None,
    *,
    selected=True,
    **options,
) -> dict[str, dict[str, float]]:
    """:func:`summarize` per sub-period.

    Parameters
    ----------
    daily, trades : DataFrame
        As for :func:`summarize`; ``daily`` indexed by session and ``trades`` with ``entry_exec``.
    periods : sequence of (label, start, end)
        Inclusive date bounds (anything ``pd.Timestamp`` reads); default :data:`DEFAULT_PERIODS`
        (1995–2005, 2006–2015, 2016–2022).
    n_trials, periods_per_year, sharpe_variance
        As for :func:`summarize`.
    selected : bool or callable
        As for :func:`summarize`, or ``selected(first, last)`` of each period's bounds.
    **options
        ``block``, ``n_boot``, ``seed``, ``level``: as for :func:`summarize`.

    Returns
    -------
    dict
        ``{label: summary}`` in the order given. Daily statistics use the sessions within the
        bounds; a trade belongs to the period of its entry execution (``entry_exec``). A period
        without sessions gets NaN statistics and 0 trades.
    """
    _require(daily, ["pnl", "turnover", "n_positions"], "daily")
    _require(trades, ["pnl", "holding", "entry_exec"], "trades")
    if not isinstance(daily.index, pd.DatetimeIndex):
        raise TypeError(f"daily.index must be a DatetimeIndex, got {type(daily.index).__name__}")
    labels = [label for label, _, _ in periods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"period labels must be unique, got {labels}")
    entry_exec = pd.to_datetime(trades["entry_exec"])
    result = {}
    for label, start, end in periods:
        first, last = pd.Timestamp(start), pd.Timestamp(end)
        if first > last:
            raise ValueError(f"period {label!r}: start {first.date()} is after end {last.date()}")
        in_days = (daily.index >= first) & (daily.index <= last)
        in_trades = ((entry_exec >= first) & (entry_exec <= last)).to_numpy()
        result[str(label)] = summarize(
            daily.loc[in_days],
            trades.loc[in_trades],
            n_trials=n_trials,
            periods_per_year=periods_per_year,
            sharpe_variance=sharpe_variance,
            selected=selected(first, last) if callable(selected) else selected,
            **options,
        )
    return result
