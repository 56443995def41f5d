"""The pipeline's primitives: a sector's closes panel, the input fingerprint, the cointegration screen.

Below Dagster and below the stage assets: the daily graph's range runs
(:mod:`pairs_assets.assets.ranges`) and the walk-forward
(:func:`pairs_assets.quant.walkforward.replay.build_configs`) both use them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError, MissingBarsError
from pairs_assets.quant.strategy import Strategy

__all__ = ["SectorPanel", "cointegration_screen", "fingerprint_of", "rolling_pair_correlations"]


@dataclass
class SectorPanel:
    """A sector's closes over a span of sessions, and what is needed to fingerprint any window.

    Attributes
    ----------
    sector : str
    closes : pandas.DataFrame
        Sessions (tz-naive dates, every exchange session of the span) × the sector's symbols
        (sorted): the session's last close.
    source : str
        The bar source the closes come from.
    row_hashes : dict of str to ndarray or None
        Per symbol, the row hashes of its stored bars (``symbol, timestamp, source, close``,
        pandas ``hash_pandas_object``) in timestamp order, one per session of ``closes``, so that
        the input fingerprint of any window equals :func:`resources.bars.fingerprint_bars` of the
        same bars read from the store. None: no fingerprints (the configs then carry
        ``fingerprint_label``).
    bars : BarPanel or None
        Intraday bars (several a session): the walk-forward then decides on every bar
        (:mod:`pairs_assets.quant.walkforward.bars`); None: the session closes are the bars.
    """

    sector: str
    closes: pd.DataFrame
    source: str
    row_hashes: dict[str, np.ndarray] | None = None
    bars: Any = None  # a pairs_assets.quant.walkforward.bars.BarPanel (not imported: the walk-forward sits above)

    def position(self, session: pd.Timestamp) -> int:
        return int(self.closes.index.get_loc(session))

    def window(self, symbols: Sequence[str], end: int, n: int) -> pd.DataFrame:
        """The ``n`` sessions ending at position ``end`` (inclusive) for ``symbols``."""
        start = end - n + 1
        if start < 0:
            raise InsufficientHistoryError(
                f"partition {self.closes.index[end].date()}|{self.sector}: the window needs {n} sessions but the "
                f"loaded history starts at {self.closes.index[0].date()}"
            )
        frame = self.closes.iloc[start : end + 1][list(symbols)]
        if frame.isna().to_numpy().any():
            missing = frame.isna()
            symbol = str(missing.sum().idxmax())
            gaps = frame.index[missing[symbol]]
            raise MissingBarsError(
                f"partition {self.closes.index[end].date()}|{self.sector}: symbol {symbol} has no bars for "
                f"{int(missing[symbol].sum())} of the {n} window sessions (first {gaps[0].date()}, last {gaps[-1].date()})"
            )
        return frame

    def fingerprint(self, symbols: Sequence[str], end: int, n: int) -> str:
        """SHA-256 (first 16 hex) of the window's bars, as :func:`resources.bars.fingerprint_bars`."""
        if self.row_hashes is None:
            raise ValueError("this panel carries no row hashes")
        start = max(0, end - n + 1)
        digest = hashlib.sha256()
        digest.update(b"".join(self.row_hashes[s][start : end + 1].tobytes() for s in sorted(symbols)))
        return digest.hexdigest()[:16]


def fingerprint_of(*parts: object) -> str:
    """The configs' input fingerprint: SHA-256 (first 16 hex) of JSON-serialisable parts, keys sorted.

    Parameters
    ----------
    *parts : object
        JSON-serialisable values.

    Returns
    -------
    str
    """
    import json

    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def rolling_pair_correlations(values: np.ndarray, formation_window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlations of log returns of every symbol pair over the window ending at each row.

    Returns (corr [rows, pairs] — NaN where undefined or before the first full window, rows index,
    cols index of the pairs (np.triu_indices)).
    """
    n_rows, n_symbols = values.shape
    rows, cols = np.triu_indices(n_symbols, k=1)
    corr_out = np.full((n_rows, len(rows)), np.nan)
    m = formation_window - 1  # returns per window
    if n_symbols < 2 or n_rows < formation_window or m < 2:
        return corr_out, rows, cols
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.diff(np.log(values), axis=0)
    bad = ~np.isfinite(returns)
    returns = np.where(bad, 0.0, returns)

    def rolling(a: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])
        return c[m:] - c[:-m]

    touched = rolling(bad[:, rows].astype(float) + bad[:, cols].astype(float)) > 0
    sums = rolling(returns)
    squares = rolling(returns**2)
    cross = rolling(returns[:, rows] * returns[:, cols])
    mean_a, mean_b = sums[:, rows] / m, sums[:, cols] / m
    cov = cross / m - mean_a * mean_b
    var_a = squares[:, rows] / m - mean_a**2
    var_b = squares[:, cols] / m - mean_b**2
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.sqrt(var_a * var_b)
    # a window touching a missing value is a candidate, so the stages see (and report) it
    corr = np.where(touched, np.inf, corr)
    # the window of returns ending at return k covers closes k-m+1 .. k+1 → session row k+1
    corr_out[formation_window - 1 :] = corr
    return corr_out, rows, cols


def cointegration_screen(closes: pd.DataFrame, strategy: Strategy, at: Sequence[int] | None = None) -> np.ndarray:
    """For each session, whether the cointegration stage could find a pair there.

    A pair can pass only when its correlation reaches ``correlation_min`` and Engle-Granger gives
    p < ``eg_pvalue_max`` (both orderings when ``eg_require_both_orderings``). The Engle-Granger
    tests of every (pair, screened session) that passes the correlation screen run in one vectorised call
    (:func:`pairs_assets.quant.cointegration.engle_granger_many`, the function the stage itself
    uses), and a session is kept when some pair's p-values are below the threshold plus a 1e-9
    margin. Kept sessions run the real stages; the others get the empty config. The stages can
    only drop pairs from this set (stale symbols, collinearity, Benjamini-Hochberg), never add one.

    Parameters
    ----------
    closes : pandas.DataFrame
        Sessions × symbols.
    strategy : Strategy
    at : sequence of int, optional
        Row positions of the sessions to screen (the formation sessions when the strategy
        re-selects on a schedule: only their stages ever run); the other sessions are False.
        None: every session. A screened session's answer does not depend on which others are
        screened.

    Returns
    -------
    ndarray of bool
        One per session.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    from pairs_assets.quant.cointegration import engle_granger_many

    values = closes.to_numpy(dtype=float)
    n = strategy.formation_window
    corr, rows, cols = rolling_pair_correlations(values, n)
    candidate = np.nan_to_num(corr, nan=-2.0) >= strategy.correlation_min - 1e-9
    if at is not None:
        screened = np.zeros(len(values), dtype=bool)
        screened[np.asarray(at, dtype=int)] = True
        candidate &= screened[:, None]
    keep = np.zeros(len(values), dtype=bool)
    if len(values) < n:
        return keep
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values)
    windows = sliding_window_view(logs, n, axis=0)  # [row - n + 1, symbol, n]: window ending at row
    margin = strategy.eg_pvalue_max + 1e-9
    for k, (a, b) in enumerate(zip(rows, cols)):
        ends = np.flatnonzero(candidate[:, k])
        if ends.size == 0:
            continue
        ya, yb = windows[ends - n + 1, a, :], windows[ends - n + 1, b, :]
        usable = np.isfinite(ya).all(axis=1) & np.isfinite(yb).all(axis=1)
        keep[ends[~usable]] = True  # the stages report what is wrong with such a window
        ends, ya, yb = ends[usable], ya[usable], yb[usable]
        if ends.size == 0:
            continue
        try:
            _, p_ab = engle_granger_many(ya.T, yb.T)
            _, p_ba = engle_granger_many(yb.T, ya.T)
        except ValueError:  # a degenerate window: let the stages say which
            keep[ends] = True
            continue
        both = np.maximum(p_ab, p_ba) if strategy.eg_require_both_orderings else np.minimum(p_ab, p_ba)
        keep[ends[both < margin]] = True
    return keep
