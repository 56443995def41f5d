"""Synthetic price panels with planted cointegrated pairs, for the tests and benchmarks (not installed).

Regressors x are random walks in log price whose innovations follow a GARCH(1,1) process
``e_t = σ_t·z_t, σ²_t = ω + α·e²_{t-1} + β·σ²_{t-1}`` (Bollerslev 1986), started at the
unconditional variance ω / (1 − α − β). Dependents are ``y = a + b·x + s`` with ``s`` a discretised
Ornstein-Uhlenbeck (AR(1)) spread ``s_t = φ·s_{t-1} + η_t`` whose coefficient
``φ = 2^(−1/half_life)`` gives exactly the requested half-life in sessions. Independent random
walks (same GARCH innovations, independent draws) provide the null for false-positive checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CALIBRATION_KINDS", "calibration_market", "factor_market", "garch_innovations", "synthetic_panel"]

START_DATE = "2000-01-03"


def garch_innovations(rng: np.random.Generator, n_obs: int, garch: tuple[float, float, float]) -> np.ndarray:
    """``n_obs`` GARCH(1,1) innovations with normal shocks drawn from ``rng``.

    Inputs: ``rng`` — numpy Generator; ``garch`` — (omega, alpha, beta) with alpha + beta < 1.
    Output: 1-D array of innovations (log-return units).
    """
    omega, alpha, beta = garch
    if omega <= 0.0 or alpha < 0.0 or beta < 0.0 or alpha + beta >= 1.0:
        raise ValueError(f"garch must be (omega > 0, alpha >= 0, beta >= 0) with alpha + beta < 1, got {garch}")
    shocks = rng.standard_normal(n_obs)
    innovations = np.empty(n_obs)
    variance = omega / (1.0 - alpha - beta)
    previous = 0.0
    for t in range(n_obs):
        variance = omega + alpha * previous**2 + beta * variance if t else variance
        previous = np.sqrt(variance) * shocks[t]
        innovations[t] = previous
    return innovations


def synthetic_panel(
    n_cointegrated_pairs: int,
    n_random_walks: int,
    n_obs: int,
    seed: int,
    half_life: float = 10.0,
    garch: tuple[float, float, float] = (1e-6, 0.08, 0.9),
    spread_sigma: float = 0.005,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """A closes panel with planted cointegrated pairs and independent random walks.

    Inputs: ``n_cointegrated_pairs`` — pairs (CYkk, CXkk) with CYkk = a + b·CXkk + OU spread in
    logs; ``n_random_walks`` — independent series RWkk; ``n_obs`` — sessions; ``seed`` — numpy
    seed (same seed, same panel); ``half_life`` — of the planted spreads, in sessions;
    ``garch`` — (omega, alpha, beta) of the log-return innovations of every random walk;
    ``spread_sigma`` — standard deviation of the OU spread's shocks (log units).
    Output: ``(closes, pairs)``: closes is a business-day-indexed frame from 2000-01-03, columns
    sorted, prices ``exp(log price)`` > 0; pairs is the sorted list of planted (y, x) names.
    """
    for field, value in (("n_cointegrated_pairs", n_cointegrated_pairs), ("n_random_walks", n_random_walks)):
        if value < 0:
            raise ValueError(f"{field} must be >= 0, got {value}")
    if n_obs < 2:
        raise ValueError(f"n_obs must be at least 2, got {n_obs}")
    if not half_life > 0.0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    if not spread_sigma > 0.0:
        raise ValueError(f"spread_sigma must be positive, got {spread_sigma}")
    rng = np.random.default_rng(seed)
    width = max(2, len(str(max(n_cointegrated_pairs, n_random_walks) - 1)))
    ar_coefficient = 2.0 ** (-1.0 / half_life)
    series: dict[str, np.ndarray] = {}
    pairs: list[tuple[str, str]] = []
    for k in range(n_cointegrated_pairs):
        x_log = np.log(rng.uniform(20.0, 200.0)) + np.cumsum(garch_innovations(rng, n_obs, garch))
        intercept = rng.uniform(-0.5, 0.5)
        slope = rng.uniform(0.5, 1.5)
        shocks = rng.standard_normal(n_obs) * spread_sigma
        spread = np.empty(n_obs)
        spread[0] = shocks[0] / np.sqrt(1.0 - ar_coefficient**2)  # stationary start
        for t in range(1, n_obs):
            spread[t] = ar_coefficient * spread[t - 1] + shocks[t]
        y_name, x_name = f"CY{k:0{width}d}", f"CX{k:0{width}d}"
        series[x_name] = np.exp(x_log)
        series[y_name] = np.exp(intercept + slope * x_log + spread)
        pairs.append((y_name, x_name))
    for k in range(n_random_walks):
        log_price = np.log(rng.uniform(20.0, 200.0)) + np.cumsum(garch_innovations(rng, n_obs, garch))
        series[f"RW{k:0{width}d}"] = np.exp(log_price)
    index = pd.bdate_range(START_DATE, periods=n_obs, name="Date")
    closes = pd.DataFrame({name: series[name] for name in sorted(series)}, index=index)
    return closes, sorted(pairs)


def factor_market(
    template: pd.DataFrame,
    sectors: dict[str, list[str]],
    seed: int,
    factor_share: float = 0.8,
    garch: tuple[float, float, float] = (4e-6, 0.08, 0.9),
) -> pd.DataFrame:
    """A sector-factor market without cointegration, in the layout of ``template``.

    Inputs: ``template`` — a wide closes frame (sessions × symbols; e.g. the embedded dataset)
    whose index, columns and missing cells (a symbol's history before it lists) are copied, every
    symbol starting at 50; ``sectors`` — sector → symbols; ``seed`` — numpy seed; ``factor_share`` — the share
    of each symbol's return variance that is its sector's factor, so any two symbols of a sector
    have log-return correlation ≈ ``factor_share`` (most pairs pass ``correlation_min``);
    ``garch`` — (omega, alpha, beta) of the factor's GARCH(1,1) innovations.
    Each log return is ``f_t + e_t``: ``f`` the sector factor, ``e`` the symbol's own independent
    GARCH shocks scaled to ``(1 − factor_share)/factor_share`` of the factor's variance. Log prices
    are random walks with a common stochastic trend per sector and independent ones per symbol:
    correlated, not cointegrated. Output: closes like ``template`` (same NaNs).
    """
    if not 0.0 < factor_share < 1.0:
        raise ValueError(f"factor_share must lie in (0, 1), got {factor_share}")
    rng = np.random.default_rng(seed)
    n = len(template)
    out = pd.DataFrame(np.nan, index=template.index, columns=template.columns)
    scale = np.sqrt((1.0 - factor_share) / factor_share)
    for sector in sorted(sectors):
        factor = garch_innovations(rng, n, garch)
        for symbol in sectors[sector]:
            own = scale * garch_innovations(rng, n, garch)
            valid = template[symbol].notna().to_numpy()
            first = int(np.argmax(valid))
            log_price = np.log(50.0) + np.cumsum(np.r_[0.0, (factor + own)[first + 1 :]])
            out.iloc[first:, out.columns.get_loc(symbol)] = np.exp(log_price)
            out.loc[~valid, symbol] = np.nan
    return out


#: The generated markets of the calibration (``calibration_market``'s ``kind``).
CALIBRATION_KINDS = ("independent", "factor", "planted")


def calibration_market(
    kind: str,
    sessions: pd.DatetimeIndex,
    sectors: dict[str, int],
    seed: int,
    factor_share: float = 0.8,
    garch: tuple[float, float, float] = (4e-6, 0.08, 0.9),
    half_life: float = 5.0,
    spread_sigma: float = 0.006,
) -> tuple[pd.DataFrame, dict[str, list[str]], list[tuple[str, str, str]]]:
    """A generated market for calibrating the walk-forward: what it must find, and what it must not.

    Inputs: ``kind`` — ``independent`` (every symbol an independent GARCH(1,1) random walk in log
    price: no correlation, no cointegration), ``factor`` (a sector-factor market, see
    :func:`factor_market`: any two symbols of a sector correlated ≈ ``factor_share``, none
    cointegrated) or ``planted`` (the factor market with, in each sector, one planted cointegrated
    pair: its first symbol is ``a + b·x + s`` in logs, ``x`` the sector's second symbol and ``s`` an
    AR(1) spread of half-life ``half_life`` sessions and shock σ ``spread_sigma``);
    ``sessions`` — the trading sessions (e.g. NYSE sessions from the partitions' calendar);
    ``sectors`` — sector → number of symbols (≥ 2); ``seed`` — numpy seed (same seed, same market).
    Output: ``(closes, symbols_by_sector, planted)``: closes sessions × symbols (``<SECTOR>_<k>``,
    prices > 0), each sector's symbols, and the planted pairs as (sector, y, x).
    """
    if kind not in CALIBRATION_KINDS:
        raise ValueError(f"kind must be one of {', '.join(CALIBRATION_KINDS)}, got {kind!r}")
    if not 0.0 < factor_share < 1.0:
        raise ValueError(f"factor_share must lie in (0, 1), got {factor_share}")
    rng = np.random.default_rng(seed)
    n = len(sessions)
    logs: dict[str, np.ndarray] = {}
    by_sector: dict[str, list[str]] = {}
    planted: list[tuple[str, str, str]] = []
    scale = np.sqrt((1.0 - factor_share) / factor_share)
    phi = 2.0 ** (-1.0 / half_life)
    for sector in sorted(sectors):
        if sectors[sector] < 2:
            raise ValueError(f"sector {sector}: need at least 2 symbols, got {sectors[sector]}")
        names = [f"{sector.upper()}_{k}" for k in range(sectors[sector])]
        by_sector[sector] = names
        factor = garch_innovations(rng, n, garch) if kind != "independent" else np.zeros(n)
        for name in names:
            own = garch_innovations(rng, n, garch) * (scale if kind != "independent" else 1.0)
            logs[name] = np.log(50.0) + np.cumsum(factor + own)
        if kind == "planted":
            y, x = names[0], names[1]
            shocks = rng.standard_normal(n) * spread_sigma
            spread = np.empty(n)
            spread[0] = shocks[0] / np.sqrt(1.0 - phi**2)
            for t in range(1, n):
                spread[t] = phi * spread[t - 1] + shocks[t]
            logs[y] = 0.1 + 0.9 * logs[x] + spread
            planted.append((sector, y, x))
    closes = pd.DataFrame({name: np.exp(v) for name, v in logs.items()}, index=pd.DatetimeIndex(sessions))
    return closes[sorted(closes.columns)], by_sector, planted
