"""The one trading rule (quant.rule): band edges, stops and re-arming, max holding, drops, bad input."""

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant import rule
from pairs_assets.quant.rule import Bands, Observation, PairState, RuleInputError, step, step_action

LEVELS = Bands(entry_z=2.0, exit_z=0.5, stop_z=3.5)


@dataclass(frozen=True)
class Terms:
    pair_id: str = "AAA-BBB"
    y: str = "AAA"
    x: str = "BBB"
    hedge_ratio: float = 0.8
    levels: Bands = LEVELS


TERMS = Terms()
SIZING = {"y_fraction": 0.05, "x_fraction": 0.04}


def run(zs, *, state=None, terms=TERMS, start=0, **kwargs):
    """Apply z-scores on consecutive sessions; return (final state, [(side, step)])."""
    state = state or PairState.flat("AAA-BBB", "AAA", "BBB")
    out = []
    for k, z in enumerate(zs, start=start):
        t = terms if not isinstance(z, tuple) else z[1]
        z = z if not isinstance(z, tuple) else z[0]
        state, s = step(state, Observation(k, f"s{k}", k, z, t, sizing=SIZING), **kwargs)
        out.append((state.side, s))
    return state, out


def sides(zs, **kwargs):
    return [side for side, _ in run(zs, **kwargs)[1]]


# --- entry edges ---------------------------------------------------------------------------------


def test_entry_at_exactly_entry_z_enters_both_ways():
    assert sides([2.0]) == [-1]
    assert sides([-2.0]) == [1]
    assert sides([math.nextafter(2.0, 0)]) == [0]


def test_entry_at_exactly_stop_z_does_not_enter():
    assert sides([3.5]) == [0]
    assert sides([-3.5]) == [0]
    assert sides([math.nextafter(3.5, 0)]) == [-1]


def test_entry_sizes_legs_with_the_hedge_sign():
    state, _ = run([-2.5])
    assert (state.side, state.weight_y, state.weight_x) == (1, 0.05, -0.04)
    state, _ = run([2.5], terms=Terms(hedge_ratio=-0.8))
    assert (state.side, state.weight_y, state.weight_x) == (-1, -0.05, -0.04)
    assert state.entry_session == "s0" and state.entry_z == 2.5 and state.entry_terms is not None


def test_zero_sizing_does_not_enter():
    state = PairState.flat("AAA-BBB", "AAA", "BBB")
    new, s = step(state, Observation(0, "s0", 0, 2.5, TERMS, sizing={"y_fraction": 0.0, "x_fraction": 0.0}))
    assert new.side == 0 and not s.entered


# --- exit and stop edges -------------------------------------------------------------------------


def test_exit_at_exactly_exit_z():
    assert sides([2.5, 0.5]) == [-1, 0]
    assert sides([-2.5, -0.5]) == [1, 0]
    assert sides([2.5, math.nextafter(0.5, 1)]) == [-1, -1]


def test_stop_at_exactly_stop_z():
    _, out = run([2.5, 3.5])
    assert [side for side, _ in out] == [-1, 0] and out[1][1].exit_reason == "stop"
    _, out = run([-2.5, -3.5])
    assert out[1][1].exit_reason == "stop"
    assert sides([2.5, math.nextafter(3.5, 0)]) == [-1, -1]


def test_jump_across_the_mean_exits_and_reverses_on_the_same_bar():
    _, out = run([2.5, -2.5])
    assert out[1][1].exit_reason == "exit" and out[1][1].entered and out[1][0] == 1
    assert step_action(out[1][1], PairState("AAA-BBB", "AAA", "BBB", side=1)) == "long_spread"
    _, out = run([2.5, -1.0])
    assert out[1] == (0, out[1][1]) and out[1][1].exit_reason == "exit" and not out[1][1].entered


def test_gap_from_beyond_the_stop_back_inside_the_band_does_not_reenter():
    # stopped at 4.0; a gap back to 2.5 (inside the band) is no entry; below entry_z re-arms
    assert sides([2.5, 4.0, 2.5, 2.9, 1.9, 2.1]) == [-1, 0, 0, 0, 0, -1]
    # a flat pair gapping from beyond the stop into the band enters (it was never stopped)
    assert sides([4.0, 2.5]) == [0, -1]


def test_rearm_bar_itself_cannot_enter():
    # |z| < entry_z re-arms; the band needs |z| >= entry_z, so the same bar never enters
    state, out = run([-2.5, -3.6, -1.99])
    assert [side for side, _ in out] == [1, 0, 0] and not state.stopped


def test_nan_z_changes_nothing_but_max_holding():
    assert sides([2.5, math.nan, math.nan]) == [-1, -1, -1]
    assert sides([math.nan, 2.5]) == [0, -1]
    _, out = run([2.5, math.nan, math.nan], max_holding=2)
    assert out[2][1].exit_reason == "max_holding"


# --- holding, drops ------------------------------------------------------------------------------


def test_max_holding_counts_sessions_since_entry():
    _, out = run([2.5, 1.0, 1.0, 1.0], max_holding=3)
    assert [side for side, _ in out] == [-1, -1, -1, 0] and out[3][1].exit_reason == "max_holding"
    assert sides([2.5, 1.0, 1.0, 1.0], max_holding=0) == [-1, -1, -1, -1]


def test_max_holding_uses_session_ordinals_not_bars():
    state = PairState.flat("AAA-BBB", "AAA", "BBB")
    state, _ = step(state, Observation(1, "d0", 10, 2.5, TERMS, sizing=SIZING), max_holding=2)
    for bar in (2, 3, 4):  # three bars of the next session: held 1
        state, s = step(state, Observation(bar, "d1", 11, 1.0, TERMS, sizing=SIZING), max_holding=2)
        assert state.side == -1 and state.sessions_held == 1
    state, s = step(state, Observation(5, "d2", 12, 1.0, TERMS, sizing=SIZING), max_holding=2)
    assert s.exit_reason == "max_holding"


def test_dropped_pair_keep_trades_on_with_last_terms_and_exit_closes():
    zs = [2.5, (1.0, None), (0.4, None)]
    _, out = run(zs, on_drop="keep")
    assert [side for side, _ in out] == [-1, -1, 0] and out[2][1].exit_reason == "exit"
    _, out = run(zs, on_drop="exit")
    assert [side for side, _ in out] == [-1, 0, 0] and out[1][1].exit_reason == "config_drop"


def test_flat_pair_not_in_config_keeps_its_stopped_flag():
    state, _ = run([2.5, 3.6, (1.0, None), 2.5])
    assert state.side == 0 and state.stopped


def test_gru_gate_vetoes_an_entry_and_is_lazy():
    state = PairState.flat("AAA-BBB", "AAA", "BBB")
    new, s = step(state, Observation(0, "s0", 0, 2.5, TERMS, sizing=SIZING, probability=0.4, threshold=0.5))
    assert new.side == 0 and s.vetoed
    new, s = step(state, Observation(0, "s0", 0, 2.5, TERMS, sizing=SIZING, probability=0.5, threshold=0.5))
    assert new.side == -1
    new, s = step(state, Observation(0, "s0", 0, 2.5, TERMS, sizing=SIZING, probability=math.nan))
    assert new.side == -1

    def boom():
        raise AssertionError("the gate is consulted only when an entry is due")

    new, s = step(state, Observation(0, "s0", 0, 1.0, TERMS, sizing=SIZING, entry_allowed=boom))
    assert new.side == 0


def test_same_bar_again_changes_nothing():
    state, _ = run([2.5])
    again, s = step(state, Observation(0, "s0", 0, 0.0, TERMS, sizing=SIZING))
    assert again is state and s.repeated


def test_positions_of_a_z_path_under_fixed_terms():
    assert rule.positions([0.0, 2.0, 1.0, 0.5, -3.5, -2.0, -1.0, -2.0], LEVELS) == [0, -1, -1, 0, 0, 1, 1, 1]


# --- bad input -----------------------------------------------------------------------------------


def test_state_and_config_disagreeing_on_symbols_is_refused():
    state = PairState.flat("AAA-BBB", "AAA", "CCC")
    with pytest.raises(
        RuleInputError, match=r"pair AAA-BBB: the state's legs \(AAA, CCC\) disagree with the config's \(AAA, BBB\)"
    ):
        step(state, Observation(0, "s0", 0, 2.5, TERMS))


@pytest.mark.parametrize("field, value", [("shares_y", -1.0), ("shares_x", math.nan), ("shares_y", None)])
def test_negative_or_nan_share_count_is_refused(field, value):
    with pytest.raises(RuleInputError, match=rf"pair AAA-BBB: state {field}=.* must be a share count >= 0"):
        PairState("AAA-BBB", "AAA", "BBB", side=1, **{field: value})


def test_bar_older_than_the_last_applied_is_refused():
    state, _ = run([1.0, 2.5])
    with pytest.raises(RuleInputError, match="pair AAA-BBB: bar 0 is older than the last one applied \\(1\\)"):
        step(state, Observation(0, "s0", 0, 0.0, TERMS))


def test_levels_out_of_order_are_refused():
    with pytest.raises(RuleInputError, match="exit_z < entry_z < stop_z"):
        Bands(entry_z=2.0, exit_z=2.0, stop_z=3.5)


@settings(max_examples=60, deadline=None)
@given(
    zs=st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([2.0, -2.0, 3.5, -3.5, 0.5, -0.5, math.nan])), max_size=60),
    max_holding=st.integers(0, 5),
)
def test_positions_equals_stepping_the_state_machine(zs, max_holding):
    """The recent backtest's fast path and the state machine are the same transitions."""
    stepped = [side for side, _ in run(zs, max_holding=max_holding)[1]]
    assert rule.positions(zs, LEVELS, max_holding=max_holding) == stepped


def test_align_orderings_one_state_per_unordered_pair():
    from types import SimpleNamespace

    def terms(y, x):
        return SimpleNamespace(pair_id=f"{y}-{x}", y=y, x=x)

    held = rule.PairState("A-B", "A", "B", side=-1, weight_y=-0.1, weight_x=0.1, last_bar=3)
    # held A-B, B-A listed: B-A is left out (the held position is the pair's), the state untouched
    listed, states = rule.align_orderings({"B-A": terms("B", "A"), "C-D": terms("C", "D")}, {"A-B": held})
    assert sorted(listed) == ["C-D"] and states == {"A-B": held}
    # flat A-B (stopped), B-A listed: the state moves to B-A with its stopped flag and last bar
    flat = rule.PairState("A-B", "A", "B", stopped=True, last_bar=3)
    listed, states = rule.align_orderings({"B-A": terms("B", "A")}, {"A-B": flat})
    assert sorted(listed) == ["B-A"] and list(states) == ["B-A"]
    assert (states["B-A"].y, states["B-A"].stopped, states["B-A"].last_bar, states["B-A"].side) == ("B", True, 3, 0)
    # two rows of one pair: the held one wins over a later flat one; both orderings listed: the held one's
    stale = rule.PairState("B-A", "B", "A", last_bar=5)
    listed, states = rule.align_orderings({"A-B": terms("A", "B"), "B-A": terms("B", "A")}, {"A-B": held, "B-A": stale})
    assert list(listed) == ["A-B"] and states == {"A-B": held}
    # two flat rows: the latest bar's
    listed, states = rule.align_orderings({}, {"A-B": flat, "B-A": stale})
    assert states == {"B-A": stale}
