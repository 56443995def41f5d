"""Plausibility of stored bars: OHLC consistency and price jumps against a robust scale.

Pure numerics on plain frames (no dagster, no I/O); ``pairs_assets.checks`` turns the results into
asset checks on ``raw_bars``.

*Jumps.* A bar's log return ``r_t = log(c_t / c_{t-1})`` (consecutive bars of one symbol) is scored
against the bars *before* it: ``z_t = (r_t - m_t) / s_t`` with ``m_t`` the median and
``s_t = 1.4826 · MAD`` of the previous ``window`` returns — a trailing Hampel identifier
(Hampel 1974; Pearson 2002, "Outliers in process modeling and identification"). The median and
the MAD ignore the outliers they are meant to find (breakdown point 50 %), so one absurd print
(a close of 1e308, an unadjusted split) cannot hide itself by inflating the scale, and using only
earlier returns keeps the score point in time. ``1.4826`` makes the MAD a consistent estimator of
the standard deviation for normal data (statsmodels ``robust.scale.mad`` uses the same constant).

A bar with fewer than ``min_history`` earlier returns (the first sessions of a store) has no
robust scale yet; rather than pass unjudged it meets an absolute rule — a close more than
``short_history_ratio_max`` times the previous one, or less than its reciprocal, is a jump — and
every close, with or without history, must lie within ``[price_min, price_max]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "MAD_TO_SIGMA",
    "JUMP_COLUMNS",
    "OHLC_COLUMNS",
    "ohlc_violations",
    "price_jumps",
    "trailing_median_mad",
]

#: 1 / Φ⁻¹(3/4): scales the median absolute deviation to σ for normal data.
MAD_TO_SIGMA = 1.482602218505602
OHLC_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "problem"]
JUMP_COLUMNS = ["symbol", "timestamp", "close", "previous_close", "log_return", "robust_z", "scale", "reason"]
_CHUNK_ROWS = 16_384


def trailing_median_mad(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and σ-scaled MAD of the ``window`` values *before* each position.

    Parameters
    ----------
    values : 1-D float array (NaN = missing, ignored).
    window : number of earlier values in each window (≥ 1).
    min_periods : fewer non-missing earlier values than this gives NaN for that position.

    Returns
    -------
    (median, scale) : two float arrays of ``len(values)``; ``scale = 1.4826 · median(|x - median|)``
    over ``values[max(0, t - window) : t]``. Position 0 has no earlier value (NaN).

    References
    ----------
    Hampel, F. R. (1974), "The influence curve and its role in robust estimation", JASA 69;
    statsmodels ``statsmodels.robust.scale.mad`` (same normalisation, ``center=median``).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    x = np.asarray(values, dtype="float64")
    n = len(x)
    median = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    if n < 2:
        return median, scale
    padded = np.concatenate([np.full(window, np.nan), x])
    # row t of the view: padded[t : t + window] = values[t - window : t], the window before t
    windows = np.lib.stride_tricks.sliding_window_view(padded[:-1], window)
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, n, _CHUNK_ROWS):
        block = windows[start : start + _CHUNK_ROWS]
        present = ~np.isnan(block)
        counts[start : start + len(block)] = present.sum(axis=1)
        ok = present.any(axis=1)
        if not ok.any():
            continue
        rows = block[ok]
        centre = np.nanmedian(rows, axis=1)
        mad = np.nanmedian(np.abs(rows - centre[:, None]), axis=1)
        idx = np.arange(start, start + len(block))[ok]
        median[idx] = centre
        scale[idx] = MAD_TO_SIGMA * mad
    short = counts < max(1, min_periods)
    median[short] = np.nan
    scale[short] = np.nan
    return median, scale


def price_jumps(
    bars: pd.DataFrame,
    *,
    window: int,
    z_max: float,
    min_abs_log_return: float,
    min_history: int,
    price_max: float,
    check_from: pd.Timestamp | None = None,
    short_history_ratio_max: float | None = None,
    price_min: float | None = None,
) -> pd.DataFrame:
    """Bars whose close is an implausible jump from the previous bar, or above ``price_max``.

    Parameters
    ----------
    bars : frame with ``symbol, timestamp, close`` (any bar frequency; earlier bars give the scale).
    window : earlier log returns in the trailing robust scale.
    z_max : a return with ``|robust z| > z_max`` is a jump ...
    min_abs_log_return : ... when also ``|log return| ≥ min_abs_log_return`` (a floor, so a stale
        series whose MAD is 0 does not flag every tick).
    min_history : returns with fewer earlier returns than this are not scored.
    price_max : closes above this are flagged whatever their history (a finite 1e308 is not a price).
    check_from : only bars at or after this time are reported (earlier bars are history).
    short_history_ratio_max : a bar whose return is not scored (fewer than ``min_history``
        earlier returns) is a jump when ``|log return| > log(short_history_ratio_max)`` (None: such
        bars are not judged).
    price_min : closes below this are flagged whatever their history (None: no floor).

    Returns
    -------
    DataFrame with ``JUMP_COLUMNS`` (``reason``: ``"jump"``, ``"jump (short history)"`` — no
    robust z —, ``"above price_max"`` or ``"below price_min"``), sorted by symbol and timestamp;
    empty when nothing is implausible.
    """
    if bars.empty:
        return pd.DataFrame(columns=JUMP_COLUMNS)
    ordered = bars.sort_values(["symbol", "timestamp"], kind="stable")
    found = []
    for symbol, group in ordered.groupby("symbol", sort=True):
        close = group["close"].to_numpy(dtype="float64")
        stamps = group["timestamp"].reset_index(drop=True)
        previous = np.concatenate([[np.nan], close[:-1]])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ret = np.log(close) - np.log(previous)
        median, scale = trailing_median_mad(ret, window, min_history)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (ret - median) / scale  # scale 0 (a flat window): ±inf for any move, NaN for none
            z = np.where((scale == 0) & (ret == median), 0.0, z)
        jump = (np.abs(z) > z_max) & (np.abs(ret) >= min_abs_log_return)
        short_jump = np.zeros(len(close), dtype=bool)
        if short_history_ratio_max is not None:  # no robust scale yet: the absolute rule judges
            with np.errstate(invalid="ignore"):
                short_jump = np.isnan(scale) & (np.abs(ret) > np.log(short_history_ratio_max))
        too_high = close > price_max
        too_low = close < price_min if price_min is not None else np.zeros(len(close), dtype=bool)
        flagged = jump | short_jump | too_high | too_low
        if check_from is not None:
            flagged &= (stamps >= check_from).to_numpy()
        for i in np.flatnonzero(flagged):
            found.append(
                {
                    "symbol": symbol,
                    "timestamp": stamps.iloc[i],
                    "close": close[i],
                    "previous_close": previous[i],
                    "log_return": ret[i],
                    "robust_z": z[i],
                    "scale": scale[i],
                    "reason": "above price_max"
                    if too_high[i]
                    else "below price_min"
                    if too_low[i]
                    else "jump (short history)"
                    if short_jump[i]
                    else "jump",
                }
            )
    return pd.DataFrame(found, columns=JUMP_COLUMNS)


def ohlc_violations(bars: pd.DataFrame, rel_tol: float = 1e-9) -> pd.DataFrame:
    """Bars whose known open/high/low/close contradict each other.

    Parameters
    ----------
    bars : frame with ``symbol, timestamp, open, high, low, close`` (NaN = unknown field).
    rel_tol : relative slack for rounding in the source (a price equal to the high up to
        ``rel_tol`` is inside the range).

    Returns
    -------
    DataFrame with ``OHLC_COLUMNS``; ``problem`` names every violated relation among
    ``high < low``, ``open > high``, ``open < low``, ``close > high``, ``close < low``. Only
    relations between *known* fields are checked (a closes-only bar never violates).
    """
    values = {c: bars[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close")}
    problems = np.full(len(bars), "", dtype=object)

    def add(mask: np.ndarray, text: str) -> None:
        problems[mask] = np.where(problems[mask] == "", text, problems[mask] + ", " + text)

    def above(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # a > b beyond tolerance, both known
        with np.errstate(invalid="ignore", over="ignore"):
            return ~np.isnan(a) & ~np.isnan(b) & (a > b + rel_tol * np.abs(b))

    add(above(values["low"], values["high"]), "high < low")
    add(above(values["open"], values["high"]), "open > high")
    add(above(values["low"], values["open"]), "open < low")
    add(above(values["close"], values["high"]), "close > high")
    add(above(values["low"], values["close"]), "close < low")
    bad = problems != ""
    out = bars.loc[bad, ["symbol", "timestamp", "open", "high", "low", "close"]].copy()
    out["problem"] = problems[bad]
    return out.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)[OHLC_COLUMNS]
