"""The distance method (GGR 2006): SSD and selection against numpy on the embedded closes, the
configs the one rule trades (entry at 2σ, exit at the cross, closed at the period end), no
look-ahead, calendar-anchored periods, and bad inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.assets.walk_forward import baseline_session_number
from pairs_assets.quant.distance import (
    NO_STOP_Z,
    DistanceHistoryError,
    distance_periods,
    pair_distances,
    select_distance_pairs,
)
from pairs_assets.quant.walkforward.engine import WalkForwardSettings
from pairs_assets.quant.walkforward.replay import SectorPanel, trade_configs
from pairs_assets.settings import EMBEDDED_BARS_FILE
from pairs_assets.strategies.base import SectorContext, StrategyPluginError
from pairs_assets.strategies.distance import DistanceStrategy, distance_config, distance_pairs

CONSUMER = ["BBY", "HD", "KO", "PEP", "PG", "WMT"]
HEALTHCARE = ["JNJ", "LLY", "MRK", "PFE", "UNH"]


@pytest.fixture(scope="module")
def embedded() -> pd.DataFrame:
    return pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", *CONSUMER, *HEALTHCARE])


def context(closes, start, end, *, sector="consumer", anchor=None, costs=(0.0,)) -> SectorContext:
    index = closes.index
    sessions = index[(index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))]
    first = index.get_loc(sessions[0])
    return SectorContext(
        panel=SectorPanel(sector, closes, "embedded"),
        symbols=tuple(closes.columns),
        sessions=sessions,
        as_of=index[first - 1 : index.get_loc(sessions[-1])],
        effective=list(sessions),
        settings=WalkForwardSettings(costs=list(costs), lag=1, start=str(sessions[0].date()), end=str(end)),
        next_session=partitions.next_session,
        anchor=anchor,
    )


def test_ssd_sigma_and_selection_match_a_direct_numpy_computation(embedded):
    for symbols, start in ((CONSUMER, "2005-03-01"), (HEALTHCARE, "1998-07-01"), (CONSUMER + HEALTHCARE, "2016-01-04")):
        window = embedded[symbols].loc[start:].iloc[:252]
        expected = []
        for a, b in itertools.combinations(sorted(symbols), 2):
            pa, pb = window[a].to_numpy(), window[b].to_numpy()
            spread = np.log(pa / pa[0]) - np.log(pb / pb[0])
            expected.append((f"{a}-{b}", float(np.sum(spread**2)), float(np.std(spread)), math.log(pa[0] / pb[0])))
        expected.sort(key=lambda r: (r[1], r[0]))
        got = pair_distances(window)
        assert list(got["pair_id"]) == [r[0] for r in expected]
        np.testing.assert_allclose(got["ssd"], [r[1] for r in expected], rtol=1e-12)
        np.testing.assert_allclose(got["sigma"], [r[2] for r in expected], rtol=1e-12)
        np.testing.assert_allclose(got["intercept"], [r[3] for r in expected], rtol=1e-12, atol=1e-15)
        assert list(got["rank"]) == list(range(1, len(expected) + 1))
        top = select_distance_pairs(window, 5)
        assert list(top["pair_id"]) == [r[0] for r in expected[:5]]
        assert list(distance_pairs(window, DistanceStrategy("distance").params)["pair_id"]) == list(top["pair_id"])


def test_ties_go_by_pair_id_and_a_constant_spread_or_a_gap_is_left_out(embedded):
    window = embedded[["KO", "PEP"]].iloc[:60].copy()
    window["AAA"] = window["PEP"] * 3.0  # AAA-KO and KO-PEP: the same normalised spread (up to sign)
    window["ZZZ"] = window["KO"]
    window.loc[window.index[10], "ZZZ"] = np.nan  # a gap: not usable in this window
    got = pair_distances(window)
    assert set(got["pair_id"]) == {"AAA-KO", "AAA-PEP", "KO-PEP"}
    assert got.loc[got["pair_id"] == "AAA-PEP", "sigma"].iloc[0] < 1e-12  # identical up to scale
    top = select_distance_pairs(window, 5)
    assert list(top["pair_id"]) == ["AAA-KO", "KO-PEP"]  # AAA-PEP (σ 0) skipped; the tie by pair id
    assert top.loc[0, "ssd"] == pytest.approx(top.loc[1, "ssd"], rel=1e-12)
    assert list(top["rank"]) == [1, 2]


def test_the_config_is_ggr_in_the_rules_terms(embedded):
    window = embedded[CONSUMER].loc["2009-01-02":].iloc[:252]
    params = DistanceStrategy("distance", {"top_n": 4}).params
    pairs = distance_pairs(window, params)
    config = distance_config(pairs, window.index[-1], "2010-01-04", "consumer", params, symbols=CONSUMER)
    assert [p.pair_id for p in config.pairs] == list(pairs["pair_id"])
    for p, row in zip(config.pairs, pairs.itertuples()):
        assert (p.hedge_ratio, p.spread_mean) == (1.0, 0.0)
        assert p.intercept == pytest.approx(math.log(window[p.y].iloc[0] / window[p.x].iloc[0]), rel=1e-12)
        assert p.spread_std == pytest.approx(row.sigma)
        assert (p.levels.entry_z, p.levels.exit_z, p.levels.stop_z) == (2.0, 0.0, NO_STOP_Z)
        assert (p.sizing.y_fraction, p.sizing.x_fraction) == (0.25, 0.25)
        # the rule's spread at the window's last close is the normalised spread there
        spread = math.log(window[p.y].iloc[-1]) - math.log(window[p.x].iloc[-1]) - p.intercept
        normalised = math.log(window[p.y].iloc[-1] / window[p.y].iloc[0]) - math.log(
            window[p.x].iloc[-1] / window[p.x].iloc[0]
        )
        assert spread == pytest.approx(normalised, abs=1e-12)


def _hand_built(trading_spreads: list[float]):
    """Two symbols: a 20-session formation with a known spread, then the trading spreads (in σ)."""
    formation = np.array([0.0, 0.02, -0.02, 0.03, -0.01, 0.0, 0.01, -0.03, 0.02, 0.0] * 2)
    sigma = float(np.std(formation))
    spreads = np.concatenate([formation, np.asarray(trading_spreads) * sigma])
    index = pd.bdate_range("2020-01-01", periods=len(spreads))
    closes = pd.DataFrame({"AAA": 50.0 * np.exp(spreads), "BBB": np.full(len(spreads), 80.0)}, index=index)
    return closes, index[20:]


def test_entry_at_two_sigma_exit_at_the_cross_and_close_at_the_period_end():
    z = [0.0, 1.999, 2.001, 1.0, 0.1, -0.01, -1.999, -2.5, -0.5, 0.0, 3.0, 0.5, -2.2, 2.4, 2.1]
    closes, sessions = _hand_built(z)
    strategy = DistanceStrategy("distance", {"formation": 20, "trading": 12, "top_n": 1})
    ctx = context(closes, sessions[0], sessions[-1], sector="hand")
    configs, traded = strategy.configs(ctx)
    trades = trade_configs(configs, closes, traded, strategy_name="distance", on_drop="exit", max_holding=0)
    got = [(t.side, t.entry_session, t.exit_session, t.exit_reason, round(t.z_entry, 3)) for t in trades.itertuples()]
    s = sessions
    assert got[:3] == [
        (-1, s[2], s[5], "exit", 2.001),  # 1.999σ does not enter, 2.001σ shorts; the cross (−0.01σ) exits
        (1, s[7], s[9], "exit", -2.5),  # −1.999σ does not; −2.5σ goes long; z = 0 is the cross
        (-1, s[10], s[11], "config_drop", 3.0),  # open at the period's last session: closed at its close
    ]
    # the next period re-forms on the 20 sessions before it (its own σ): nothing carried over
    assert all(t.entry_session >= s[12] for t in trades.iloc[3:].itertuples())
    assert configs[s[10]].pairs == []  # effective on the period's last session: no pair, no entry
    # the weights: one dollar long, one short, the whole sector's capital on the one pair
    assert (trades.loc[0, "w_y"], trades.loc[0, "w_x"]) == (-1.0, 1.0)
    executed = strategy.walk_forward_sector(ctx).executions["distance"][0.0]
    assert len(executed[1]) == len(trades)


def test_no_look_ahead_later_bars_scrambled_give_the_same_decisions(embedded):
    closes = embedded[CONSUMER]
    strategy = DistanceStrategy("distance")
    anchor = baseline_session_number(closes.index[0])
    decision = pd.Timestamp("2012-03-15")
    scrambled = closes.copy()
    later = scrambled.index > decision
    rng = np.random.default_rng(7)
    scrambled.loc[later] = scrambled.loc[later].to_numpy()[rng.permutation(int(later.sum()))] * rng.uniform(
        0.5, 2.0, size=(int(later.sum()), len(CONSUMER))
    )

    def decisions(frame):
        ctx = context(frame, "2011-01-03", "2012-12-28", anchor=anchor)
        configs, traded = strategy.configs(ctx)
        trades = trade_configs(configs, frame, traded, on_drop="exit", max_holding=0)
        early = {d: c.model_dump() for d, c in configs.items() if d <= decision}
        rows = [
            (t.pair_id, t.side, t.entry_session, t.z_entry, t.exit_session if t.exit_session <= decision else None)
            for t in trades.itertuples()
            if t.entry_session <= decision
        ]
        return early, rows, trades

    (c1, r1, t1), (c2, r2, t2) = decisions(closes), decisions(scrambled)
    assert c1 == c2 and r1 == r2 and len(r1) >= 5
    assert not t1.equals(t2)  # the scramble does change what follows


def test_periods_are_anchored_to_the_calendar_whatever_the_range(embedded):
    closes = embedded[HEALTHCARE]
    strategy = DistanceStrategy("distance")

    def run(start, history):
        first = closes.index.get_loc(closes.loc[start:].index[0])
        panel = closes.iloc[max(0, first - history) :]
        ctx = context(panel, start, "2014-12-31", anchor=baseline_session_number(panel.index[0]), costs=(5.0,))
        return strategy.walk_forward_sector(ctx).executions["distance"][5.0]

    long, short, other = run("2010-01-04", 600), run("2012-05-01", 400), run("2012-05-01", 1000)
    pd.testing.assert_frame_equal(long[0].loc["2012-05-01":], short[0])
    pd.testing.assert_frame_equal(short[0], other[0])
    kept = long[1][long[1]["entry_exec"] >= "2012-05-01"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, short[1])
    assert len(short[1]) >= 5 and short[0]["n_positions"].iloc[0] > 0  # a position carried in
    # each period starts at a session number that is a multiple of 126
    index = closes.index
    periods = distance_periods(
        index, index.get_loc("2012-05-01"), index.get_loc("2014-12-31"), 252, 126, baseline_session_number(index[0])
    )
    assert all(baseline_session_number(index[p.trading_start]) % 126 == 0 for p in periods)
    assert periods[0].trading_start < index.get_loc("2012-05-01") < periods[0].trading_end


def test_bad_inputs_one_clear_error(embedded):
    closes = embedded[CONSUMER].iloc[:300]
    ctx = context(closes, closes.index[100], closes.index[-1], anchor=None)
    with pytest.raises(DistanceHistoryError, match=r"strategy 'ggr', sector consumer: the formation window of 252"):
        DistanceStrategy("ggr").walk_forward_sector(ctx)
    with pytest.raises(
        StrategyPluginError, match=r"strategy 'distance': parameter top_n: .*greater than or equal to 1"
    ):
        DistanceStrategy("distance", {"top_n": 0})
    with pytest.raises(StrategyPluginError, match="parameter lookback"):
        DistanceStrategy("distance", {"lookback": 10})
    assert DistanceStrategy("distance").required_history(ctx.settings) == 252 + 126 - 1
