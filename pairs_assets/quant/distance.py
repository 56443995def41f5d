"""The distance method of Gatev, Goetzmann & Rouwenhorst (2006), as trading configs for the one rule.

GGR's rule, in the log-price form used here:

* **formation**: the ``formation`` sessions (252 by default, GGR's twelve months) just before a
  trading period. Each symbol with a finite, positive close on every session of the window is
  normalised at the window's **first** session, as GGR normalise their cumulative-return indices
  to one at the start of the formation period: ``n_t = ln(P_t / P_0)``. GGR use cumulative total
  return indices ``P_t/P_0``; ``ln(P_t/P_0)`` is their first-order equivalent (equal up to second
  order in the return since the normalisation), so the spread below is GGR's difference of
  normalised prices in log units. The prices are the bar source's closes (whatever adjustment the
  source applies; GGR's indices reinvest dividends).
* **selection**: for every unordered pair of usable symbols (``y`` the alphabetically first, ``x``
  the second) the sum of squared deviations ``SSD = Σ_t (n^y_t − n^x_t)²`` over the window; the
  ``top_n`` pairs with the smallest SSD are traded (ties by pair id ``y-x``). A pair whose
  normalised spread has a zero (or implausibly small) standard deviation over the window — two
  series identical up to scale — is skipped: its z-score is undefined.
* **σ**: the historical standard deviation (population, ddof 0, as the classical baseline) of the
  formation window's normalised spread ``s_t = n^y_t − n^x_t``.
* **trading**: the ``trading`` sessions (126, GGR's six months) after the window. The pair is
  opened when the normalised prices diverge by ``entry_sigma`` (2) historical σ and closed when they
  cross; a position still open at the period's last session is closed at its close.

Expressed as a :class:`~pairs_assets.quant.config_model.TradingConfig` that the one trading rule
(:mod:`pairs_assets.quant.rule`, applied by
:func:`~pairs_assets.quant.walkforward.replay.trade_configs` and by the live signal job) trades —
never a loop of its own. The rule's spread is ``ln y − β·ln x − intercept`` and ``z = (s −
spread_mean)/spread_std`` (no GARCH block: :func:`pairs_assets.quant.signals.garch_zscore` is then
unscaled). With

* ``hedge_ratio`` β = 1 and ``intercept`` = ``ln(y0/x0)`` (y0, x0 the normalising closes, at the
  formation window's first session), the rule's spread is exactly ``n^y_t − n^x_t`` — continuing
  the formation's normalisation into the trading period (not re-normalised at its start);
* ``spread_mean`` = 0, so z crosses 0 exactly when the normalised prices cross;
* ``spread_std`` = the formation's σ, ``entry_z`` = ``entry_sigma``, ``exit_z`` = 0 (the rule exits
  a short at z ≤ 0 and a long at z ≥ 0: the cross, a jump across it included);
* ``stop_z`` = :data:`NO_STOP_Z` (10⁶): GGR have no stop loss; the config model needs
  ``exit_z < entry_z < stop_z`` with a finite stop, and a normalised log spread cannot move 10⁶
  formation σ (σ is at least :data:`~pairs_assets.quant.config_model.SPREAD_STD_MIN`, and a log
  spread of 1 already is a factor e between the legs), so the stop never binds in practice;
* sizing ``y_fraction`` = ``x_fraction`` = ``1/top_n``: one dollar long and one dollar short per
  dollar of a pair's capital, the sector's capital split evenly over ``top_n`` pairs (a period that
  finds fewer pairs leaves the rest in cash, as the baseline does);
* the config effective on a trading period's **last** session lists no pair: the rule (with
  ``on_drop="exit"``) closes every open position at that close (exit reason ``config_drop``) and
  opens none — GGR's close at the period's end; the next period's config brings its own pairs.
  ``max_holding`` is 0 (no limit): the period bounds the holding.

Periods (:func:`distance_periods`): a new formation every ``trading`` sessions, so trading periods
do not overlap. They are anchored to the exchange calendar like the baseline's
(:func:`pairs_assets.quant.walkforward.baseline.baseline_periods`): given the exchange-session
number of the calendar's first session counted from the formation epoch
(:data:`pairs_assets.quant.stages.FORMATION_EPOCH`), periods start at the sessions whose number is a
multiple of ``trading``, so a session belongs to the same period — and, traded from that period's
start, gets the same position — whatever range is run. GGR's overlapping portfolios (a new
six-month portfolio starting every month, six running at once) are not reproduced: the one rule
keeps one position per (unordered) pair, so six overlapping portfolios holding the same pair could
not hold it six times; non-overlapping periods keep the rule's invariant.

Decisions use the closes up to the decision session only: the formation window ends the session
before the period's first trading session, and each trading close's z uses that close.

Reference: Gatev, E., Goetzmann, W. N. & Rouwenhorst, K. G. (2006), "Pairs trading: performance
of a relative-value arbitrage rule", Review of Financial Studies 19(3), 797–827.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.quant.config_model import SCHEMA_VERSION, SPREAD_STD_MIN, TradingConfig

__all__ = [
    "DISTANCE_COLUMNS",
    "NO_STOP_Z",
    "DistanceHistoryError",
    "DistancePeriod",
    "distance_periods",
    "distance_trading_config",
    "normalised_log_prices",
    "pair_distances",
    "select_distance_pairs",
]

#: the stop level of the configs: GGR have no stop, and no normalised log spread reaches 10⁶ σ
NO_STOP_Z = 1e6
#: the selected pairs' columns (:func:`select_distance_pairs`)
DISTANCE_COLUMNS = ["pair_id", "y", "x", "ssd", "sigma", "y0", "x0", "intercept", "rank"]


class DistanceHistoryError(InsufficientHistoryError):
    """Too few sessions of bars for a formation window; names the strategy, sector and window."""


class DistancePeriod(NamedTuple):
    """One formation/trading period, in positions of the closes calendar (ends exclusive).

    Attributes
    ----------
    formation_start : int
        The formation window's first session (the normalisation point).
    trading_start : int
        The period's first trading session (the formation window ends just before it).
    trading_end : int
        One past the period's last trading session (``trading_start + trading``).
    """

    formation_start: int
    trading_start: int
    trading_end: int


def distance_periods(
    calendar: pd.DatetimeIndex,
    first: int,
    last: int,
    formation: int,
    trading: int,
    anchor: int | None = None,
    *,
    strategy: str = "distance",
    sector: str = "",
) -> list[DistancePeriod]:
    """The periods whose trading sessions meet the calendar positions ``first`` … ``last``.

    Parameters
    ----------
    calendar : DatetimeIndex
        Every session of the closes (sorted).
    first, last : int
        Positions in ``calendar`` of the range's first and last session.
    formation, trading : int
        Window lengths in sessions; a new period every ``trading`` sessions.
    anchor : int, optional
        The exchange-session number of ``calendar[0]`` from a fixed epoch: periods start at the
        positions p with ``(p + anchor) % trading == 0`` — the period under way at ``first`` may
        start before it. None: the first period starts at ``first``.
    strategy, sector : str
        Named in the error.

    Returns
    -------
    list of DistancePeriod

    Raises
    ------
    DistanceHistoryError
        The first period's formation window starts before the calendar.
    """
    if not 0 <= first <= last < len(calendar):
        raise ValueError(f"strategy {strategy!r}, sector {sector}: range positions {first}..{last} outside the bars")
    if anchor is None:
        start = first
    else:
        start = first - trading + 1
        start += (-(start + int(anchor))) % trading
    if start < formation:
        first_bar = calendar[0].date().isoformat() if len(calendar) else "none"
        under_way = first - start
        raise DistanceHistoryError(
            f"strategy {strategy!r}, sector {sector}: the formation window of {formation} sessions before the trading "
            f"period starting {calendar[max(start, 0)].date().isoformat() if start >= 0 else 'before the bars'}"
            + (f" (under way {under_way} sessions before the range start)" if under_way > 0 else "")
            + f" needs {formation + under_way} sessions of bars before {calendar[first].date().isoformat()}, "
            f"got {first} (first bar {first_bar})"
        )
    return [DistancePeriod(s - formation, s, s + trading) for s in range(start, last + 1, trading)]


def _usable(window: pd.DataFrame) -> list[str]:
    values = window.to_numpy(dtype=float)
    ok = np.isfinite(values).all(axis=0) & (values > 0.0).all(axis=0)
    return sorted(str(s) for s, good in zip(window.columns, ok) if good)


def normalised_log_prices(window: pd.DataFrame) -> pd.DataFrame:
    """``ln(P_t / P_0)`` of every symbol with a finite, positive close on every session of ``window``
    (columns sorted; P_0 the window's first close).

    Parameters
    ----------
    window : DataFrame
        Formation sessions × symbols, closes.

    Returns
    -------
    DataFrame
    """
    symbols = _usable(window)
    logs = np.log(window[symbols].to_numpy(dtype=float)) if symbols else np.empty((len(window), 0))
    return pd.DataFrame(logs - logs[:1], index=window.index, columns=symbols)


def pair_distances(window: pd.DataFrame) -> pd.DataFrame:
    """SSD and σ of the normalised spread of every unordered pair of usable symbols.

    Parameters
    ----------
    window : DataFrame
        Formation sessions × symbols, closes (at least two sessions).

    Returns
    -------
    DataFrame
        :data:`DISTANCE_COLUMNS`, one row per pair (``y`` < ``x`` alphabetically), sorted by ``ssd``
        then ``pair_id``; ``rank`` 1 = the closest. ``sigma`` is the population standard deviation
        of ``n^y − n^x``; ``y0``/``x0`` the normalising closes; ``intercept`` = ``ln(y0/x0)``.
    """
    normalised = normalised_log_prices(window)
    symbols = list(normalised.columns)
    rows, cols = np.triu_indices(len(symbols), k=1)
    n = normalised.to_numpy()
    spread = n[:, rows] - n[:, cols]
    ssd = (spread**2).sum(axis=0)
    sigma = spread.std(axis=0, ddof=0) if len(window) else np.full(len(rows), math.nan)
    first = window[symbols].iloc[0].to_numpy(dtype=float) if symbols else np.empty(0)
    y = [symbols[i] for i in rows]
    x = [symbols[j] for j in cols]
    frame = pd.DataFrame(
        {
            "pair_id": [f"{a}-{b}" for a, b in zip(y, x)],
            "y": pd.Series(y, dtype=object),
            "x": pd.Series(x, dtype=object),
            "ssd": ssd.astype(float),
            "sigma": sigma.astype(float),
            "y0": first[rows].astype(float),
            "x0": first[cols].astype(float),
        }
    )
    frame["intercept"] = np.log(frame["y0"].to_numpy(dtype=float) / frame["x0"].to_numpy(dtype=float))
    frame = frame.sort_values(["ssd", "pair_id"], kind="mergesort").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame[DISTANCE_COLUMNS]


def select_distance_pairs(window: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """The ``top_n`` closest pairs of a formation window (:func:`pair_distances`), pairs whose
    spread σ is below :data:`~pairs_assets.quant.config_model.SPREAD_STD_MIN` left out.

    Parameters
    ----------
    window : DataFrame
        Formation sessions × symbols, closes.
    top_n : int
        At least 1.

    Returns
    -------
    DataFrame
        :data:`DISTANCE_COLUMNS`, at most ``top_n`` rows, ranks renumbered 1…
    """
    if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise ValueError(f"top_n must be an integer >= 1, got {top_n!r}")
    pairs = pair_distances(window)
    pairs = pairs[pairs["sigma"] >= SPREAD_STD_MIN].head(int(top_n)).reset_index(drop=True)
    pairs["rank"] = np.arange(1, len(pairs) + 1, dtype="int64")
    return pairs


def distance_trading_config(
    pairs: pd.DataFrame,
    *,
    as_of: str,
    effective_session: str,
    sector: str,
    top_n: int,
    entry_sigma: float,
    formation: int,
    formation_session: str | None = None,
    symbols: Sequence[str] = (),
    source: str = "",
    fingerprint: str = "distance",
) -> TradingConfig:
    """The trading config of the distance method for ``pairs`` (see the module docstring).

    Parameters
    ----------
    pairs : DataFrame
        :data:`DISTANCE_COLUMNS` (:func:`select_distance_pairs`); empty: a config with no pair (the
        period's last session, or a sector without a usable pair).
    as_of, effective_session : str
        ISO dates.
    sector : str
    top_n : int
        The capital split: each pair trades ``1/top_n`` of the sector's capital per leg.
    entry_sigma : float
        The entry level in formation σ (> 0).
    formation : int
        The formation window (recorded in ``windows.formation``).
    formation_session : str, optional
        The formation window's last session (None: the as-of session).
    symbols : sequence of str
        The sector's symbols.
    source, fingerprint : str
        Recorded in the config.

    Returns
    -------
    TradingConfig
    """
    if not math.isfinite(entry_sigma) or not 0.0 < entry_sigma < NO_STOP_Z:
        raise ValueError(f"entry_sigma must be in (0, {NO_STOP_Z:g}), got {entry_sigma!r}")
    fraction = 1.0 / int(top_n)
    entries = [
        {
            "pair_id": str(row.pair_id),
            "y": str(row.y),
            "x": str(row.x),
            "hedge_ratio": 1.0,
            "intercept": float(row.intercept),
            "spread_mean": 0.0,
            "spread_std": float(row.sigma),
            "half_life": None,
            "correlation": None,
            "eg_pvalue": None,
            "garch": dict.fromkeys(
                ["mu", "omega", "alpha", "beta", "persistence", "sigma_forecast", "unconditional_sigma"]
            ),
            "levels": {"entry_z": float(entry_sigma), "exit_z": 0.0, "stop_z": NO_STOP_Z},
            "sizing": {
                "y_fraction": fraction,
                "x_fraction": fraction,
                "gross_fraction": 2.0 * fraction,
                "pair_vol_target": None,
                "expected_daily_vol": None,
            },
            "scores": {
                "aic_score": None,
                "forecast_score": None,
                "backtest_score": None,
                "diagnostic_score": None,
                "composite": None,
                "rank": int(row.rank),
            },
            "model": None,
            "model_note": f"distance method: SSD {float(row.ssd):.6g} over the formation window, no model",
        }
        for row in pairs.itertuples(index=False)
    ]
    return TradingConfig.parse(
        {
            "schema_version": SCHEMA_VERSION,
            "as_of_session": as_of,
            "effective_session": effective_session,
            "formation_session": formation_session if formation_session not in (None, as_of) else None,
            "sector": sector,
            "source": source,
            "symbols": list(symbols),
            "input_fingerprint": fingerprint,
            "gru_gate": False,
            # no screen: every pair is ranked by its distance alone
            "thresholds": {"correlation_min": -1.0, "eg_pvalue_max": 1.0, "score_min": 0.0},
            "windows": {"formation": int(formation), "garch": 0, "backtest": 0, "gru": 0},
            "risk": {"max_portfolio_risk": 1.0, "max_position": fraction, "target_daily_vol": 0.0},
            "pairs": entries,
        },
        where=f"distance trading config {as_of}|{sector}",
    )
