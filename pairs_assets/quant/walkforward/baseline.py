"""The classical pairs-trading baseline: Engle-Granger pairs, formation/trading periods, z-score bands.

In the spirit of Gatev, Goetzmann & Rouwenhorst (2006) with the cointegration screen of
Vidyamurthy (2004) / Engle & Granger (1987):

* trading periods of ``trading`` sessions start every ``step`` sessions of the exchange calendar,
  counted from a fixed epoch (``anchor``: the walk-forward counts NYSE sessions from 1990-01-02), so
  the same session belongs to the same period — and gets the same position — whatever range is
  run; called directly, a period already under way at the range's first session trades the rest of
  its sessions from there, starting flat (the walk-forward instead starts the baseline's sessions at
  that period's own start and keeps only the range's P&L and trades —
  :func:`~pairs_assets.quant.walkforward.engine.run_baseline` — so positions carry in exactly);
  a period ends at the range end if the range ends first. Without an anchor the first period
  starts at the range's first session (the periods then follow ``--start``);
* each period's formation window is the ``formation`` sessions of ``closes`` just before its first
  session; every unordered pair of symbols with finite, positive, non-constant closes over the
  window is tested once with Engle-Granger on log prices, the dependent being the ordering with the
  lower p-value (the alphabetically first symbol on a tie); pairs with p < ``pvalue_max`` are kept
  (pairs whose log prices are almost collinear are skipped: the test is unreliable there) and the
  ``top_n`` lowest p-values (ties by pair id) are traded;
* per pair, the OLS hedge ratio β and intercept a of ln y on [1, ln x] over the formation window,
  and the mean and *population* standard deviation σ (ddof 0) of the formation spread
  ``s = ln y − β·ln x − a``; in the trading period ``z_t = (s_t − mean)/σ`` from the close of t only;
* flat: enter when ``entry_z < |z_t| < stop_z`` — short the spread when z > 0, long when z < 0 —
  except on the period's last session; short: exit when ``z ≤ exit_z`` (z crosses 0 with the
  default), stop when ``z > stop_z``; long: exit when ``z ≥ −exit_z``, stop when ``z < −stop_z``;
  after a stop the pair is not entered again in that period; a position still open at the period's
  last session is closed there (``"period_end"``), or left open (exit NaT, ``"range_end"``) when the
  period is cut short by the range end. An exit may be followed by an entry on the same close.
* sizing: each traded pair gets ``1/top_n`` of capital in gross notional, split by the hedge ratio
  so the position is one unit of ln y against β units of ln x:
  ``w_y = side/(1+|β|)/top_n``, ``w_x = −side·β/(1+|β|)/top_n`` (so ``|w_y| + |w_x| = 1/top_n``).
  Capital of pairs not found stays in cash. With ``step < trading`` periods overlap and each brings
  its own allocation.

Decisions use only closes up to the decision session (tests scramble later bars). The result is a
trades frame (:data:`pairs_assets.quant.walkforward.execution.TRADE_COLUMNS`) for
:func:`pairs_assets.quant.walkforward.execution.execute`.

References: Gatev, Goetzmann & Rouwenhorst (2006), "Pairs trading: performance of a relative-value
arbitrage rule", Review of Financial Studies 19(3); Engle & Granger (1987), Econometrica 55;
Vidyamurthy (2004), "Pairs Trading: Quantitative Methods and Analysis".
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import NamedTuple

import numpy as np
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.quant.cointegration import engle_granger_many, hedge_ratio
from pairs_assets.quant.walkforward.execution import TRADE_COLUMNS, empty_trades

__all__ = ["BaselinePeriod", "baseline_periods", "classical_baseline", "select_baseline_pairs"]

# Engle-Granger's ADF step with Schwert's lag rule needs a few dozen sessions to be meaningful.
_MIN_FORMATION = 20


class BaselinePeriod(NamedTuple):
    """One formation/trading period of the baseline; every end is exclusive.

    Attributes
    ----------
    formation_start, formation_end : int
        Positions in the closes calendar.
    trading_start, trading_end : int
        Positions in the evaluation sessions.
    """

    formation_start: int
    formation_end: int
    trading_start: int
    trading_end: int


def _positive_int(value, field: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{field} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def baseline_periods(
    calendar: pd.DatetimeIndex,
    sessions: pd.DatetimeIndex,
    formation: int,
    trading: int,
    step: int,
    anchor: int | None = None,
) -> list[BaselinePeriod]:
    """The formation/trading periods of the baseline over ``sessions``.

    Parameters
    ----------
    calendar : DatetimeIndex
        Every session of the closes (sorted); ``sessions`` must be a subset of it.
    sessions : DatetimeIndex
        The evaluation range (sorted, non-empty).
    formation, trading, step : int
        Formation length, trading length and the step between trading starts, in sessions.
    anchor : int, optional
        The exchange-session number of ``calendar[0]`` counted from a fixed epoch: periods start at
        the calendar positions p with ``(p + anchor) % step == 0``, whatever the range. None: period
        k starts at ``sessions[k·step]``.

    Returns
    -------
    list of BaselinePeriod
        Each trades the range's sessions from its start (or the range's first session, for a
        period under way there) to ``trading`` sessions after its start or the range end, and
        forms on the ``formation`` calendar sessions just before its start.

    Raises
    ------
    InsufficientHistoryError
        When the calendar has fewer than ``formation`` sessions before the first period's start.
    """
    positions = calendar.get_indexer(sessions)
    if (positions < 0).any():
        first = sessions[int(np.argmax(positions < 0))]
        raise ValueError(f"session {first.date().isoformat()} of the range is not in closes")
    if anchor is None:
        starts = [int(positions[k]) for k in range(0, len(sessions), step)]
    else:
        first, last = int(positions[0]), int(positions[-1])
        # the earliest start whose trading period reaches the range's first session
        earliest = first - trading + 1
        earliest += (-(earliest + int(anchor))) % step
        starts = list(range(earliest, last + 1, step))
    if starts[0] < formation:
        first_close = calendar[0].date().isoformat() if len(calendar) else "none"
        under_way = int(positions[0]) - starts[0]
        raise InsufficientHistoryError(
            f"classical_baseline needs {formation + max(under_way, 0)} sessions of closes before the range start "
            f"{sessions[0].date().isoformat()} (the first formation window"
            + (f", of the trading period under way since {under_way} sessions before it" if under_way > 0 else "")
            + f"), got {int(positions[0])} (first close {first_close})"
        )
    periods = []
    for calendar_start in starts:
        begin = int(np.searchsorted(positions, calendar_start))
        end = int(np.searchsorted(positions, calendar_start + trading))
        periods.append(BaselinePeriod(calendar_start - formation, calendar_start, begin, end))
    return periods


def select_baseline_pairs(formation_closes: pd.DataFrame, top_n: int, pvalue_max: float) -> pd.DataFrame:
    """The baseline's pairs for one formation window, with their spread statistics.

    Parameters
    ----------
    formation_closes : DataFrame
        Formation-window sessions × symbols, closes.
    top_n : int
        How many pairs to keep at most.
    pvalue_max : float
        Keep pairs with Engle-Granger p-value < this.

    Returns
    -------
    DataFrame
        Columns pair_id, y, x, eg_pvalue, hedge_ratio, intercept, spread_mean, spread_std —
        at most ``top_n`` rows sorted by eg_pvalue then pair_id. Symbols with a missing,
        non-positive or constant close over the window are left out.

    Notes
    -----
    Engle-Granger with a constant and AIC lag selection (``engle_granger_many``, equal to
    statsmodels ``coint``); OLS hedge ratio (``hedge_ratio``); σ with ddof 0.
    """
    columns = ["pair_id", "y", "x", "eg_pvalue", "hedge_ratio", "intercept", "spread_mean", "spread_std"]
    values = formation_closes.to_numpy(dtype=float)
    usable = np.isfinite(values).all(axis=0) & (values > 0.0).all(axis=0)
    usable &= np.ptp(np.where(np.isfinite(values), values, 0.0), axis=0) > 0.0
    symbols = sorted((str(s) for s, ok in zip(formation_closes.columns, usable) if ok))
    pairs = list(itertools.combinations(symbols, 2))
    if not pairs:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("pair_id", "y", "x") else float) for c in columns})
    logs = np.log(formation_closes[symbols].to_numpy(dtype=float))
    column = {symbol: i for i, symbol in enumerate(symbols)}
    firsts = [column[a] for a, _ in pairs]
    seconds = [column[b] for _, b in pairs]
    labels = [f"{a}-{b}" for a, b in pairs] + [f"{b}-{a}" for a, b in pairs]
    stats, pvalues = engle_granger_many(logs[:, firsts + seconds], logs[:, seconds + firsts], labels=labels)
    n_pairs = len(pairs)
    rows = []
    for i, (a, b) in enumerate(pairs):
        first_is_y = pvalues[i] <= pvalues[n_pairs + i]
        y_sym, x_sym = (a, b) if first_is_y else (b, a)
        pvalue = float(min(pvalues[i], pvalues[n_pairs + i]))
        stat = stats[i] if first_is_y else stats[n_pairs + i]
        if np.isneginf(stat) or not pvalue < pvalue_max:
            continue
        rows.append((f"{y_sym}-{x_sym}", y_sym, x_sym, pvalue))
    rows.sort(key=lambda r: (r[3], r[0]))
    selected = []
    for pair_id, y_sym, x_sym, pvalue in rows[:top_n]:
        y_log, x_log = logs[:, column[y_sym]], logs[:, column[x_sym]]
        beta, intercept = hedge_ratio(y_log, x_log)
        spread = y_log - beta * x_log - intercept
        selected.append(
            (pair_id, y_sym, x_sym, pvalue, beta, intercept, float(spread.mean()), float(spread.std(ddof=0)))
        )
    frame = pd.DataFrame(selected, columns=columns)
    return frame.astype({c: float for c in columns[3:]})


def _trade_pair(
    z: np.ndarray, entry_z: float, exit_z: float, stop_z: float, period_open_at_end: bool
) -> list[tuple[int, int | None, int, str]]:
    """Round trips ``(entry, exit or None, side, reason)`` of one pair over one trading period.

    ``z`` holds the period's z-scores (NaN: no decision that session); positions are indices of
    ``z``. The last index is the period's last session.
    """
    trips = []
    last = z.size - 1
    side = 0
    entered = -1
    stopped = False
    for t, score in enumerate(z):
        if math.isnan(score):
            continue
        if side == -1 and (score <= exit_z or score > stop_z):
            reason = "exit" if score <= exit_z else "stop"
            trips.append((entered, t, side, reason))
            stopped = reason == "stop"
            side = 0
        elif side == 1 and (score >= -exit_z or score < -stop_z):
            reason = "exit" if score >= -exit_z else "stop"
            trips.append((entered, t, side, reason))
            stopped = reason == "stop"
            side = 0
        if side == 0 and not stopped and t < last and entry_z < abs(score) < stop_z:
            side = -1 if score > 0 else 1
            entered = t
    if side != 0:
        trips.append(
            (entered, None if period_open_at_end else last, side, "range_end" if period_open_at_end else "period_end")
        )
    return trips


def classical_baseline(
    closes: pd.DataFrame,
    sessions,
    *,
    formation: int = 252,
    trading: int = 126,
    step: int = 126,
    top_n: int = 5,
    pvalue_max: float = 0.05,
    entry_z: float = 2.0,
    exit_z: float = 0.0,
    stop_z: float = 4.0,
    strategy: str = "baseline",
    sector: str = "",
    anchor: int | None = None,
) -> pd.DataFrame:
    """Trades of the classical Engle-Granger pairs baseline over an evaluation range.

    Parameters
    ----------
    closes : DataFrame
        Sessions (sorted, unique DatetimeIndex) × symbols, closing prices; must include every
        session of ``sessions`` and at least ``formation`` sessions before the first one.
    sessions : DatetimeIndex or list-like of dates
        The evaluation range (sorted, non-empty).
    formation, trading, step : int
        Formation window, trading period and the step between trading periods, in sessions
        (defaults 252, 126, 126).
    top_n : int
        Pairs traded per period (lowest p-values), each with ``1/top_n`` of capital.
    pvalue_max : float
        Engle-Granger p-value must be below this (0 < pvalue_max ≤ 1).
    entry_z, exit_z, stop_z : float
        Bands, ``0 ≤ exit_z < entry_z < stop_z`` (defaults 2, 0, 4).
    strategy, sector : str
        Written into the trades' ``strategy`` and ``sector`` columns.
    anchor : int, optional
        Exchange-session number of ``closes.index[0]`` from a fixed epoch: periods anchored to the
        calendar (:func:`baseline_periods`); None: the first period starts at the range start.

    Returns
    -------
    DataFrame
        The trades (:data:`~pairs_assets.quant.walkforward.execution.TRADE_COLUMNS`), sorted by
        entry_session, pair_id; see the module docstring for the rules and sizing.

    Raises
    ------
    InsufficientHistoryError
        Fewer than ``formation`` sessions of closes before the range.
    ValueError
        Bad settings (naming the field) or a range session missing from ``closes``.

    References
    ----------
    Gatev, Goetzmann & Rouwenhorst (2006); Engle & Granger (1987).
    """
    if not isinstance(closes, pd.DataFrame) or not isinstance(closes.index, pd.DatetimeIndex):
        raise TypeError("closes must be a pandas DataFrame indexed by session (DatetimeIndex)")
    if not closes.index.is_monotonic_increasing or closes.index.has_duplicates:
        raise ValueError("closes.index must be sorted ascending without duplicated sessions")
    formation = _positive_int(formation, "formation", _MIN_FORMATION)
    trading = _positive_int(trading, "trading")
    step = _positive_int(step, "step")
    top_n = _positive_int(top_n, "top_n")
    if not 0.0 < pvalue_max <= 1.0:
        raise ValueError(f"pvalue_max must be in (0, 1], got {pvalue_max}")
    if not 0.0 <= exit_z < entry_z < stop_z:
        raise ValueError(
            f"bands must satisfy 0 <= exit_z < entry_z < stop_z, got exit_z={exit_z}, entry_z={entry_z}, stop_z={stop_z}"
        )
    index = pd.DatetimeIndex(sessions)
    if index.empty:
        raise ValueError("sessions must not be empty")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("sessions must be sorted ascending without duplicates")

    periods = baseline_periods(closes.index, index, formation, trading, step, anchor)
    range_positions = closes.index.get_indexer(index)
    rows = []
    for period in periods:
        pairs = select_baseline_pairs(
            closes.iloc[period.formation_start : period.formation_end], top_n=top_n, pvalue_max=pvalue_max
        )
        if pairs.empty:
            continue
        trading_rows = range_positions[period.trading_start : period.trading_end]
        trading_sessions = index[period.trading_start : period.trading_end]
        if trading_rows.size == 0:
            continue
        # the range ends before the period's last session: leave what is open at the range end
        cut_short = period.trading_end == len(index) and int(trading_rows[-1]) < period.formation_end + trading - 1
        for pair in pairs.itertuples(index=False):
            with np.errstate(divide="ignore", invalid="ignore"):
                y_log = np.log(closes[pair.y].to_numpy(dtype=float)[trading_rows])
                x_log = np.log(closes[pair.x].to_numpy(dtype=float)[trading_rows])
            spread = y_log - pair.hedge_ratio * x_log - pair.intercept
            if not pair.spread_std > 0.0:
                continue
            z = (spread - pair.spread_mean) / pair.spread_std
            z[~np.isfinite(z)] = np.nan
            scale = (1.0 + abs(pair.hedge_ratio)) * top_n
            for entered, exited, side, reason in _trade_pair(z, entry_z, exit_z, stop_z, cut_short):
                rows.append(
                    (
                        strategy,
                        sector,
                        pair.pair_id,
                        pair.y,
                        pair.x,
                        side,
                        side / scale,
                        -side * pair.hedge_ratio / scale,
                        trading_sessions[entered],
                        pd.NaT if exited is None else trading_sessions[exited],
                        float(z[entered]),
                        math.nan if exited is None else float(z[exited]),
                        reason,
                    )
                )
    if not rows:
        return empty_trades()
    trades = pd.DataFrame(rows, columns=TRADE_COLUMNS).astype(empty_trades().dtypes.to_dict())
    return trades.sort_values(["entry_session", "pair_id"], kind="mergesort").reset_index(drop=True)
