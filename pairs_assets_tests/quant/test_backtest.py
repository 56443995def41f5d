"""Recent backtest: position rules, no look-ahead, metrics, and planted pairs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant import rule
from pairs_assets.quant.backtest import BacktestResult, backtest_pnl, recent_backtest
from pairs_assets.quant.prices import InsufficientHistoryError
from pairs_assets_tests.synthetic import synthetic_panel

BANDS = {"entry_z": 2.0, "exit_z": 0.5, "stop_z": 4.0}
TEST, FORMATION = 120, 250


def planted_pair(seed: int = 3, n_obs: int = 400) -> tuple[np.ndarray, np.ndarray]:
    closes, pairs = synthetic_panel(n_cointegrated_pairs=1, n_random_walks=0, n_obs=n_obs, seed=seed)
    y_sym, x_sym = pairs[0]
    return np.log(closes[y_sym].to_numpy()), np.log(closes[x_sym].to_numpy())


def test_position_rules_on_a_known_path():
    steps = [
        (0.0, 0),
        (2.5, -1),  # enter short
        (1.0, -1),
        (0.3, 0),  # exit: z < exit_z
        (-2.1, 1),  # enter long
        (-4.5, 0),  # stop
        (-3.0, 0),  # no re-entry after a stop until |z| < entry_z
        (-1.0, 0),  # re-armed
        (-2.2, 1),
        (0.0, 0),  # exit: z > -exit_z
        (4.5, 0),  # beyond stop_z: never enter
        (2.2, -1),
        (-2.5, 1),  # the short exits and reverses on the same close
        (-0.4, 0),
    ]
    positions = rule.positions([z for z, _ in steps], rule.Bands(**BANDS))
    assert positions == [position for _, position in steps]


def test_short_position_exits_when_z_jumps_through_zero():
    assert rule.positions([2.5, -1.0], rule.Bands(**BANDS)) == [-1, 0]


@settings(max_examples=30, deadline=None)
@given(bar=st.integers(0, TEST - 1), shock=st.floats(-0.2, 0.2).filter(lambda v: abs(v) > 1e-6))
def test_no_look_ahead_changing_a_bar_leaves_earlier_pnl_and_positions(bar, shock):
    y_log, x_log = planted_pair()
    pnl, positions = backtest_pnl(y_log, x_log, TEST, FORMATION, **BANDS)
    changed = y_log.copy()
    changed[len(y_log) - TEST + bar :] += shock  # this bar and every later one
    pnl2, positions2 = backtest_pnl(changed, x_log, TEST, FORMATION, **BANDS)
    np.testing.assert_array_equal(pnl[:bar], pnl2[:bar])
    np.testing.assert_array_equal(positions[:bar], positions2[:bar])


def test_changing_the_last_bar_only_changes_the_last_pnl():
    y_log, x_log = planted_pair()
    pnl, positions = backtest_pnl(y_log, x_log, TEST, FORMATION, **BANDS)
    assert positions[-2] != 0, "fixture should hold a position into the last bar"
    changed = y_log.copy()
    changed[-1] += 0.05
    pnl2, _ = backtest_pnl(changed, x_log, TEST, FORMATION, **BANDS)
    np.testing.assert_array_equal(pnl[:-1], pnl2[:-1])
    assert pnl2[-1] != pnl[-1]


def test_history_before_the_formation_window_is_ignored():
    y_log, x_log = planted_pair()
    base = recent_backtest(y_log, x_log, TEST, FORMATION, **BANDS)
    noise = np.random.default_rng(0).normal(0, 1, 100)
    assert recent_backtest(np.r_[noise, y_log], np.r_[-noise, x_log], TEST, FORMATION, **BANDS) == base
    assert recent_backtest(y_log[-(TEST + FORMATION) :], x_log[-(TEST + FORMATION) :], TEST, FORMATION, **BANDS) == base


def test_pnl_formula_and_metrics():
    y_log, x_log = planted_pair()
    result = recent_backtest(y_log, x_log, TEST, FORMATION, **BANDS)
    pnl, positions = backtest_pnl(y_log, x_log, TEST, FORMATION, **BANDS)
    formation = slice(len(y_log) - TEST - FORMATION, len(y_log) - TEST)
    beta = np.polyfit(x_log[formation], y_log[formation], 1)[0]
    moves = (np.diff(y_log[-TEST - 1 :]) - beta * np.diff(x_log[-TEST - 1 :])) / (1 + abs(beta))
    np.testing.assert_allclose(pnl, np.r_[0, positions[:-1]] * moves, atol=1e-12)
    assert result.total_return == pytest.approx(pnl.sum())
    assert result.sharpe == pytest.approx(pnl.mean() / pnl.std(ddof=1) * math.sqrt(252))
    cumulative = np.r_[0, np.cumsum(pnl)]
    assert result.max_drawdown == pytest.approx(np.max(np.maximum.accumulate(cumulative) - cumulative))
    assert result.n_trades == int(np.sum((positions != 0) & (positions != np.r_[0, positions[:-1]])))
    assert result.n_obs == TEST and 0.0 <= result.hit_rate <= 1.0


def test_planted_pairs_trade_profitably():
    sharpes = [recent_backtest(*planted_pair(seed, n_obs=600), 250, 250, **BANDS).sharpe for seed in range(4)]
    assert all(sharpe > 0.0 for sharpe in sharpes)


def test_no_trades_gives_neutral_metrics():
    y_log, x_log = planted_pair()
    result = recent_backtest(y_log, x_log, TEST, FORMATION, entry_z=50.0, exit_z=0.5, stop_z=60.0)
    expected = BacktestResult(
        total_return=0.0, sharpe=0.0, n_trades=0, hit_rate=result.hit_rate, max_drawdown=0.0, n_obs=TEST
    )
    assert result == expected
    assert math.isnan(result.hit_rate)


def test_bad_inputs_raise_naming_the_field():
    y_log, x_log = planted_pair(n_obs=300)
    with pytest.raises(InsufficientHistoryError, match="test_window \\+ formation_window = 370"):
        recent_backtest(y_log, x_log, TEST, FORMATION, **BANDS)
    with pytest.raises(ValueError, match="exit_z"):
        recent_backtest(y_log, x_log, 100, 100, entry_z=1.0, exit_z=1.5, stop_z=3.0)
    with pytest.raises(ValueError, match="stop_z"):
        recent_backtest(y_log, x_log, 100, 100, entry_z=2.0, exit_z=0.5, stop_z=1.5)
    with pytest.raises(ValueError, match="y_log contains NaN"):
        recent_backtest(np.r_[np.nan, y_log[1:]], x_log, 100, 100, **BANDS)
    with pytest.raises(ValueError, match="same length"):
        recent_backtest(y_log, x_log[1:], 100, 100, **BANDS)


def test_lag_and_costs_by_hand():
    from pairs_assets.quant.backtest import backtest_pnl
    from pairs_assets.quant.cointegration import hedge_ratio

    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(0, 0.01, 90))
    y = 0.8 * x + rng.normal(0, 0.01, 90)
    pnl0, pos = backtest_pnl(y, x, 30, 60, 1.0, 0.3, 3.5)
    pnl1, pos1 = backtest_pnl(y, x, 30, 60, 1.0, 0.3, 3.5, lag=1)
    assert (pos == pos1).all() and (pos != 0).any()  # decisions do not depend on the lag
    beta, _ = hedge_ratio(y[:60], x[:60])
    moves = (np.diff(y[59:]) - beta * np.diff(x[59:])) / (1 + abs(beta))
    held1 = np.concatenate([[0, 0], pos[:-2]])  # decided at close t, traded at close t+1
    assert np.allclose(pnl1, held1 * moves, atol=1e-15)
    assert np.allclose(pnl0, np.concatenate([[0], pos[:-1]]) * moves, atol=1e-15)
    costly, _ = backtest_pnl(y, x, 30, 60, 1.0, 0.3, 3.5, lag=1, cost_bp=10.0)
    traded = np.abs(np.diff(held1)).sum()  # unit gross notional traded at the closes inside the window
    assert costly.sum() == pytest.approx(pnl1.sum() - 10.0 / 1e4 * traded, abs=1e-15)
    with pytest.raises(ValueError, match="lag"):
        backtest_pnl(y, x, 30, 60, 1.0, 0.3, 3.5, lag=2)
