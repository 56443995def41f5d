"""Walk-forward execution: P&L, costs and lag checked by hand, range ends, costs monotone, bad input."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant.walkforward.execution import (
    DAILY_COLUMNS,
    EXECUTED_COLUMNS,
    TRADE_COLUMNS,
    empty_trades,
    execute,
)

SESSIONS = pd.bdate_range("2021-03-01", periods=5)  # Mon 1 .. Fri 5 March 2021
# Hand-picked closes: A trades at 10 → 10 → 12 → 11 → 13, B at 20 → 20 → 22 → 25 → 22.
CLOSES = pd.DataFrame({"A": [10.0, 10.0, 12.0, 11.0, 13.0], "B": [20.0, 20.0, 22.0, 25.0, 22.0]}, index=SESSIONS)
CAPITAL = 1_000_000.0  # to state the hand numbers in dollars; the engine works with capital 1


def trade(entry, exit_, side=1, w_y=0.1, w_x=-0.1, reason="exit", y="A", x="B"):
    return {
        "strategy": "test",
        "sector": "hand",
        "pair_id": f"{y}-{x}",
        "y": y,
        "x": x,
        "side": side,
        "w_y": w_y,
        "w_x": w_x,
        "entry_session": pd.Timestamp(entry),
        "exit_session": pd.NaT if exit_ is None else pd.Timestamp(exit_),
        "z_entry": -2.5 * side,
        "z_exit": math.nan if exit_ is None else 0.1,
        "exit_reason": reason,
    }


def frame(*rows):
    return pd.DataFrame(list(rows), columns=TRADE_COLUMNS)


def dollars(values):
    return np.round(np.asarray(values, dtype=float) * CAPITAL, 2)


def test_hand_computed_lag_one_to_the_cent():
    # Decide entry at the close of Mon 1 March, exit at the close of Wed 3; lag 1 executes both a
    # session later: buy at Tue's close (A 10, B 20), sell at Thu's close (A 11, B 25).
    # Shares: A 0.1/10 = 0.01 (= $1,000,000·0.1/$10 = 10,000 shares), B −0.1/20 = −0.005 (−5,000).
    # Wed: A +2·0.01 = +0.02, B +2·(−0.005) = −0.01 → +$10,000.
    # Thu: A −1·0.01 = −0.01, B +3·(−0.005) = −0.015 → −$25,000.
    # Costs 10 bp: entry notional 0.1 + 0.1 = 0.2 → $200 on Tue; exit notional
    # 0.01·11 + 0.005·25 = 0.11 + 0.125 = 0.235 → $235 on Thu. Net: −$15,000 − $435 = −$15,435.
    result = execute(frame(trade("2021-03-01", "2021-03-03")), CLOSES, SESSIONS, lag=1, cost_bp=10)
    daily = result.daily
    assert list(daily.columns) == DAILY_COLUMNS
    assert daily.index.equals(SESSIONS)
    assert list(dollars(daily["gross_pnl"])) == [0.0, 0.0, 10_000.0, -25_000.0, 0.0]
    assert list(dollars(daily["cost"])) == [0.0, 200.0, 0.0, 235.0, 0.0]
    assert list(dollars(daily["pnl"])) == [0.0, -200.0, 10_000.0, -25_235.0, 0.0]
    assert list(dollars(daily["turnover"])) == [0.0, 200_000.0, 0.0, 235_000.0, 0.0]
    # held at the close of Tue (0.1 + 0.1) and Wed (0.01·12 + 0.005·22 = 0.12 + 0.11); sold Thu
    assert list(dollars(daily["gross_exposure"])) == [0.0, 200_000.0, 230_000.0, 0.0, 0.0]
    assert list(daily["n_positions"]) == [0, 1, 1, 0, 0]

    executed = result.trades
    assert list(executed.columns) == EXECUTED_COLUMNS
    row = executed.iloc[0]
    assert row["entry_exec"] == pd.Timestamp("2021-03-02")
    assert row["exit_exec"] == pd.Timestamp("2021-03-04")
    assert row["holding"] == 2
    assert round(row["gross_pnl"] * CAPITAL, 2) == -15_000.0
    assert round(row["cost"] * CAPITAL, 2) == 435.0
    assert round(row["pnl"] * CAPITAL, 2) == -15_435.0
    assert row["exit_reason"] == "exit"


def test_hand_computed_lag_zero_to_the_cent():
    # Lag 0 trades at the decision closes: buy Mon (A 10, B 20), sell Wed (A 12, B 22).
    # Tue: nothing moves → 0. Wed: A +2·0.01 = +0.02, B +2·(−0.005) = −0.01 → +$10,000.
    # Costs 10 bp: entry 0.2 → $200 on Mon; exit 0.01·12 + 0.005·22 = 0.23 → $230 on Wed.
    # Net: $10,000 − $430 = $9,570.
    result = execute(frame(trade("2021-03-01", "2021-03-03")), CLOSES, SESSIONS, lag=0, cost_bp=10)
    assert list(dollars(result.daily["gross_pnl"])) == [0.0, 0.0, 10_000.0, 0.0, 0.0]
    assert list(dollars(result.daily["cost"])) == [200.0, 0.0, 230.0, 0.0, 0.0]
    assert list(result.daily["n_positions"]) == [1, 1, 0, 0, 0]
    row = result.trades.iloc[0]
    assert (row["entry_exec"], row["exit_exec"], row["holding"]) == (SESSIONS[0], SESSIONS[2], 2)
    assert round(row["pnl"] * CAPITAL, 2) == 9_570.0


def test_short_spread_and_negative_hedge_ratio_legs():
    # Short the spread with a negative hedge ratio: both legs short. Decide Tue, exit Thu, lag 1:
    # sell at Wed (A 12, B 22) and buy back at Fri (A 13, B 22).
    # Shares A −0.06/12 = −0.005, B −0.04/22. Thu: A −1·(−0.005) = +0.005; B +3·(−0.04/22).
    # Fri: A +2·(−0.005) = −0.01; B −3·(−0.04/22). B nets 0 over the trade: gross = −0.005 → −$5,000.
    result = execute(frame(trade("2021-03-02", "2021-03-04", side=-1, w_y=-0.06, w_x=-0.04)), CLOSES, SESSIONS, lag=1)
    gross = dollars(result.daily["gross_pnl"])
    assert gross[3] == round((0.005 - 0.12 / 22) * CAPITAL, 2)
    assert gross[4] == round((-0.01 + 0.12 / 22) * CAPITAL, 2)
    assert round(result.trades["gross_pnl"].iloc[0] * CAPITAL, 2) == -5_000.0


def test_range_end_rules():
    trades = frame(
        trade("2021-03-02", None, reason="exit"),  # still open: closed Fri, reason range_end
        trade("2021-03-03", "2021-03-05", reason="stop"),  # exit would execute after Fri: closed Fri
        trade("2021-03-05", None),  # entry would execute after Fri: dropped
    )
    result = execute(trades, CLOSES, SESSIONS, lag=1, cost_bp=0)
    executed = result.trades
    assert len(executed) == 2
    assert list(executed["exit_exec"]) == [SESSIONS[-1], SESSIONS[-1]]
    assert list(executed["exit_reason"]) == ["range_end", "stop"]
    assert list(executed["holding"]) == [2, 1]
    assert pd.isna(executed["exit_session"].iloc[0])
    # with lag 0 the last trade enters and is closed on Fri at once
    executed0 = execute(trades, CLOSES, SESSIONS, lag=0).trades
    assert len(executed0) == 3 and executed0["holding"].iloc[2] == 0


def test_daily_and_trade_pnl_agree_on_random_trades():
    closes, trades = random_case(np.random.default_rng(7), n_trades=40)
    result = execute(trades, closes, closes.index[5:], lag=1, cost_bp=7.5)
    daily, executed = result.daily, result.trades
    assert math.isclose(daily["gross_pnl"].sum(), executed["gross_pnl"].sum(), abs_tol=1e-12)
    assert math.isclose(daily["cost"].sum(), executed["cost"].sum(), abs_tol=1e-12)
    assert np.allclose(daily["pnl"], daily["gross_pnl"] - daily["cost"], atol=1e-15)
    assert np.allclose(executed["pnl"], executed["gross_pnl"] - executed["cost"], atol=1e-15)
    assert daily["n_positions"].sum() == executed["holding"].sum()
    assert math.isclose(daily["cost"].sum(), 7.5e-4 * daily["turnover"].sum(), rel_tol=1e-12)


def random_case(rng, n_trades=20, n_sessions=60):
    index = pd.bdate_range("2020-01-01", periods=n_sessions)
    symbols = ["S0", "S1", "S2", "S3"]
    closes = pd.DataFrame(
        50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_sessions, len(symbols))), axis=0)), index=index, columns=symbols
    )
    rows = []
    for _ in range(n_trades):
        y, x = rng.choice(symbols, size=2, replace=False)
        side = int(rng.choice([-1, 1]))
        beta = rng.uniform(-1.5, 2.0)
        entry = int(rng.integers(5, n_sessions))
        exit_ = int(rng.integers(entry, n_sessions + 3))
        scale = (1 + abs(beta)) * 5
        rows.append(
            trade(
                index[entry],
                None if exit_ >= n_sessions else index[exit_],
                side=side,
                w_y=side / scale,
                w_x=-side * beta / scale,
                y=str(y),
                x=str(x),
            )
        )
    return closes, frame(*rows)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    low=st.floats(0.0, 200.0),
    extra=st.floats(0.0, 200.0),
    lag=st.sampled_from([0, 1]),
)
def test_higher_costs_never_raise_pnl(seed, low, extra, lag):
    closes, trades = random_case(np.random.default_rng(seed))
    cheap = execute(trades, closes, closes.index[5:], lag=lag, cost_bp=low)
    dear = execute(trades, closes, closes.index[5:], lag=lag, cost_bp=low + extra)
    assert (dear.daily["pnl"].to_numpy() <= cheap.daily["pnl"].to_numpy() + 1e-15).all()
    assert (dear.trades["pnl"].to_numpy() <= cheap.trades["pnl"].to_numpy() + 1e-15).all()
    assert np.array_equal(dear.daily["gross_pnl"].to_numpy(), cheap.daily["gross_pnl"].to_numpy())


def test_cost_sweep_is_monotone_in_total():
    closes, trades = random_case(np.random.default_rng(3), n_trades=30)
    totals = [execute(trades, closes, closes.index[5:], cost_bp=c).daily["pnl"].sum() for c in (0, 5, 10, 20)]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]


def test_history_before_the_range_is_ignored():
    longer = pd.concat([CLOSES.set_axis(SESSIONS - pd.Timedelta(days=7)), CLOSES])
    trades = frame(trade("2021-03-01", "2021-03-03"))
    assert execute(trades, longer, SESSIONS, cost_bp=10).daily.equals(
        execute(trades, CLOSES, SESSIONS, cost_bp=10).daily
    )


def test_no_trades_gives_a_flat_day_frame():
    result = execute(empty_trades(), CLOSES, SESSIONS, lag=1, cost_bp=5)
    assert (result.daily[["pnl", "turnover", "gross_exposure", "n_positions"]] == 0).all().all()
    assert list(result.trades.columns) == EXECUTED_COLUMNS and result.trades.empty


@pytest.mark.parametrize("cost", [-1, -0.01, "5", None, math.nan, math.inf, True])
def test_bad_cost_is_rejected_naming_the_field(cost):
    with pytest.raises(ValueError, match="cost_bp must be a finite number >= 0"):
        execute(frame(trade("2021-03-01", "2021-03-03")), CLOSES, SESSIONS, lag=1, cost_bp=cost)


@pytest.mark.parametrize("lag", [2, -1, 1.0, "1", True])
def test_bad_lag_is_rejected(lag):
    with pytest.raises(ValueError, match="lag must be 0 .* or 1"):
        execute(frame(trade("2021-03-01", "2021-03-03")), CLOSES, SESSIONS, lag=lag)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": "ZZZ"}, r"absent from closes: \['ZZZ'\]"),
        ({"entry_session": pd.Timestamp("2021-03-06")}, "entry_session is not a session of the range"),
        ({"exit_session": pd.Timestamp("2021-02-26")}, "exit_session .* is not a session of the range"),
        ({"entry_session": pd.Timestamp("2021-03-04")}, "is before entry_session"),
        ({"exit_reason": "whatever"}, "exit_reason must be one of"),
        ({"side": 0}, "side must be"),
        ({"side": -1}, "a long spread is long y"),
        ({"w_x": math.nan}, "must be finite"),
    ],
)
def test_bad_trades_are_rejected_naming_the_trade(change, message):
    row = trade("2021-03-01", "2021-03-03")
    row.update(change)
    with pytest.raises(ValueError, match=message):
        execute(frame(row), CLOSES, SESSIONS)


def test_missing_price_while_held_names_symbol_and_date():
    closes = CLOSES.copy()
    closes.loc["2021-03-03", "B"] = math.nan
    with pytest.raises(ValueError, match="close of B on 2021-03-03 is missing or not positive"):
        execute(frame(trade("2021-03-01", "2021-03-03")), closes, SESSIONS)
    # a gap outside the holding period does not matter
    closes.loc["2021-03-03", "B"] = 22.0
    closes.loc["2021-03-05", "B"] = math.nan
    execute(frame(trade("2021-03-01", "2021-03-03")), closes, SESSIONS)


def test_missing_columns_and_sessions_are_rejected():
    with pytest.raises(ValueError, match=r"missing column\(s\): \['w_x'\]"):
        execute(frame(trade("2021-03-01", "2021-03-03")).drop(columns="w_x"), CLOSES, SESSIONS)
    with pytest.raises(ValueError, match="closes lacks 1 session"):
        execute(empty_trades(), CLOSES.drop(index=SESSIONS[2]), SESSIONS)
