"""The paper book's accounting against hand-computed numbers (quant.paper_book)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant import paper_book as pb
from pairs_assets.quant.walkforward.execution import cost_rate

D1, D2, D3 = pd.Timestamp("2022-03-01"), pd.Timestamp("2022-03-02"), pd.Timestamp("2022-03-03")
CLOSES = pd.DataFrame({"AAA": [101.0, 103.0, 102.0], "BBB": [49.0, 50.0, 48.0]}, index=[D1, D2, D3])


def fill(session, leg, symbol, qty, price, pair_id="AAA-BBB", sector="tech"):
    return {
        "bar_timestamp": pd.Timestamp(session) + pd.Timedelta(hours=15),
        "session": session,
        "sector": sector,
        "pair_id": pair_id,
        "leg": leg,
        "symbol": symbol,
        "qty": qty,
        "price": price,
    }


FILLS = pd.DataFrame(
    [
        fill(D1, "y", "AAA", 10.0, 100.0),
        fill(D1, "x", "BBB", -20.0, 50.0),  # long the spread
        fill(D2, "y", "AAA", -4.0, 103.0),  # a partial close of y
        fill(D3, "y", "AAA", -6.0, 102.0),
        fill(D3, "x", "BBB", 20.0, 48.0),  # flat
    ]
)


def test_realised_unrealised_costs_and_exposure_by_hand():
    marks = pb.mark_book(FILLS, CLOSES, [D1, D2, D3], cost_bp=10.0)
    pair = marks.pairs.set_index("session")
    # D1: costs 0.001·(1000 + 1000) = 2; unrealised 10·(101−100) + (−20)·(49−50) = 30
    assert pair.loc[D1, "cost"] == pytest.approx(2.0)
    assert pair.loc[D1, "unrealised"] == pytest.approx(30.0) and pair.loc[D1, "realised"] == 0.0
    assert pair.loc[D1, "net_pnl"] == pytest.approx(28.0) and pair.loc[D1, "pnl"] == pytest.approx(28.0)
    assert pair.loc[D1, "gross_exposure"] == pytest.approx(1010.0 + 980.0)
    assert pair.loc[D1, "net_exposure"] == pytest.approx(30.0)
    assert (pair.loc[D1, "side"], pair.loc[D1, "opened"]) == (1, D1)
    # D2: sells 4 at 103 → realised 4·3 = 12, cost 0.412; 6 left at 100 → unrealised 18 (+0 on BBB)
    assert pair.loc[D2, "realised"] == pytest.approx(12.0)
    assert pair.loc[D2, "unrealised"] == pytest.approx(18.0)
    assert pair.loc[D2, "cost"] == pytest.approx(2.412)
    assert pair.loc[D2, "net_pnl"] == pytest.approx(27.588) and pair.loc[D2, "pnl"] == pytest.approx(-0.412)
    assert pair.loc[D2, "shares_y"] == 6.0 and pair.loc[D2, "shares_x"] == -20.0
    # D3: y realises 6·2 = 12 more, x 20·(50−48) = 40; costs +0.612 +0.96 → net 24 + 40 − 3.984
    assert pair.loc[D3, "realised"] == pytest.approx(64.0)
    assert pair.loc[D3, "cost"] == pytest.approx(3.984)
    assert pair.loc[D3, "net_pnl"] == pytest.approx(60.016) and pair.loc[D3, "pnl"] == pytest.approx(32.428)
    assert pair.loc[D3, "unrealised"] == 0.0 and pair.loc[D3, "side"] == 0 and pd.isna(pair.loc[D3, "opened"])
    assert pair.loc[D3, "gross_exposure"] == 0.0
    # the total is the pair's (one pair); the session P&L adds up to the final net P&L
    assert marks.total["net_pnl"].tolist() == pytest.approx([28.0, 27.588, 60.016])
    assert marks.total["pnl"].sum() == pytest.approx(60.016)
    assert marks.total["held_pairs"].tolist() == [1, 1, 0]


def test_the_cost_is_the_walk_forwards_cost_rate():
    marks = pb.mark_book(FILLS.iloc[:2], CLOSES, [D1], cost_bp=5.0)
    assert marks.total.loc[D1, "cost"] == pytest.approx(cost_rate(5.0) * 2000.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cost_bp must be a finite number >= 0"):
        pb.mark_book(FILLS, CLOSES, [D1], cost_bp=-1.0)


def test_adding_averages_and_a_reversal_opens_the_rest_at_the_fill():
    fills = pd.DataFrame(
        [
            fill(D1, "y", "AAA", 10.0, 100.0),
            fill(D1, "y", "AAA", 10.0, 110.0),  # avg 105
            fill(D2, "y", "AAA", -25.0, 103.0),  # closes 20 (realised 20·(103−105) = −40), opens −5 at 103
        ]
    )
    legs = pb.mark_book(fills, CLOSES, [D1, D2], cost_bp=0.0).legs.set_index("session")
    assert legs.loc[D1, "avg_price"] == pytest.approx(105.0) and legs.loc[D1, "shares"] == 20.0
    assert legs.loc[D2, "shares"] == -5.0 and legs.loc[D2, "avg_price"] == 103.0
    pair = pb.mark_book(fills, CLOSES, [D1, D2], cost_bp=0.0).pairs.set_index("session")
    assert pair.loc[D2, "realised"] == pytest.approx(-40.0) and pair.loc[D2, "unrealised"] == 0.0  # marked at 103
    assert pair.loc[D1, "unrealised"] == pytest.approx(20 * (101 - 105))


def test_sectors_and_total_sum_the_pairs():
    fills = pd.concat(
        [FILLS.iloc[:2], pd.DataFrame([fill(D1, "y", "BBB", -10.0, 50.0, pair_id="BBB-AAA", sector="other")])]
    )
    marks = pb.mark_book(fills, CLOSES, [D1], cost_bp=0.0)
    assert marks.sectors.loc[(D1, "tech"), "unrealised"] == pytest.approx(30.0)
    assert marks.sectors.loc[(D1, "other"), "unrealised"] == pytest.approx(-10 * (49 - 50))
    assert marks.total.loc[D1, "unrealised"] == pytest.approx(40.0) and marks.total.loc[D1, "held_pairs"] == 2


def test_a_held_symbol_without_a_close_and_a_bad_fill_are_named():
    closes = CLOSES.copy()
    closes.loc[D2, "BBB"] = np.nan
    with pytest.raises(
        pb.BookInputError, match=r"^pair AAA-BBB: BBB is held \(-20 shares\) but has no usable close on 2022-03-02$"
    ):
        pb.mark_book(FILLS, closes, [D1, D2], cost_bp=0.0)
    bad = FILLS.copy()
    bad.loc[1, "qty"] = math.nan
    with pytest.raises(pb.BookInputError, match=r"^pair AAA-BBB: fill of BBB at .* has qty nan"):
        pb.mark_book(bad, CLOSES, [D1], cost_bp=0.0)


def test_drawdown_is_the_walk_forward_plots():
    dd = pb.drawdown(pd.Series([0.01, -0.02, 0.005]))
    assert dd.tolist() == pytest.approx([0.0, -0.02, -0.015])
    assert pb.drawdown(pd.Series([-0.01])).tolist() == pytest.approx(
        [-0.01]
    )  # from the start, not from the first close


def test_position_limit_and_book_volatility_by_hand():
    legs = pb.mark_book(FILLS.iloc[:2], CLOSES, [D1], cost_bp=0.0).legs
    assert pb.position_limit_breaches(legs, equity=10_000.0, max_position=0.10) == [
        "AAA-BBB AAA +10 shares = 10.10% of equity > 10%"
    ]
    assert pb.position_limit_breaches(legs, equity=10_200.0, max_position=0.10) == []
    # P&L changes of (+10 AAA, −20 BBB): 10·1 − 20·0 = 10 and 10·2 − 20·(−1) = 40 → sample σ √450
    closes = pd.DataFrame({"AAA": [100.0, 101.0, 103.0], "BBB": [50.0, 50.0, 49.0]})
    assert pb.book_daily_volatility({"AAA": 10.0, "BBB": -20.0}, closes, window=5) == pytest.approx(math.sqrt(450.0))
    assert pb.book_daily_volatility({}, closes, window=5) == 0.0
    with pytest.raises(pb.BookInputError, match=r"no closes of held symbol\(s\) \['CCC'\]"):
        pb.book_daily_volatility({"CCC": 1.0}, closes, window=5)


def test_held_but_not_replayed_names_pair_and_session():
    trades = pd.DataFrame(
        {"pair_id": ["AAA-BBB", "CCC-DDD"], "side": [1, -1], "entry_session": [D1, D1], "exit_session": [pd.NaT, D2]}
    )
    sides = pb.replay_sides(trades, D2)
    assert sides == {"AAA-BBB": 1}  # CCC-DDD exited at D2's close
    held = {"AAA-BBB": (1, D1), "CCC-DDD": (-1, D1)}
    assert pb.held_but_not_replayed(held, sides, D2) == [
        "CCC-DDD on 2022-03-02: book side -1 (opened 2022-03-01), walk-forward flat"
    ]
    assert pb.held_but_not_replayed({"AAA-BBB": (-1, D1)}, sides, D2) == [
        "AAA-BBB on 2022-03-02: book side -1 (opened 2022-03-01), walk-forward side +1"
    ]


def test_no_fills_is_a_flat_book():
    empty = pd.DataFrame({c: [] for c in pb.FILL_COLUMNS})
    marks = pb.mark_book(empty, CLOSES, [D1, D2], cost_bp=5.0)
    assert marks.pairs.empty and marks.total["net_pnl"].tolist() == [0.0, 0.0]
