"""Point-in-time z-score backtest of a pair over its most recent sessions.

Formation: the ``formation_window`` sessions immediately before the last ``test_window`` sessions
give the hedge ratio and intercept (OLS y on [1, x]) and the spread's mean and standard deviation.
Test: over the last ``test_window`` sessions the spread ``s = y − intercept − β·x`` is standardised
with those frozen numbers, ``z = (s − mean) / std``, and traded at each close by the one trading
rule (:mod:`pairs_assets.quant.rule`, unit sized, no GRU gate): enter when ``entry_z ≤ |z| < stop_z``
(short the spread when z > 0); a short exits at ``z ≤ exit_z`` and stops at ``z ≥ stop_z`` (a long
symmetrically); after a stop no entry until ``|z| < entry_z``; an exit may be followed by an entry
on the same close; a position is closed after ``max_holding`` sessions.

A position decided at close t earns the spread move from t to t+1:
``pnl_t = pos_{t-1} · (Δy_t − β·Δx_t) / (1 + |β|)`` — log-return P&L of one unit of y against β
units of x, normalised by gross exposure. No bar after t influences pos_t (tests check this).
Reference: Gatev, Goetzmann & Rouwenhorst (2006), "Pairs trading", Review of Financial Studies 19.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pairs_assets.quant import rule
from pairs_assets.quant.cointegration import hedge_ratio
from pairs_assets.quant.prices import InsufficientHistoryError

__all__ = ["BacktestResult", "backtest_pnl", "recent_backtest"]


@dataclass(frozen=True)
class BacktestResult:
    """Summary of a backtest over the test window.

    Attributes
    ----------
    total_return : float
        Sum of the daily log-return P&L.
    sharpe : float
        mean / std(ddof=1) of the daily P&L × sqrt(periods_per_year); 0.0 when the P&L has no
        variance (e.g. no trades).
    n_trades : int
        Positions opened.
    hit_rate : float
        Fraction of trades (an open one marked at the end) with positive P&L; NaN when no trade was
        held over a session.
    max_drawdown : float
        Largest peak-to-trough fall of the cumulative P&L (≥ 0).
    n_obs : int
        Sessions in the test window.
    """

    total_return: float
    sharpe: float
    n_trades: int
    hit_rate: float
    max_drawdown: float
    n_obs: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict."""
        return asdict(self)


def _validate_bands(entry_z: float, exit_z: float, stop_z: float) -> None:
    if not 0.0 <= exit_z < entry_z:
        raise ValueError(f"exit_z must satisfy 0 <= exit_z < entry_z, got exit_z={exit_z}, entry_z={entry_z}")
    if not stop_z > entry_z:
        raise ValueError(f"stop_z must be greater than entry_z, got stop_z={stop_z}, entry_z={entry_z}")


def _as_log_prices(values, field: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{field} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{field} contains NaN or infinite values")
    return array


def backtest_pnl(
    y_log,
    x_log,
    test_window: int,
    formation_window: int,
    entry_z: float,
    exit_z: float,
    stop_z: float,
    lag: int = 0,
    cost_bp: float = 0.0,
    max_holding: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Daily P&L and positions of the z-score strategy over the last ``test_window`` sessions.

    Parameters
    ----------
    y_log, x_log, test_window, formation_window, entry_z, exit_z, stop_z, lag, cost_bp, max_holding
        As in :func:`recent_backtest`.

    Returns
    -------
    pnl : ndarray
        Length ``test_window``; ``pnl[i]`` is earned over the session ending at test bar i by the
        position decided at the previous close (0 for the first test bar: nothing is held at the
        formation's end).
    positions : ndarray
        Length ``test_window``.
    """
    y_arr = _as_log_prices(y_log, "y_log")
    x_arr = _as_log_prices(x_log, "x_log")
    if y_arr.size != x_arr.size:
        raise ValueError(f"y_log and x_log must have the same length, got {y_arr.size} and {x_arr.size}")
    for field, value in (("test_window", test_window), ("formation_window", formation_window)):
        if value < 2:
            raise ValueError(f"{field} must be at least 2, got {value}")
    needed = test_window + formation_window
    if y_arr.size < needed:
        raise InsufficientHistoryError(
            f"backtest needs test_window + formation_window = {needed} sessions, got {y_arr.size}"
        )
    _validate_bands(entry_z, exit_z, stop_z)
    end = y_arr.size
    start_test = end - test_window
    formation = slice(start_test - formation_window, start_test)
    beta, intercept = hedge_ratio(y_arr[formation], x_arr[formation])
    formation_spread = y_arr[formation] - intercept - beta * x_arr[formation]
    mean = float(formation_spread.mean())
    std = float(formation_spread.std(ddof=1))
    if std == 0.0:
        raise ValueError("backtest: the formation-window spread is constant (std 0)")
    test_spread = y_arr[start_test:] - intercept - beta * x_arr[start_test:]
    positions = np.asarray(
        rule.positions((test_spread - mean) / std, rule.Bands(entry_z, exit_z, stop_z), max_holding=max_holding),
        dtype=np.int64,
    )
    # spread returns of test bars, starting with the move from the last formation close
    spread_moves = (np.diff(y_arr[start_test - 1 :]) - beta * np.diff(x_arr[start_test - 1 :])) / (1.0 + abs(beta))
    if lag not in (0, 1):
        raise ValueError(f"lag must be 0 or 1, got {lag!r}")
    if not (math.isfinite(cost_bp) and cost_bp >= 0.0):
        raise ValueError(f"cost_bp must be a finite number >= 0, got {cost_bp!r}")
    # a position decided at close t is traded at close t+lag and earns from there
    held = np.concatenate([np.zeros(1 + lag, dtype=positions.dtype), positions[: positions.size - 1 - lag]])
    traded = np.abs(np.diff(np.concatenate([[0], held, [0]])))[:-1]  # unit gross notional traded at each close
    # costs are charged on the close where the trade executes (a position's entry and exit), bp of notional
    executed = np.concatenate([traded[1:], [0.0]]) if traded.size else traded
    return held * spread_moves - cost_bp / 1e4 * executed, positions


def recent_backtest(
    y_log,
    x_log,
    test_window: int,
    formation_window: int,
    entry_z: float,
    exit_z: float,
    stop_z: float,
    periods_per_year: int = 252,
    lag: int = 0,
    cost_bp: float = 0.0,
    max_holding: int = 0,
) -> BacktestResult:
    """Backtest the pair's z-score rule over its last ``test_window`` sessions, point in time.

    Parameters
    ----------
    y_log, x_log : array_like
        Equal-length 1-D log prices ending at the as-of session (the dependent y first).
    test_window : int
        Sessions traded.
    formation_window : int
        Sessions just before them, used to estimate the hedge ratio, intercept, spread mean and std.
    entry_z, exit_z, stop_z : float
        The bands, ``0 <= exit < entry < stop``.
    periods_per_year : int, default 252
        Annualisation of the Sharpe ratio.
    lag : int, default 0
        A position decided at close t trades at close t+lag (0 or 1).
    cost_bp : float, default 0.0
        Basis points of the unit gross notional traded, charged at each entry and exit.
    max_holding : int, default 0
        Sessions after which a position is closed (0 = no limit), as in :func:`pairs_assets.quant.rule.step`.

    Returns
    -------
    BacktestResult

    Raises
    ------
    InsufficientHistoryError
        Fewer than ``test_window + formation_window`` sessions.
    ValueError
        NaN/inf input or inconsistent bands (the message names the field).

    References
    ----------
    Gatev, Goetzmann & Rouwenhorst (2006); Sharpe (1966).
    """
    pnl, positions = backtest_pnl(
        y_log, x_log, test_window, formation_window, entry_z, exit_z, stop_z, lag, cost_bp, max_holding
    )
    held = np.concatenate([np.zeros(1 + lag, dtype=positions.dtype), positions[: positions.size - 1 - lag]])
    opened = (positions != 0) & (positions != np.concatenate([[0], positions[:-1]]))
    n_trades = int(opened.sum())
    if n_trades:
        # trade k collects the P&L of every bar that its position is held over
        trade_of_bar = np.cumsum(opened)
        trade_of_held = np.concatenate(
            [np.zeros(1 + lag, dtype=trade_of_bar.dtype), trade_of_bar[: trade_of_bar.size - 1 - lag]]
        )
        trade_ids = trade_of_held[held != 0]
        trade_pnl = np.bincount(trade_ids, weights=pnl[held != 0], minlength=n_trades + 1)[1:]
        bars_held = np.bincount(trade_ids, minlength=n_trades + 1)[1:]
        # a trade opened on the last close has no P&L yet and is not scored
        hit_rate = float(np.mean(trade_pnl[bars_held > 0] > 0.0)) if (bars_held > 0).any() else math.nan
    else:
        hit_rate = math.nan
    std = float(pnl.std(ddof=1))
    sharpe = float(pnl.mean() / std * math.sqrt(periods_per_year)) if std > 0.0 else 0.0
    cumulative = np.concatenate([[0.0], np.cumsum(pnl)])
    max_drawdown = float(np.max(np.maximum.accumulate(cumulative) - cumulative))
    return BacktestResult(
        total_return=float(pnl.sum()),
        sharpe=sharpe,
        n_trades=n_trades,
        hit_rate=hit_rate,
        max_drawdown=max_drawdown,
        n_obs=int(test_window),
    )
