"""The paper book: the live path's fills marked at each session close — positions, P&L, costs, exposure.

Pure (no Dagster, no I/O): the ``paper_book`` asset reads the store's ``orders`` and ``bars`` and
calls :func:`mark_book`; its checks call :func:`position_limit_breaches`, :func:`book_daily_volatility`,
:func:`drawdown` and :func:`held_but_not_replayed`.

**Accounting** (per pair and leg, average cost, in the account's currency):

* a fill of signed ``q`` shares at ``p`` costs ``cost_rate(cost_bp) · |q| · p`` — the walk-forward's
  cost model (:func:`pairs_assets.quant.walkforward.execution.cost_rate`: ``cost_bp`` basis points
  of the traded notional per leg);
* a fill that reduces a position realises ``closed · (p − avg) · sign(position)`` on the
  ``closed = min(|q|, |position|)`` shares it closes; the rest (a reversal) opens at ``p``; a fill
  that adds to a position moves the average cost to the shares-weighted mean;
* at a session's close ``c`` the leg is marked: ``unrealised = shares · (c − avg)``, notional
  ``shares · c``; a fill belongs to the session of its bar (New York date) and is applied before
  that session's mark;
* ``net_pnl = realised + unrealised − cost`` (cumulative since the first fill), ``pnl`` its change
  over the session; gross exposure ``Σ |shares · c|``, net exposure ``Σ shares · c``.

**Drawdown** is measured the way the walk-forward draws it (:func:`pairs_assets.reporting.equity_figure`):
cumulative P&L as a fraction of capital minus its running maximum floored at 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.quant.walkforward.execution import cost_rate

__all__ = [
    "DEFAULT_RISK_WINDOW",
    "FILL_COLUMNS",
    "account_entry_breaches",
    "symbol_limit_breaches",
    "PAIR_COLUMNS",
    "BookInputError",
    "BookMarks",
    "book_daily_volatility",
    "drawdown",
    "held_but_not_replayed",
    "mark_book",
    "position_limit_breaches",
    "replay_sides",
]

#: sessions of close changes behind the book's (and the signal job's account check's) ex-ante daily volatility
DEFAULT_RISK_WINDOW = 60

#: one row per fill: the session its bar belongs to, signed shares (buy > 0), the fill price
FILL_COLUMNS = ["bar_timestamp", "session", "sector", "pair_id", "leg", "symbol", "qty", "price"]
PAIR_COLUMNS = [
    "session",
    "sector",
    "pair_id",
    "shares_y",
    "shares_x",
    "realised",
    "unrealised",
    "cost",
    "net_pnl",
    "pnl",
    "gross_exposure",
    "net_exposure",
    "side",
    "opened",
]
LEG_COLUMNS = ["session", "sector", "pair_id", "leg", "symbol", "shares", "avg_price", "close", "notional"]
TOTAL_COLUMNS = ["realised", "unrealised", "cost", "net_pnl", "pnl", "gross_exposure", "net_exposure", "held_pairs"]


class BookInputError(PairsError, ValueError):
    """A fill or a close the book cannot use; the message names the pair, symbol or session."""


@dataclass
class _Leg:
    shares: float = 0.0
    avg: float = math.nan
    realised: float = 0.0
    cost: float = 0.0


@dataclass(frozen=True)
class BookMarks:
    """Output of :func:`mark_book`.

    Attributes
    ----------
    legs : DataFrame
        :data:`LEG_COLUMNS`, one row per (session, pair, leg) that has traded by that session.
    pairs : DataFrame
        :data:`PAIR_COLUMNS`, one row per (session, pair): shares per leg (signed), cumulative
        ``realised``/``cost``/``net_pnl``, ``unrealised`` at the close, the session's ``pnl``,
        exposures, ``side`` (sign of the y leg: +1 long the spread, −1 short, 0 flat) and
        ``opened`` (the session the open position was opened in; NaT when flat).
    sectors : DataFrame
        Indexed by (session, sector), :data:`TOTAL_COLUMNS` summed over the sector's pairs.
    total : DataFrame
        Indexed by session, :data:`TOTAL_COLUMNS` over the whole book.
    """

    legs: pd.DataFrame
    pairs: pd.DataFrame
    sectors: pd.DataFrame
    total: pd.DataFrame


def _check_fills(fills: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise BookInputError(f"fills lack column(s) {missing}")
    for row in fills.itertuples(index=False):
        if not (math.isfinite(row.qty) and row.qty != 0):
            raise BookInputError(
                f"pair {row.pair_id}: fill of {row.symbol} at {row.bar_timestamp} has qty {row.qty!r} (finite, non-zero)"
            )
        if not (math.isfinite(row.price) and row.price > 0):
            raise BookInputError(
                f"pair {row.pair_id}: fill of {row.symbol} at {row.bar_timestamp} has price {row.price!r} (finite, > 0)"
            )
        if row.leg not in ("y", "x"):
            raise BookInputError(f"pair {row.pair_id}: fill of {row.symbol} has leg {row.leg!r} (y or x)")
    return fills.sort_values(["bar_timestamp", "pair_id", "leg"], kind="mergesort")


def _apply(leg: _Leg, qty: float, price: float, rate: float) -> None:
    leg.cost += rate * abs(qty) * price
    if leg.shares == 0.0 or (leg.shares > 0) == (qty > 0):  # opens or adds
        total = leg.shares + qty
        leg.avg = price if leg.shares == 0.0 else (abs(leg.shares) * leg.avg + abs(qty) * price) / abs(total)
        leg.shares = total
        return
    closed = min(abs(qty), abs(leg.shares))
    leg.realised += closed * (price - leg.avg) * math.copysign(1.0, leg.shares)
    left = leg.shares + qty
    if abs(left) < 1e-9:
        leg.shares, leg.avg = 0.0, math.nan
    elif (left > 0) != (leg.shares > 0):  # crossed through zero: the rest opens at the fill
        leg.shares, leg.avg = left, price
    else:
        leg.shares = left  # reduced: the average cost of what is left is unchanged


def mark_book(fills: pd.DataFrame, closes: pd.DataFrame, sessions: Sequence, cost_bp: float) -> BookMarks:
    """Positions and P&L of ``fills`` marked at each close of ``sessions`` (see the module docstring).

    Parameters
    ----------
    fills : DataFrame
        :data:`FILL_COLUMNS`; ``session`` a tz-naive date, ``qty`` signed shares (buy > 0), ``price``
        the fill price. Fills of a session after the last of ``sessions`` are ignored; fills before
        the first are applied before its mark.
    closes : DataFrame
        Sessions × symbols, the session closes; every symbol held at a session's close needs a
        finite positive close that session.
    sessions : sequence of dates
        The marking sessions, in order.
    cost_bp : float
        Basis points of traded notional per leg (the walk-forward's cost model).

    Returns
    -------
    BookMarks

    Raises
    ------
    BookInputError
        A fill with a non-finite or zero qty, a non-positive price or an unknown leg; a held
        symbol without a usable close (naming symbol and session).
    """
    rate = cost_rate(cost_bp)
    index = pd.DatetimeIndex(pd.to_datetime(list(sessions))).normalize()
    fills = _check_fills(fills)
    fill_sessions = pd.DatetimeIndex(pd.to_datetime(fills["session"])).normalize()
    rows = list(fills.itertuples(index=False))
    legs: dict[tuple[str, str, str], _Leg] = {}
    symbols: dict[tuple[str, str, str], str] = {}
    opened: dict[tuple[str, str], pd.Timestamp] = {}
    leg_rows, pair_rows = [], []
    previous_net: dict[tuple[str, str], float] = {}
    cursor = 0
    for session in index:
        while cursor < len(rows) and fill_sessions[cursor] <= session:
            row = rows[cursor]
            key = (str(row.sector), str(row.pair_id), str(row.leg))
            if key in symbols and symbols[key] != row.symbol:
                raise BookInputError(f"pair {row.pair_id}: leg {row.leg} traded {symbols[key]} and then {row.symbol}")
            symbols[key] = str(row.symbol)
            leg = legs.setdefault(key, _Leg())
            pair = key[:2]
            was_flat = all(legs.get((*pair, name), _Leg()).shares == 0.0 for name in ("y", "x"))
            _apply(leg, float(row.qty), float(row.price), rate)
            if was_flat:
                opened[pair] = fill_sessions[cursor]
            cursor += 1
        by_pair: dict[tuple[str, str], dict[str, float]] = {}
        for key in sorted(legs):
            leg, symbol = legs[key], symbols[key]
            close = math.nan
            if leg.shares:
                close = (
                    float(closes.at[session, symbol])
                    if (session in closes.index and symbol in closes.columns)
                    else math.nan
                )
                if not (math.isfinite(close) and close > 0):
                    raise BookInputError(
                        f"pair {key[1]}: {symbol} is held ({leg.shares:g} shares) but has no usable close on {session.date()}"
                    )
            notional = leg.shares * close if leg.shares else 0.0
            unrealised = leg.shares * (close - leg.avg) if leg.shares else 0.0
            leg_rows.append((session, key[0], key[1], key[2], symbol, leg.shares, leg.avg, close, notional))
            agg = by_pair.setdefault(
                key[:2],
                {
                    "shares_y": 0.0,
                    "shares_x": 0.0,
                    "realised": 0.0,
                    "unrealised": 0.0,
                    "cost": 0.0,
                    "gross_exposure": 0.0,
                    "net_exposure": 0.0,
                },
            )
            agg[f"shares_{key[2]}"] = leg.shares
            agg["realised"] += leg.realised
            agg["unrealised"] += unrealised
            agg["cost"] += leg.cost
            agg["gross_exposure"] += abs(notional)
            agg["net_exposure"] += notional
        for pair, agg in by_pair.items():
            net = agg["realised"] + agg["unrealised"] - agg["cost"]
            side = (
                int(np.sign(agg["shares_y"]))
                if agg["shares_y"]
                else (int(-np.sign(agg["shares_x"])) if agg["shares_x"] else 0)
            )
            pair_rows.append(
                (
                    session,
                    pair[0],
                    pair[1],
                    agg["shares_y"],
                    agg["shares_x"],
                    agg["realised"],
                    agg["unrealised"],
                    agg["cost"],
                    net,
                    net - previous_net.get(pair, 0.0),
                    agg["gross_exposure"],
                    agg["net_exposure"],
                    side,
                    opened.get(pair) if side else pd.NaT,
                )
            )
            previous_net[pair] = net
    legs_frame = pd.DataFrame(leg_rows, columns=LEG_COLUMNS)
    pairs_frame = pd.DataFrame(pair_rows, columns=PAIR_COLUMNS)
    pairs_frame["session"] = pd.to_datetime(pairs_frame["session"])
    pairs_frame["opened"] = pd.to_datetime(pairs_frame["opened"])
    legs_frame["session"] = pd.to_datetime(legs_frame["session"])
    summed = pairs_frame.assign(held_pairs=(pairs_frame["side"] != 0).astype(int))
    sum_columns = [c for c in TOTAL_COLUMNS]
    sectors = (
        summed.groupby(["session", "sector"])[sum_columns].sum() if len(summed) else pd.DataFrame(columns=sum_columns)
    )
    total = (
        summed.groupby("session")[sum_columns].sum().reindex(index, fill_value=0.0)
        if len(summed)
        else (pd.DataFrame(0.0, index=index, columns=sum_columns))
    )
    total.index.name = "session"
    return BookMarks(legs=legs_frame, pairs=pairs_frame, sectors=sectors, total=total)


def drawdown(pnl_fraction: pd.Series) -> pd.Series:
    """Drawdown of a daily P&L series (fractions of capital): cumulative P&L minus its running maximum
    floored at 0 — :func:`pairs_assets.reporting.equity_figure`'s definition (≤ 0)."""
    equity = pnl_fraction.cumsum()
    return equity - equity.cummax().clip(lower=0.0)


def position_limit_breaches(legs: pd.DataFrame, equity: float, max_position: float) -> list[str]:
    """Legs of one session's marks (:attr:`BookMarks.legs` rows) whose |notional| exceeds
    ``max_position · equity``: one line each naming pair, symbol and fraction."""
    out = []
    for row in legs.itertuples(index=False):
        fraction = abs(row.notional) / equity
        if row.shares and fraction > max_position + 1e-12:
            out.append(
                f"{row.pair_id} {row.symbol} {row.shares:+g} shares = {fraction:.2%} of equity > {max_position:.0%}"
            )
    return out


def book_daily_volatility(shares: Mapping[str, float], closes: pd.DataFrame, window: int) -> float:
    """Ex-ante daily P&L volatility (currency) of holding ``shares`` (signed, per symbol):
    ``sqrt(qᵀ Σ q)`` with ``Σ`` the sample covariance of the symbols' daily close changes over the
    last ``window`` sessions of ``closes`` (which must end at the marking session).

    Raises
    ------
    BookInputError
        A held symbol absent from ``closes`` or with fewer than 2 usable changes in the window.
    """
    held = {s: float(q) for s, q in sorted(shares.items()) if q}
    if not held:
        return 0.0
    absent = [s for s in held if s not in closes.columns]
    if absent:
        raise BookInputError(f"no closes of held symbol(s) {absent} to measure the book's risk")
    changes = closes[list(held)].iloc[-(window + 1) :].diff().iloc[1:].dropna()
    if len(changes) < 2:
        raise BookInputError(f"only {len(changes)} session change(s) of {list(held)} in the risk window of {window}")
    q = np.array(list(held.values()))
    cov = np.atleast_2d(np.cov(changes.to_numpy(dtype=float), rowvar=False, ddof=1))
    return float(math.sqrt(max(q @ cov @ q, 0.0)))


def held_but_not_replayed(
    held: Mapping[str, tuple[int, pd.Timestamp]], replayed: Mapping[str, int], session
) -> list[str]:
    """Pairs the book holds at ``session``'s close that the walk-forward's replay of the same bars
    does not hold on the same side: one line each naming the pair and the session.

    ``held``: pair_id → (side, opened session); ``replayed``: pair_id → the replay's side at that close
    (absent: flat). Pairs are matched as unordered legs by the caller (one position per pair)."""
    day = pd.Timestamp(session).date()
    out = []
    for pair_id, (side, opened) in sorted(held.items()):
        theirs = int(replayed.get(pair_id, 0))
        if theirs != side:
            what = "flat" if theirs == 0 else f"side {theirs:+d}"
            out.append(
                f"{pair_id} on {day}: book side {side:+d} (opened {pd.Timestamp(opened).date()}), walk-forward {what}"
            )
    return out


def replay_sides(trades: pd.DataFrame, session) -> dict[str, int]:
    """The walk-forward trades frame's (:data:`~pairs_assets.quant.walkforward.execution.TRADE_COLUMNS`)
    side per pair held after ``session``'s close: entered at or before it and not exited at or before it."""
    day = pd.Timestamp(session)
    out: dict[str, int] = {}
    for row in trades.itertuples(index=False):
        entered = pd.Timestamp(row.entry_session) <= day
        open_after = pd.isna(row.exit_session) or pd.Timestamp(row.exit_session) > day
        if entered and open_after:
            out[str(row.pair_id)] = int(row.side)
    return out


def symbol_limit_breaches(legs: pd.DataFrame, equity: float, max_position: float) -> list[str]:
    """Symbols several strategies hold (``legs``: one session's marks with a ``strategy`` column) where
    a strategy's leg plus every OTHER strategy's position in the symbol exceeds ``max_position ·
    equity`` of notional: one line each naming the symbol, the holders and the fraction — the limit
    :func:`account_entry_breaches` applies before each entry. (One strategy's pairs sharing a leg are
    bounded leg by leg, :func:`position_limit_breaches`, as its walk-forward sizes them.)"""
    out = []
    held = legs[legs["shares"] != 0] if not legs.empty else legs
    for symbol, frame in held.groupby("symbol", sort=True) if not held.empty else ():
        if frame["strategy"].nunique() < 2:
            continue
        worst = 0.0
        for row in frame.itertuples(index=False):
            others = float(frame.loc[frame["strategy"] != row.strategy, "notional"].sum())
            worst = max(worst, abs(float(row.notional) + others) / equity)
        if worst > max_position + 1e-12:
            holders = ", ".join(f"{pid} {shares:+g}" for pid, shares in zip(frame["pair_id"], frame["shares"]))
            out.append(f"account {symbol} ({holders}): {worst:.2%} of equity > {max_position:.0%}")
    return out


def account_entry_breaches(
    account: Mapping[str, float],
    entry: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    *,
    max_position: float,
    max_portfolio_risk: float,
    closes: pd.DataFrame | None = None,
    window: int = DEFAULT_RISK_WINDOW,
    others: Mapping[str, float] | None = None,
) -> list[str]:
    """Why an entry would push the ONE account past its risk limits (empty: it may go out).

    ``account``: the signed shares per symbol the account holds apart from the entry — every
    strategy's and every sector's held positions; ``others``: the part of it held by the OTHER
    strategies (default: all of ``account``); ``entry``: the entry's signed target shares per symbol
    (its two legs), at ``prices``. Limits, the paper book's measures on the account:

    * a symbol where the entry's leg plus the other strategies' position grows past ``max_position ·
      equity`` of notional (half a share of slack: sizing rounds each leg to whole shares) — the
      entering strategy's own pairs sharing the leg are bounded leg by leg, as its walk-forward;
    * the whole account's ex-ante daily volatility (``closes``' last ``window`` session changes)
      growing past ``max_portfolio_risk · equity`` (skipped without ``closes``).

    A limit already exceeded before the entry only refuses an entry that adds to it; an entry that
    reduces a symbol's position or the volatility is never refused.

    Raises
    ------
    BookInputError
        A symbol without closes to measure the volatility (the caller refuses the entry, naming it).
    """
    others = account if others is None else others
    out = []
    for symbol in sorted(entry):
        before_qty = float(others.get(symbol, 0.0))
        qty = before_qty + float(entry[symbol])
        fraction = abs(qty) * float(prices[symbol]) / equity
        # whole shares: a leg sized at max_position rounds up by at most half a share
        rounded_down = max(abs(qty) - 0.5, 0.0) * float(prices[symbol]) / equity
        if abs(qty) > abs(before_qty) + 1e-9 and rounded_down > max_position + 1e-12:
            out.append(
                f"{symbol}: other strategies {before_qty:+g} + entry {float(entry[symbol]):+g} shares = "
                f"{fraction:.2%} of equity > max_position {max_position:.0%}"
            )
    if closes is not None:
        after = {s: float(q) for s, q in account.items()}
        for symbol, qty in entry.items():
            after[symbol] = after.get(symbol, 0.0) + float(qty)
        vol_after = book_daily_volatility(after, closes, window)
        if vol_after > max_portfolio_risk * equity + 1e-9:
            vol_before = book_daily_volatility(account, closes, window)
            if vol_after > vol_before + 1e-9:
                out.append(
                    f"account ex-ante daily volatility {vol_before / equity:.2%} -> {vol_after / equity:.2%} of equity "
                    f"> max_portfolio_risk {max_portfolio_risk:.0%}"
                )
    return out
