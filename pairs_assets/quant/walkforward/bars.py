"""The walk-forward on intraday bars: a decision on every bar, P&L aggregated to sessions.

When the bar source has several bars a session (a user's 5-minute or hourly file, Alpaca
historical bars), the live path decides on every bar (the signal sensor launches a run per new
bar). The walk-forward then trades the same bars:

* the configs are the daily graph's, built per session from the daily closes as for daily bars
  (:func:`~pairs_assets.quant.walkforward.replay.build_configs`);
* every bar of the range's sessions is a decision
  (:func:`~pairs_assets.quant.walkforward.replay.trade_configs` with ``bar_sessions``): each symbol
  at its latest price up to the bar, the config effective in the bar's session, ``max_holding`` in
  sessions;
* execution on the bar index (:func:`~pairs_assets.quant.walkforward.execution.execute`): lag 1 =
  the next bar, costs as for daily bars;
* the per-bar P&L, costs and turnover are summed per session, the exposure and position count are
  the session's last bar's (held over the close), so the daily series — and every Sharpe, interval
  and deflated Sharpe computed from it — keeps its daily meaning. A trade's ``holding`` counts
  sessions (exit session − entry session), its ``entry_exec``/``exit_exec`` are bar times.

The panel (:class:`BarPanel`) is built from stored bars by :func:`bar_panel`; bar times are naive
UTC (the trades frame's dtype), sessions naive exchange dates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from pairs_assets.quant.walkforward.execution import execute

__all__ = ["BarPanel", "bar_panel", "bars_of_range", "daily_from_bars", "execute_on_bars", "is_intraday"]


@dataclass(frozen=True)
class BarPanel:
    """A sector's intraday bars.

    Attributes
    ----------
    closes : pandas.DataFrame
        Bar times (naive UTC, sorted, unique) × symbols: each symbol's latest close up to the bar
        (forward-filled across symbols' bar times).
    sessions : pandas.DatetimeIndex
        Per row of ``closes``, its exchange session (naive date).
    """

    closes: pd.DataFrame
    sessions: pd.DatetimeIndex

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex) of the bar times, symbols and closes: the input fingerprint of a
        walk-forward on these bars (several bars a session carry no per-session row hashes)."""
        hashes = pd.util.hash_pandas_object(self.closes, index=True).to_numpy()
        digest = hashlib.sha256(hashes.tobytes())
        digest.update("|".join(map(str, self.closes.columns)).encode())
        return digest.hexdigest()[:16]

    def in_sessions(self, sessions: pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, list[pd.Timestamp]]:
        """The bar times whose session is one of ``sessions``, and each one's session."""
        keep = self.sessions.isin(sessions)
        return self.closes.index[keep], list(self.sessions[keep])


def is_intraday(bars: pd.DataFrame) -> bool:
    """Whether any symbol has more than one bar in a session (``bars`` with ``symbol`` and ``session``)."""
    return bool(len(bars)) and bool(bars.duplicated(["symbol", "session"]).any())


def bar_panel(bars: pd.DataFrame, symbols: Sequence[str]) -> BarPanel:
    """The panel of ``bars`` (columns ``symbol``, ``timestamp`` — tz-aware UTC —, ``close``,
    ``session``) for ``symbols``.

    Raises
    ------
    ValueError
        A symbol of ``symbols`` without a bar, or a bar time given two sessions.
    """
    absent = sorted(set(symbols) - set(bars["symbol"]))
    if absent:
        raise ValueError(f"intraday bars: no bar of {', '.join(absent)}")
    prices = bars.pivot_table(index="timestamp", columns="symbol", values="close", aggfunc="last").sort_index().ffill()
    day_of = bars.groupby("timestamp")["session"].agg(["first", "nunique"])
    if (day_of["nunique"] > 1).any():
        raise ValueError(f"intraday bars: bar time {day_of.index[day_of['nunique'] > 1][0]} falls in two sessions")
    sessions = pd.DatetimeIndex(day_of["first"].reindex(prices.index))
    index = pd.DatetimeIndex(prices.index)
    prices.index = index.tz_convert(None) if index.tz is not None else index
    prices.columns.name = None
    return BarPanel(closes=prices[list(symbols)], sessions=sessions)


def daily_from_bars(
    daily: pd.DataFrame, bar_sessions: Sequence[pd.Timestamp], sessions: pd.DatetimeIndex
) -> pd.DataFrame:
    """Per-bar execution frames summed to ``sessions``: P&L, costs, turnover summed; exposure and
    position count the session's last bar's (what is held over the close)."""
    keyed = daily.assign(_session=pd.DatetimeIndex(bar_sessions))
    grouped = keyed.groupby("_session", sort=True)
    out = grouped[["pnl", "gross_pnl", "cost", "turnover"]].sum()
    out[["gross_exposure", "n_positions"]] = grouped[["gross_exposure", "n_positions"]].last()
    out = out.reindex(sessions, fill_value=0)
    out.index.name = None
    return out.astype(daily.dtypes.to_dict())[list(daily.columns)]


def bars_of_range(
    bars: BarPanel, sessions: pd.DatetimeIndex, sector: str = ""
) -> tuple[pd.DatetimeIndex, list[pd.Timestamp]]:
    """The bar times of ``sessions`` and each one's session: the decisions of
    :func:`~pairs_assets.quant.walkforward.replay.trade_configs` (``bar_sessions``).

    Raises
    ------
    ValueError
        A session of ``sessions`` without a bar (naming the sector and the session).
    """
    times, bar_sessions = bars.in_sessions(sessions)
    missing = sessions.difference(pd.DatetimeIndex(bar_sessions).unique())
    if len(missing):
        raise ValueError(f"sector {sector}: no intraday bar in session {missing[0].date()} of the range")
    return times, bar_sessions


def execute_on_bars(
    trades: pd.DataFrame,
    bars: BarPanel,
    times: pd.DatetimeIndex,
    bar_sessions: Sequence[pd.Timestamp],
    sessions: pd.DatetimeIndex,
    costs: Sequence[float],
    *,
    lag: int,
) -> dict[float, tuple[pd.DataFrame, pd.DataFrame]]:
    """Execute bar-stamped ``trades`` on the bars ``times`` at each cost (lag 1 = the next bar).

    Returns
    -------
    dict of float to (daily, trades)
        Per cost: the daily frame on ``sessions`` (:func:`daily_from_bars`) and the executed trades
        (bar times, ``holding`` in sessions).
    """
    session_of = pd.Series(list(bar_sessions), index=times)
    number = pd.Series(range(len(sessions)), index=sessions)
    out = {}
    for cost in costs:
        result = execute(trades, bars.closes, times, lag=lag, cost_bp=cost)
        executed = result.trades
        if len(executed):
            first = number[session_of[pd.DatetimeIndex(executed["entry_exec"])].to_numpy()].to_numpy()
            last = number[session_of[pd.DatetimeIndex(executed["exit_exec"])].to_numpy()].to_numpy()
            executed = executed.assign(holding=(last - first).astype(executed["holding"].dtype))
        out[cost] = (daily_from_bars(result.daily, bar_sessions, sessions), executed)
    return out
