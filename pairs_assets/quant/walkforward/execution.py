"""Execute a trades frame at the close, with an execution lag and per-leg costs.

The trade representation shared by every strategy (:data:`TRADE_COLUMNS`): one row per round trip
of a pair, ``side`` +1 long the spread (long y, short x·sign(β)) or −1 short it; ``w_y``/``w_x`` the
signed fractions of capital put in each leg at entry; ``entry_session``/``exit_session`` the closes
at which the entry and exit are *decided* (``exit_session`` NaT: still open at the range end);
``z_entry``/``z_exit`` the z-scores behind the decisions; ``exit_reason`` one of
:data:`EXIT_REASONS`.

Execution model (capital fixed at 1, no compounding):

* a decision at the close of session t executes at the close of session t+lag, the lag-th next
  session of the evaluation range (``lag`` 0 or 1);
* at entry the legs are bought/sold at that close for the notionals ``w_y``, ``w_x`` and held as a
  constant number of shares (``w / P_e``; buy and hold, no rebalancing) until the exit executes at
  the close of exit_session+lag; an exit that would execute after the last session of the range, or
  a NaT exit, is closed at the last session's close (reason kept, or ``"range_end"`` for NaT); a
  trade whose entry would execute after the last session is dropped;
* a leg held over session s (execution close e < s ≤ exit close) earns ``w·(P_s − P_{s−1})/P_e``;
* costs are ``cost_bp/1e4`` of the traded notional per leg, charged on the execution session: at
  entry ``|w_y| + |w_x|``, at exit the current notional ``|w·P_exit/P_e|`` of each leg (also when a
  trade is closed at the range end).

A position counts as *held at the close* of the sessions e ≤ s < exit close (after that close's
trades), which is what ``gross_exposure`` and ``n_positions`` report; a trade's ``holding`` is the
number of sessions whose P&L it earns (exit close − entry close, in sessions).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DAILY_COLUMNS",
    "EXECUTED_COLUMNS",
    "EXIT_REASONS",
    "TRADE_COLUMNS",
    "ExecutionResult",
    "empty_trades",
    "execute",
    "cost_rate",
    "validate_cost_bp",
    "validate_lag",
]

TRADE_COLUMNS = [
    "strategy",
    "sector",
    "pair_id",
    "y",
    "x",
    "side",
    "w_y",
    "w_x",
    "entry_session",
    "exit_session",
    "z_entry",
    "z_exit",
    "exit_reason",
]
EXIT_REASONS = ("exit", "stop", "period_end", "config_drop", "max_holding", "range_end")
EXECUTED_COLUMNS = TRADE_COLUMNS + ["entry_exec", "exit_exec", "holding", "gross_pnl", "cost", "pnl"]
DAILY_COLUMNS = ["pnl", "gross_pnl", "cost", "turnover", "gross_exposure", "n_positions"]

_TRADE_DTYPES = {
    "strategy": object,
    "sector": object,
    "pair_id": object,
    "y": object,
    "x": object,
    "side": "int64",
    "w_y": "float64",
    "w_x": "float64",
    "entry_session": "datetime64[ns]",
    "exit_session": "datetime64[ns]",
    "z_entry": "float64",
    "z_exit": "float64",
    "exit_reason": object,
    "entry_exec": "datetime64[ns]",
    "exit_exec": "datetime64[ns]",
    "holding": "int64",
    "gross_pnl": "float64",
    "cost": "float64",
    "pnl": "float64",
}


@dataclass(frozen=True)
class ExecutionResult:
    """Output of :func:`execute`.

    Attributes
    ----------
    daily : pandas.DataFrame
        Indexed by the evaluation sessions, columns :data:`DAILY_COLUMNS`: ``pnl`` (net of costs),
        ``gross_pnl``, ``cost``, ``turnover`` (notional traded that session), ``gross_exposure``
        (sum of |notional| held at the close) and ``n_positions`` (trades held at the close).
    trades : pandas.DataFrame
        The executed trades, columns :data:`EXECUTED_COLUMNS`: the input columns plus
        ``entry_exec``/``exit_exec`` (execution sessions), ``holding`` (sessions held),
        ``gross_pnl``, ``cost`` and ``pnl`` (net); trades whose entry would execute after the range
        are absent.
    """

    daily: pd.DataFrame
    trades: pd.DataFrame


def empty_trades(executed: bool = False) -> pd.DataFrame:
    """An empty trades frame with the shared columns and dtypes.

    Parameters
    ----------
    executed : bool, default False
        Add the columns :func:`execute` adds (:data:`EXECUTED_COLUMNS`).

    Returns
    -------
    pandas.DataFrame
        Zero rows.
    """
    columns = EXECUTED_COLUMNS if executed else TRADE_COLUMNS
    return pd.DataFrame({column: pd.Series(dtype=_TRADE_DTYPES[column]) for column in columns})


def validate_cost_bp(cost_bp) -> float:
    """``cost_bp`` as a float.

    Parameters
    ----------
    cost_bp : float
        Basis points per leg.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Naming the field, unless it is a finite number ≥ 0.
    """
    if isinstance(cost_bp, bool) or not isinstance(cost_bp, numbers.Real):
        raise ValueError(
            f"cost_bp must be a finite number >= 0 (basis points), got {cost_bp!r} ({type(cost_bp).__name__})"
        )
    value = float(cost_bp)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"cost_bp must be a finite number >= 0 (basis points), got {cost_bp!r}")
    return value


def cost_rate(cost_bp) -> float:
    """The fraction of traded notional charged per leg at ``cost_bp`` basis points (validated).

    The one cost model: :func:`execute` charges ``cost_rate(cost_bp) · notional`` per leg at entry and
    exit, and the paper book (:mod:`pairs_assets.quant.paper_book`) charges it on every fill.
    """
    return validate_cost_bp(cost_bp) / 1e4


def validate_lag(lag) -> int:
    """``lag`` as an int.

    Parameters
    ----------
    lag : int
        1, or 0 (the same close, for comparison only).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Anything but 0 or 1.
    """
    if isinstance(lag, bool) or not isinstance(lag, numbers.Integral) or int(lag) not in (0, 1):
        raise ValueError(f"lag must be 0 (execute at the decision close) or 1 (the next session's close), got {lag!r}")
    return int(lag)


def _as_sessions(sessions) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(sessions)
    if index.empty:
        raise ValueError("sessions must not be empty")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("sessions must be sorted ascending without duplicates")
    return index


def _check_trades(trades: pd.DataFrame, closes: pd.DataFrame) -> None:
    if not isinstance(trades, pd.DataFrame):
        raise TypeError(f"trades must be a pandas DataFrame, got {type(trades).__name__}")
    missing = [column for column in TRADE_COLUMNS if column not in trades.columns]
    if missing:
        raise ValueError(f"trades is missing column(s): {missing}")
    if not isinstance(closes, pd.DataFrame) or not isinstance(closes.index, pd.DatetimeIndex):
        raise TypeError("closes must be a pandas DataFrame indexed by session (DatetimeIndex)")
    if closes.columns.has_duplicates:
        raise ValueError("closes has duplicated symbols")


def _describe(trades: pd.DataFrame, row: int) -> str:
    return f"trades row {row} ({trades['pair_id'].iloc[row]}, entry {trades['entry_session'].iloc[row]})"


def execute(
    trades: pd.DataFrame, closes: pd.DataFrame, sessions, lag: int = 1, cost_bp: float = 0.0
) -> ExecutionResult:
    """Trade a trades frame at the close: daily P&L, costs, exposure, and per-trade P&L.

    Parameters
    ----------
    trades : DataFrame
        One row per round trip with :data:`TRADE_COLUMNS` (see the module docstring); extra
        columns are kept. ``entry_session`` and a non-NaT ``exit_session`` must be sessions of
        ``sessions`` with exit ≥ entry; ``side`` ±1 with ``sign(w_y) == side``.
    closes : DataFrame
        Sessions × symbols closing prices; must contain every session of ``sessions`` (earlier
        history is allowed and ignored) and be finite and positive for each traded leg over the
        sessions it is held.
    sessions : DatetimeIndex or list-like of dates
        The evaluation range, sorted; it is the calendar of the execution lag.
    lag : int
        0 or 1: sessions between the decision close and the execution close.
    cost_bp : float
        Cost in basis points of the notional traded per leg (finite, ≥ 0).

    Returns
    -------
    ExecutionResult
        ``daily`` (per session) and ``trades`` (per executed trade), see :class:`ExecutionResult`.
        Per trade, ``gross_pnl`` equals the sum of its legs' daily P&L and ``pnl = gross_pnl − cost``.

    Raises
    ------
    ValueError
        Bad ``lag``/``cost_bp``, missing columns or sessions, unknown symbols or exit reasons,
        inconsistent sides or dates, or a missing/non-positive price while a leg is held — each
        message names the field, trade, symbol or date.
    """
    lag = validate_lag(lag)
    rate = cost_rate(cost_bp)
    _check_trades(trades, closes)
    index = _as_sessions(sessions)
    absent = index.difference(closes.index)
    if len(absent):
        raise ValueError(f"closes lacks {len(absent)} session(s) of the range, first {absent[0].date().isoformat()}")
    n_sessions = len(index)

    pnl = np.zeros(n_sessions)
    turnover = np.zeros(n_sessions)
    cost = np.zeros(n_sessions)
    exposure = np.zeros(n_sessions)
    n_positions = np.zeros(n_sessions, dtype=np.int64)

    symbols = sorted(set(trades["y"]).union(trades["x"]), key=str)
    unknown = [symbol for symbol in symbols if symbol not in closes.columns]
    if unknown:
        raise ValueError(f"trades name symbol(s) absent from closes: {unknown}")
    prices = closes.loc[index, symbols].to_numpy(dtype=float)
    column_of = {symbol: i for i, symbol in enumerate(symbols)}
    entries = pd.DatetimeIndex(pd.to_datetime(trades["entry_session"]))
    exits = pd.DatetimeIndex(pd.to_datetime(trades["exit_session"]))
    entry_positions = index.get_indexer(entries)
    exit_positions = index.get_indexer(exits)
    sides = trades["side"].to_numpy()
    weights_y = trades["w_y"].to_numpy(dtype=float)
    weights_x = trades["w_x"].to_numpy(dtype=float)
    y_symbols = trades["y"].to_numpy()
    x_symbols = trades["x"].to_numpy()
    exit_reasons = trades["exit_reason"].to_numpy()

    kept_rows: list[int] = []
    extra: dict[str, list] = {name: [] for name in ("entry_exec", "exit_exec", "holding", "gross_pnl", "cost", "pnl")}
    reasons: list[str] = []

    for row in range(len(trades)):
        side, w_y, w_x, reason = sides[row], weights_y[row], weights_x[row], exit_reasons[row]
        if side not in (1, -1):
            raise ValueError(f"{_describe(trades, row)}: side must be +1 or -1, got {side!r}")
        if not (math.isfinite(w_y) and math.isfinite(w_x)):
            raise ValueError(f"{_describe(trades, row)}: w_y and w_x must be finite, got {w_y}, {w_x}")
        if w_y != 0.0 and np.sign(w_y) != side:
            raise ValueError(f"{_describe(trades, row)}: side {side} but w_y {w_y} (a long spread is long y)")
        if reason not in EXIT_REASONS:
            raise ValueError(f"{_describe(trades, row)}: exit_reason must be one of {EXIT_REASONS}, got {reason!r}")
        decided_entry = int(entry_positions[row])
        if decided_entry < 0:
            raise ValueError(f"{_describe(trades, row)}: entry_session is not a session of the range")
        entry_exec = decided_entry + lag
        if entry_exec >= n_sessions:
            continue  # the entry would execute after the range: never traded
        if pd.isna(exits[row]):
            exit_exec = n_sessions - 1
            reason = "range_end"
        else:
            decided_exit = int(exit_positions[row])
            if decided_exit < 0:
                raise ValueError(f"{_describe(trades, row)}: exit_session {exits[row]} is not a session of the range")
            if decided_exit < decided_entry:
                raise ValueError(f"{_describe(trades, row)}: exit_session {exits[row]} is before entry_session")
            exit_exec = min(decided_exit + lag, n_sessions - 1)

        trade_gross = 0.0
        exit_notional = 0.0
        for weight, symbol in ((w_y, y_symbols[row]), (w_x, x_symbols[row])):
            path = prices[entry_exec : exit_exec + 1, column_of[symbol]]
            bad = ~(np.isfinite(path) & (path > 0.0))
            if bad.any():
                when = index[entry_exec + int(np.argmax(bad))].date().isoformat()
                raise ValueError(
                    f"{_describe(trades, row)}: close of {symbol} on {when} is missing or not positive while the leg is held"
                )
            shares = weight / path[0]
            pnl[entry_exec + 1 : exit_exec + 1] += shares * np.diff(path)
            exposure[entry_exec:exit_exec] += np.abs(shares * path[:-1])
            trade_gross += shares * (path[-1] - path[0])
            exit_notional += abs(shares * path[-1])
        entry_notional = abs(w_y) + abs(w_x)
        turnover[entry_exec] += entry_notional
        turnover[exit_exec] += exit_notional
        cost[entry_exec] += rate * entry_notional
        cost[exit_exec] += rate * exit_notional
        n_positions[entry_exec:exit_exec] += 1
        trade_cost = rate * (entry_notional + exit_notional)

        kept_rows.append(row)
        reasons.append(reason)
        extra["entry_exec"].append(index[entry_exec])
        extra["exit_exec"].append(index[exit_exec])
        extra["holding"].append(exit_exec - entry_exec)
        extra["gross_pnl"].append(trade_gross)
        extra["cost"].append(trade_cost)
        extra["pnl"].append(trade_gross - trade_cost)

    daily = pd.DataFrame(
        {
            "pnl": pnl - cost,
            "gross_pnl": pnl,
            "cost": cost,
            "turnover": turnover,
            "gross_exposure": exposure,
            "n_positions": n_positions,
        },
        index=index,
    )
    if kept_rows:
        executed = trades.iloc[kept_rows].reset_index(drop=True).copy()
        executed["exit_reason"] = reasons
        for name, values in extra.items():
            executed[name] = values
        executed = executed.astype({name: _TRADE_DTYPES[name] for name in extra})
    else:
        executed = empty_trades(executed=True)
        for column in trades.columns:
            if column not in executed.columns:
                executed[column] = pd.Series(dtype=trades[column].dtype)
    return ExecutionResult(daily=daily, trades=executed)
