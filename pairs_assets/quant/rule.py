"""The trading rule: one state machine per pair, the only place entries, exits and stops are decided.

The walk-forward (:func:`pairs_assets.quant.walkforward.replay.trade_configs`), the recent-backtest
score (:func:`pairs_assets.quant.backtest.backtest_pnl`) and the live signal job
(:func:`pairs_assets.quant.signals.compute_pair_signal`) all call :func:`step`; none decides on its
own. Pure: no Dagster, no I/O.

**State** (:class:`PairState`): the side (+1 long the spread, −1 short, 0 flat), the target fractions
and the shares held per leg, the entry session/bar/ordinal and z, the sessions held, the stopped
flag, the pair's terms at entry and the terms last in force (the last config that listed it), and
the last bar applied.

**Observation** (:class:`Observation`): one bar — its time, its exchange session (name and ordinal),
the z-score and its σ computed by the caller with the terms in force, the GRU probability and
threshold when gated (or a lazy veto), the sizing, and the pair's terms in today's config or None
when the config no longer lists it.

**Band edges** (in z; ``0 ≤ exit_z < entry_z < stop_z``; all comparisons below are the only ones):

=====================  ========================================================================
state                  at this bar's z
=====================  ========================================================================
long (side +1)         stop when ``z ≤ −stop_z``; else exit when ``z ≥ −exit_z`` (a jump across
                       the mean exits too); else close after ``max_holding`` sessions
short (side −1)        stop when ``z ≥ stop_z``; else exit when ``z ≤ exit_z``; else max holding
flat, stopped          re-armed (stopped cleared) when ``|z| < entry_z``; no entry on that bar
                       unless re-armed
flat                   enter when ``entry_z ≤ |z| < stop_z``: short the spread when z > 0, long
                       when z < 0 — if the sizing is not zero and the GRU gate allows
                       (probability ≥ threshold; no usable probability: allowed)
not in today's config  ``on_drop="exit"``: a held pair closes (``config_drop``);
                       ``"keep"``: trades on with the last config's terms until exit, stop or
                       max holding; a flat pair does nothing (its stopped flag is kept)
=====================  ========================================================================

**One position per unordered pair** (:func:`align_orderings`, applied by every consumer before
stepping): a re-formation may list the same two legs in the other ordering (``MRK-PFE`` held,
``PFE-MRK`` listed). That is one bet, not two: the listing of the other ordering is the held
ordering leaving the config, so the held position follows ``on_drop`` (``"keep"``: it trades on
with its own terms until exit, stop or max holding; ``"exit"``: it closes, ``config_drop``) and the
new ordering may enter only once the pair is flat. A flat pair takes the new ordering and keeps its
stopped flag.

So ``|z| = entry_z`` enters, ``|z| = stop_z`` neither enters nor holds (it stops), ``|z| = exit_z``
exits; a gap from beyond the stop back inside the band does not enter a stopped pair (it must pass
below ``entry_z`` first). Exits are decided before entries on the same bar, so an exit may be
followed by an entry of the other side on the same close (a reversal). ``max_holding`` counts
exchange sessions since the entry session (0 = no limit). A non-finite z changes nothing
(except ``max_holding`` and ``config_drop``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pairs_assets.errors import PairsError
from pairs_assets.quant.strategy import Levels

__all__ = [
    "DEFAULT_MAX_HOLDING",
    "DEFAULT_ON_DROP",
    "ON_DROP_CHOICES",
    "Bands",
    "Observation",
    "PairState",
    "RuleInputError",
    "Step",
    "align_orderings",
    "pair_key",
    "positions",
    "step",
    "step_action",
    "close_reason",
    "flat_step",
    "target_weights",
]

#: an open position whose pair leaves the config: close it ("exit") or trade it on ("keep")
ON_DROP_CHOICES = ("exit", "keep")
DEFAULT_ON_DROP = "keep"
#: exchange sessions a position may be held (0 = no limit)
DEFAULT_MAX_HOLDING = 20

LONG, SHORT, FLAT = 1, -1, 0
#: why a position closed (the walk-forward's exit reasons)
EXIT, STOP, MAX_HOLDING, CONFIG_DROP = "exit", "stop", "max_holding", "config_drop"


class RuleInputError(PairsError, ValueError):
    """A state or an observation the rule cannot apply; the message names the pair and the field."""


@dataclass(frozen=True, slots=True)
class Bands:
    """z-score levels ``0 <= exit_z < entry_z < stop_z`` (see the module docstring)."""

    entry_z: float
    exit_z: float
    stop_z: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.exit_z < self.entry_z < self.stop_z):
            raise RuleInputError(
                f"levels need 0 <= exit_z < entry_z < stop_z, got exit_z={self.exit_z}, entry_z={self.entry_z}, "
                f"stop_z={self.stop_z}"
            )


# --- the band edges, defined once ----------------------------------------------------------------


def stops(side: int, z: float, levels: Levels) -> bool:
    """A held side's stop: long at ``z ≤ −stop_z``, short at ``z ≥ stop_z``."""
    return (side == LONG and z <= -levels.stop_z) or (side == SHORT and z >= levels.stop_z)


def exits(side: int, z: float, levels: Levels) -> bool:
    """A held side's exit: long at ``z ≥ −exit_z``, short at ``z ≤ exit_z`` (jumps across the mean included)."""
    return (side == LONG and z >= -levels.exit_z) or (side == SHORT and z <= levels.exit_z)


def rearms(z: float, levels: Levels) -> bool:
    """A stopped pair may enter again once ``|z| < entry_z``."""
    return math.isfinite(z) and abs(z) < levels.entry_z


def entry_side(z: float, levels: Levels) -> int:
    """The side an entry takes at ``z``: ``entry_z ≤ |z| < stop_z`` → short when z > 0, long when z < 0; else 0."""
    if not math.isfinite(z) or not (levels.entry_z <= abs(z) < levels.stop_z):
        return FLAT
    return SHORT if z > 0 else LONG


def close_reason(side: int, z: float, levels: Levels, held: int, max_holding: int) -> str | None:
    """Why a held side closes at this bar, in order: stop, exit, max holding (None: it holds)."""
    if stops(side, z, levels):
        return STOP
    if exits(side, z, levels):
        return EXIT
    if max_holding and held >= max_holding:
        return MAX_HOLDING
    return None


def flat_step(stopped: bool, z: float, levels: Levels) -> tuple[bool, int]:
    """A flat pair at this bar: (stopped after it, the side an entry would take or 0).

    A stopped pair re-arms when ``|z| < entry_z`` — a z that cannot enter — so it never enters on
    the bar that re-arms it."""
    if stopped:
        return (False, FLAT) if rearms(z, levels) else (True, FLAT)
    return False, entry_side(z, levels)


# --- state and observation -----------------------------------------------------------------------


def _check_shares(pair_id: str, field: str, value: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise RuleInputError(f"pair {pair_id}: state {field}={value!r} must be a share count >= 0 (not NaN)")


@dataclass(frozen=True, slots=True)
class PairState:
    """One pair's position and memory between bars (see the module docstring).

    Attributes
    ----------
    pair_id, y, x : str
        The pair and its legs (y the dependent one).
    side : int
        +1 long the spread, −1 short, 0 flat.
    weight_y, weight_x : float
        Signed target fractions of equity of the legs set at entry (0 when flat).
    shares_y, shares_x : float
        Shares held per leg (≥ 0; the sign follows ``side`` and the hedge ratio), filled by the live
        path after its orders; the walk-forward sizes at execution and leaves them 0.
    entry_session : str or None
        The session of the entry (ISO date).
    entry_ordinal : int
        The entry session's exchange-session ordinal (``max_holding`` counts from it).
    entry_bar : object or None
        The bar of the entry (a timestamp).
    entry_z : float
        z at the entry.
    sessions_held : int
        Exchange sessions since the entry session, at the last bar applied.
    stopped : bool
        A stop fired and |z| has not yet come back below ``entry_z``.
    entry_terms : object or None
        The pair's terms (a config's pair entry) at entry.
    terms : object or None
        The terms of the last config that listed the pair (used while the pair is held but no
        longer listed, ``on_drop="keep"``).
    last_bar : object or None
        The last bar applied (a bar older than it is refused; the same bar again changes nothing).
    """

    pair_id: str
    y: str
    x: str
    side: int = FLAT
    weight_y: float = 0.0
    weight_x: float = 0.0
    shares_y: float = 0.0
    shares_x: float = 0.0
    entry_session: str | None = None
    entry_ordinal: int = -1
    entry_bar: Any = None
    entry_z: float = math.nan
    sessions_held: int = 0
    stopped: bool = False
    entry_terms: Any = None
    terms: Any = None
    last_bar: Any = None

    def __post_init__(self) -> None:
        if self.side not in (LONG, SHORT, FLAT):
            raise RuleInputError(f"pair {self.pair_id}: state side={self.side!r} must be -1, 0 or 1")
        _check_shares(self.pair_id, "shares_y", self.shares_y)
        _check_shares(self.pair_id, "shares_x", self.shares_x)
        for name in ("weight_y", "weight_x"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RuleInputError(f"pair {self.pair_id}: state {name}={value!r} must be a finite number")

    @classmethod
    def flat(cls, pair_id: str, y: str, x: str) -> PairState:
        """A pair never traded."""
        return cls(pair_id, y, x)


@dataclass(frozen=True, slots=True)
class Observation:
    """One bar of one pair, as the rule sees it.

    Attributes
    ----------
    bar : object
        The bar's time (comparable: timestamps, or sessions in the walk-forward).
    session : str or object
        Its exchange session.
    ordinal : int
        The session's exchange-session ordinal (consecutive sessions differ by 1).
    z : float
        The z-score with the terms in force (NaN: unknown).
    terms : object or None
        The pair's entry in today's config (``pair_id``, ``y``, ``x``, ``hedge_ratio``, ``levels``);
        None: today's config does not list the pair.
    sigma : float
        The σ behind z (recorded, not used by the rule).
    sizing : mapping or None
        ``y_fraction`` and ``x_fraction`` (positive) of an entry; None: one unit of the spread.
    probability : float or None
        The GRU's probability (None or NaN: ungated).
    threshold : float
        The probability an entry needs.
    entry_allowed : callable or None
        A lazy veto, called only when an entry is otherwise due (the walk-forward's GRU gate).
    """

    bar: Any
    session: Any
    ordinal: int
    z: float
    terms: Any = None
    sigma: float = math.nan
    sizing: Mapping[str, float] | None = None
    probability: float | None = None
    threshold: float = 0.5
    entry_allowed: Callable[[], bool] | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one bar did.

    Attributes
    ----------
    closed : PairState or None
        The position closed at this bar (its state before the bar), if any.
    exit_reason : str or None
        ``exit``, ``stop``, ``max_holding`` or ``config_drop``.
    entered : bool
        A position was opened at this bar.
    vetoed : bool
        An entry was due but the GRU gate refused it.
    repeated : bool
        The bar was the last one applied: nothing changed.
    """

    closed: PairState | None = None
    exit_reason: str | None = None
    entered: bool = False
    vetoed: bool = False
    repeated: bool = False


_HOLD = Step()
_REPEATED = Step(repeated=True)


def step_action(s: Step, state: PairState) -> str:
    """A step's signal action given the new state: ``long_spread``/``short_spread`` (an entry, also
    after an exit on the same bar), ``stop``, ``exit`` (an exit, max holding or a config drop), ``hold``."""
    if s.entered:
        return "long_spread" if state.side == LONG else "short_spread"
    if s.exit_reason == STOP:
        return "stop"
    if s.exit_reason is not None:
        return "exit"
    return "hold"


def _gate_allows(obs: Observation) -> tuple[bool, bool]:
    """(allowed, gated)."""
    if obs.entry_allowed is not None:
        return bool(obs.entry_allowed()), True
    p = obs.probability
    if p is None or not math.isfinite(p):
        return True, False
    return p >= obs.threshold, True


def target_weights(side: int, hedge_ratio: float, sizing: Mapping[str, float]) -> tuple[float, float]:
    """Signed target fractions of equity of an entry: long the spread ``+y_fraction`` of y and
    ``−sign(β)·x_fraction`` of x; short the opposite."""
    hedge_sign = 1.0 if hedge_ratio >= 0 else -1.0
    return side * float(sizing["y_fraction"]), -side * hedge_sign * float(sizing["x_fraction"])


def _target(side: int, terms: Any, sizing: Mapping[str, float] | None) -> tuple[float, float]:
    if sizing is None:
        return float(side), float(-side)
    return target_weights(side, terms.hedge_ratio, sizing)


def step(
    state: PairState,
    obs: Observation,
    *,
    on_drop: str = DEFAULT_ON_DROP,
    max_holding: int = DEFAULT_MAX_HOLDING,
) -> tuple[PairState, Step]:
    """Apply one bar to a pair's state: the rule of the module docstring.

    Parameters
    ----------
    state : PairState
    obs : Observation
    on_drop : {"keep", "exit"}, default "keep"
    max_holding : int, default 20
        Exchange sessions (0 = no limit).

    Returns
    -------
    (PairState, Step)
        The new state (its weights are the target position) and what happened.

    Raises
    ------
    RuleInputError
        The observation's config names other legs than the state, or its bar is older than the
        last one applied (the message names the pair).
    """
    terms = obs.terms
    if terms is not None and (terms.y != state.y or terms.x != state.x):
        raise RuleInputError(
            f"pair {state.pair_id}: the state's legs ({state.y}, {state.x}) disagree with the config's "
            f"({terms.y}, {terms.x})"
        )
    last = state.last_bar
    if last is not None:
        if obs.bar < last:
            raise RuleInputError(f"pair {state.pair_id}: bar {obs.bar} is older than the last one applied ({last})")
        if obs.bar == last:
            return state, _REPEATED
    z = obs.z
    side, stopped = state.side, state.stopped
    closed = reason = None
    if side != FLAT:
        held = obs.ordinal - state.entry_ordinal
        if terms is None and on_drop == "exit":
            reason = CONFIG_DROP
        else:
            reason = close_reason(side, z, (terms if terms is not None else state.terms).levels, held, max_holding)
        if reason is None:
            new = PairState(
                state.pair_id,
                state.y,
                state.x,
                side,
                state.weight_y,
                state.weight_x,
                state.shares_y,
                state.shares_x,
                state.entry_session,
                state.entry_ordinal,
                state.entry_bar,
                state.entry_z,
                held,
                False,
                state.entry_terms,
                terms if terms is not None else state.terms,
                obs.bar,
            )
            return new, _HOLD
        closed, stopped = state, reason == STOP
    done = _HOLD if closed is None else Step(closed=closed, exit_reason=reason)
    if terms is None:  # not listed: no entry; a flat pair keeps its stopped flag
        return _flat(state, stopped, state.terms, obs.bar), done
    stopped, new_side = flat_step(stopped, z, terms.levels)
    if new_side != FLAT:
        w_y, w_x = _target(new_side, terms, obs.sizing)
        if w_y or w_x:
            allowed, _gated = _gate_allows(obs)
            if allowed:
                opened = PairState(
                    state.pair_id,
                    state.y,
                    state.x,
                    new_side,
                    w_y,
                    w_x,
                    0.0,
                    0.0,
                    str(obs.session),
                    obs.ordinal,
                    obs.bar,
                    float(z),
                    0,
                    False,
                    terms,
                    terms,
                    obs.bar,
                )
                return opened, Step(closed=closed, exit_reason=reason, entered=True)
            return _flat(state, stopped, terms, obs.bar), Step(closed=closed, exit_reason=reason, vetoed=True)
    return _flat(state, stopped, terms, obs.bar), done


def _flat(state: PairState, stopped: bool, terms: Any, bar: Any) -> PairState:
    return PairState(state.pair_id, state.y, state.x, FLAT, stopped=stopped, terms=terms, last_bar=bar)


# --- one position per unordered pair ----------------------------------------------------------


def pair_key(y: str, x: str) -> tuple[str, str]:
    """The unordered pair of two legs (the same for ``y-x`` and ``x-y``)."""
    return (y, x) if y <= x else (x, y)


def _latest(state: PairState) -> tuple:
    return (state.side != FLAT, state.last_bar is not None, state.last_bar if state.last_bar is not None else 0)


def align_orderings(
    listed: Mapping[str, Any], states: Mapping[str, PairState]
) -> tuple[dict[str, Any], dict[str, PairState]]:
    """Today's listed pairs and the pair states, at most one of each per unordered pair.

    Parameters
    ----------
    listed : mapping of pair id to terms
        Today's config pairs (each with ``pair_id``, ``y``, ``x``).
    states : mapping of pair id to PairState
        The states before this bar (several of one unordered pair are allowed: the held one, else
        the one with the latest bar, is the pair's state; the others are dropped).

    Returns
    -------
    (dict, dict)
        ``listed`` without the pairs whose legs a held state holds in the other ordering (the held
        position stays the pair's only position and is stepped as not listed: ``on_drop``), and
        ``states`` with a flat state of the other ordering re-keyed to the listed ordering (its
        stopped flag and last bar kept). When a config lists both orderings, the one the state
        holds is kept, else the first pair id.
    """
    by_key: dict[tuple[str, str], PairState] = {}
    for pid in sorted(states):
        st = states[pid]
        key = pair_key(st.y, st.x)
        kept = by_key.get(key)
        if kept is None or _latest(st) > _latest(kept):
            by_key[key] = st
    out_listed: dict[str, Any] = {}
    chosen: dict[tuple[str, str], str] = {}
    for pid in sorted(listed):
        terms = listed[pid]
        key = pair_key(terms.y, terms.x)
        st = by_key.get(key)
        if key in chosen:
            if st is not None and st.pair_id == pid:  # both orderings listed: the one the state holds
                del out_listed[chosen[key]]
            else:
                continue
        chosen[key] = pid
        out_listed[pid] = terms
    out_states = {st.pair_id: st for st in by_key.values()}
    for key, pid in chosen.items():
        st = by_key.get(key)
        if st is None or st.pair_id == pid:
            continue
        if st.side != FLAT:  # held in the other ordering: that position is the pair's; not listed today
            del out_listed[pid]
            continue
        terms = out_listed[pid]
        del out_states[st.pair_id]
        out_states[pid] = PairState(pid, terms.y, terms.x, stopped=st.stopped, last_bar=st.last_bar)
    return out_listed, out_states


# --- a z path under fixed terms ------------------------------------------------------------------


def positions(z, levels: Bands, *, max_holding: int = 0) -> list[int]:
    """The rule's side (+1/−1/0) decided at each close of a z path under fixed terms, unit sized, ungated.

    The same transitions as :func:`step` (:func:`close_reason`, :func:`flat_step`) without the
    state objects: the recent backtest calls it for every candidate pair.

    Parameters
    ----------
    z : iterable of float
        z-scores in time order, one per session.
    levels : Bands
    max_holding : int, default 0
        Sessions (0 = no limit).

    Returns
    -------
    list of int
        One per element of ``z``; element t depends only on ``z[:t+1]``.
    """
    out = []
    side, stopped, entered = FLAT, False, 0
    for t, score in enumerate(z):
        score = float(score)
        if side != FLAT:
            reason = close_reason(side, score, levels, t - entered, max_holding)
            if reason is not None:
                side, stopped = FLAT, reason == STOP
        if side == FLAT:
            stopped, side = flat_step(stopped, score, levels)
            if side != FLAT:
                entered = t
        out.append(side)
    return out
