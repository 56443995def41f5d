"""Classical Engle-Granger baseline: periods, pair selection against statsmodels, trading rules,
sizing, planted and null panels, and point in time."""

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import coint

from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.quant.walkforward.baseline import (
    _trade_pair,
    baseline_periods,
    classical_baseline,
    select_baseline_pairs,
)
from pairs_assets.quant.walkforward.execution import TRADE_COLUMNS, execute
from pairs_assets.settings import EMBEDDED_BARS_FILE
from pairs_assets_tests.synthetic import synthetic_panel

FORMATION, TRADING = 252, 126


def panel(seed: int, n_periods: int = 4, planted: int = 1, walks: int = 3, half_life: float = 5.0):
    closes, pairs = synthetic_panel(planted, walks, FORMATION + TRADING * n_periods, seed=seed, half_life=half_life)
    return closes, closes.index[FORMATION:], pairs


def test_period_arithmetic():
    calendar = pd.bdate_range("2001-01-01", periods=1000)
    sessions = calendar[300:700]
    periods = baseline_periods(calendar, sessions, formation=252, trading=126, step=126)
    # trading periods start at the range start and every 126 sessions; the last one is cut short
    assert [(p.trading_start, p.trading_end) for p in periods] == [(0, 126), (126, 252), (252, 378), (378, 400)]
    # each formation window is the 252 calendar sessions just before its trading period
    assert [(p.formation_start, p.formation_end) for p in periods] == [(48, 300), (174, 426), (300, 552), (426, 678)]
    overlapping = baseline_periods(calendar, sessions, formation=100, trading=126, step=50)
    assert [p.trading_start for p in overlapping] == list(range(0, 400, 50))
    assert overlapping[-1].trading_end == 400 and overlapping[0].trading_end == 126


def test_the_first_formation_needs_252_sessions_before_the_range():
    closes, _, _ = panel(seed=1, n_periods=1)
    classical_baseline(closes, closes.index[252:])  # exactly enough
    with pytest.raises(
        InsufficientHistoryError, match=r"needs 252 sessions of closes before the range start 2000-12-19.*got 251"
    ):
        classical_baseline(closes, closes.index[251:])


def test_trades_use_the_formation_window_before_their_period():
    closes, sessions, _ = panel(seed=2)
    trades = classical_baseline(closes, sessions, sector="synthetic")
    assert len(trades) >= 10 and list(trades.columns) == TRADE_COLUMNS
    assert set(trades["strategy"]) == {"baseline"} and set(trades["sector"]) == {"synthetic"}
    start = closes.index.get_loc(sessions[0])
    for row in trades.itertuples(index=False):
        k = sessions.get_loc(row.entry_session) // TRADING  # the trading period of the entry
        period = sessions[k * TRADING : (k + 1) * TRADING]
        window = np.log(closes.iloc[start + k * TRADING - FORMATION : start + k * TRADING])
        assert window.index[-1] < period[0] and len(window) == FORMATION
        y_log, x_log = window[row.y].to_numpy(), window[row.x].to_numpy()
        beta, intercept = np.polyfit(x_log, y_log, 1)
        spread = y_log - beta * x_log - intercept
        mean, sigma = spread.mean(), math.sqrt(((spread - spread.mean()) ** 2).mean())  # population σ
        z_entry = (
            math.log(closes.at[row.entry_session, row.y])
            - beta * math.log(closes.at[row.entry_session, row.x])
            - intercept
            - mean
        ) / sigma
        assert row.z_entry == pytest.approx(z_entry, abs=1e-9)
        assert 2.0 < abs(row.z_entry) < 4.0 and row.side == -np.sign(row.z_entry)
        # unit gross per pair, 1/5 of capital, split by the hedge ratio
        assert abs(row.w_y) + abs(row.w_x) == pytest.approx(0.2, abs=1e-12)
        assert row.w_y == pytest.approx(row.side / (1 + abs(beta)) / 5, abs=1e-9)
        assert row.w_x == pytest.approx(-row.side * beta / (1 + abs(beta)) / 5, abs=1e-9)
        # every exit is decided inside the entry's trading period; forced at its last session
        assert row.entry_session < period[-1]
        if row.exit_reason == "period_end":
            assert row.exit_session == period[-1]
        elif row.exit_reason == "exit":
            assert row.exit_session <= period[-1] and row.z_exit * row.side >= 0.0
        else:
            assert row.exit_reason == "stop" and abs(row.z_exit) > 4.0


def test_pair_selection_matches_statsmodels_coint_on_real_data():
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True)
    window = closes.loc[:"1999-12-31", ["BBY", "HD", "KO", "PEP", "PG", "WMT"]].iloc[-252:]
    logs = np.log(window)
    expected = []
    for i, a in enumerate(logs.columns):
        for b in logs.columns[i + 1 :]:
            p_ab = coint(logs[a], logs[b], trend="c", autolag="aic")[1]
            p_ba = coint(logs[b], logs[a], trend="c", autolag="aic")[1]
            expected.append((f"{a}-{b}" if p_ab <= p_ba else f"{b}-{a}", min(p_ab, p_ba)))
    expected.sort(key=lambda item: (item[1], item[0]))
    every = select_baseline_pairs(window, top_n=15, pvalue_max=1.0)
    assert list(every["pair_id"]) == [pair for pair, _ in expected]
    assert np.allclose(every["eg_pvalue"], [p for _, p in expected], atol=1e-8)
    chosen = select_baseline_pairs(window, top_n=2, pvalue_max=0.05)
    assert list(chosen["pair_id"]) == [pair for pair, p in expected if p < 0.05][:2] == ["WMT-HD", "PEP-PG"]
    assert (chosen["spread_std"] > 0).all()


def test_trading_rules_on_known_z_paths():
    bands = {"entry_z": 2.0, "exit_z": 0.0, "stop_z": 4.0}
    z = np.array([0.0, 2.0, 2.5, 1.0, -0.1, -2.2, -4.5, -3.0, 3.0, 0.0, 2.1])
    # 2.0 is not > 2; short at 2.5, exit when z crosses 0 (−0.1); long at −2.2, stopped at −4.5;
    # no re-entry of the pair for the rest of the period
    assert _trade_pair(z, period_open_at_end=False, **bands) == [(2, 4, -1, "exit"), (5, 6, 1, "stop")]
    z = np.array([0.0, 5.0, 3.0, math.nan, 2.5, 0.5])
    # |z| > 4 is no entry; NaN is no decision; open at the period's last session → period_end
    assert _trade_pair(z, period_open_at_end=False, **bands) == [(2, 5, -1, "period_end")]
    assert _trade_pair(z, period_open_at_end=True, **bands) == [(2, None, -1, "range_end")]
    # an exit through zero may reverse on the same close; no entry on the last session
    z = np.array([2.5, -2.5, 0.3, 0.0, -3.0])
    assert _trade_pair(z, period_open_at_end=False, **bands) == [(0, 1, -1, "exit"), (1, 2, 1, "exit")]


def test_the_last_period_cut_short_leaves_trades_open_at_the_range_end():
    closes, sessions, _ = panel(seed=4, n_periods=3)
    trades = classical_baseline(closes, sessions[:300])  # periods [0,126), [126,252), [252,300)
    open_ = trades[trades["exit_session"].isna()]
    assert set(open_["exit_reason"]) <= {"range_end"}
    assert (open_["entry_session"] >= sessions[252]).all() and open_["z_exit"].isna().all()
    assert not (trades["exit_reason"].eq("period_end") & trades["exit_session"].eq(sessions[299])).any()


def test_a_planted_mean_reverting_pair_makes_money_gross():
    for seed in range(5):
        closes, sessions, pairs = panel(seed=seed, n_periods=6, planted=1, walks=2)
        result = execute(classical_baseline(closes, sessions), closes, sessions, lag=1, cost_bp=0)
        planted = result.trades[result.trades["pair_id"] == "-".join(pairs[0])]
        assert len(planted) >= 5, seed
        assert planted["gross_pnl"].sum() > 0.0, seed
        assert (planted["gross_pnl"] > 0).mean() > 0.6, seed


def test_independent_random_walks_do_not_make_money_on_average():
    totals, n_trades = [], 0
    for seed in range(60):
        closes, sessions, _ = panel(seed=10_000 + seed, n_periods=4, planted=0, walks=6)
        result = execute(classical_baseline(closes, sessions), closes, sessions, lag=1, cost_bp=0)
        totals.append(result.daily["gross_pnl"].sum())
        n_trades += len(result.trades)
    totals = np.array(totals)
    assert n_trades > 200  # spurious pairs are found and traded: the check is not vacuous
    t_stat = totals.mean() / (totals.std(ddof=1) / math.sqrt(totals.size))
    assert t_stat < 2.0, f"random walks earned {totals.mean():.4f} per panel on average, t = {t_stat:.2f}"


@pytest.mark.parametrize("scramble_after", [300, 400, 520, 640])
def test_scrambling_bars_after_t_changes_no_decision_up_to_t(scramble_after):
    closes, sessions, _ = panel(seed=6, n_periods=4)
    cutoff = closes.index[scramble_after]
    rng = np.random.default_rng(scramble_after)
    scrambled = closes.copy()
    later = scrambled.index > cutoff
    scrambled.loc[later] = closes.loc[later].to_numpy()[rng.permutation(int(later.sum()))] * rng.uniform(
        0.5, 2.0, (int(later.sum()), closes.shape[1])
    )
    original = classical_baseline(closes, sessions)
    changed = classical_baseline(scrambled, sessions)
    assert not original.equals(changed)  # the scramble does change later decisions
    entry_fields = ["pair_id", "y", "x", "side", "w_y", "w_x", "entry_session", "z_entry"]
    before = original[original["entry_session"] <= cutoff].reset_index(drop=True)
    after = changed[changed["entry_session"] <= cutoff].reset_index(drop=True)
    assert len(before) > 0
    pd.testing.assert_frame_equal(before[entry_fields], after[entry_fields])
    for first, second in zip(before.itertuples(index=False), after.itertuples(index=False)):
        decided = lambda row: pd.notna(row.exit_session) and row.exit_session <= cutoff  # noqa: E731
        assert decided(first) == decided(second)
        if decided(first):
            assert (first.exit_session, first.z_exit, first.exit_reason) == (
                second.exit_session,
                second.z_exit,
                second.exit_reason,
            )


def test_fewer_than_two_symbols_trade_nothing():
    closes, sessions, _ = panel(seed=1, n_periods=1, planted=0, walks=1)
    trades = classical_baseline(closes, sessions, sector="industrial")
    assert trades.empty and list(trades.columns) == TRADE_COLUMNS


def test_a_symbol_with_missing_formation_bars_is_left_out():
    closes, sessions, pairs = panel(seed=3, n_periods=1)
    broken = closes.copy()
    broken.iloc[10, broken.columns.get_loc(pairs[0][0])] = math.nan
    trades = classical_baseline(broken, sessions)
    assert pairs[0][0] not in set(trades["y"]).union(trades["x"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"formation": 10}, "formation must be an integer >= 20"),
        ({"trading": 0}, "trading must be an integer >= 1"),
        ({"step": 2.5}, "step must be an integer >= 1"),
        ({"top_n": 0}, "top_n must be an integer >= 1"),
        ({"pvalue_max": 0.0}, r"pvalue_max must be in \(0, 1\]"),
        ({"entry_z": 5.0}, "0 <= exit_z < entry_z < stop_z"),
        ({"exit_z": -0.5}, "0 <= exit_z < entry_z < stop_z"),
    ],
)
def test_bad_settings_are_rejected_naming_the_field(settings, message):
    closes, sessions, _ = panel(seed=1, n_periods=1)
    with pytest.raises(ValueError, match=message):
        classical_baseline(closes, sessions, **settings)


def test_range_sessions_missing_from_closes_are_rejected():
    closes, sessions, _ = panel(seed=1, n_periods=1)
    with pytest.raises(ValueError, match="session 2030-01-01 of the range is not in closes"):
        classical_baseline(closes, sessions.append(pd.DatetimeIndex(["2030-01-01"])))


def test_anchored_periods_follow_the_calendar_not_the_range():
    calendar = pd.bdate_range("2001-01-01", periods=1000)
    # anchor 10: calendar position p starts a period when (p + 10) % 126 == 0 → 116, 242, 368, …
    long = baseline_periods(calendar, calendar[300:900], formation=100, trading=126, step=126, anchor=10)
    short = baseline_periods(calendar, calendar[500:900], formation=100, trading=126, step=126, anchor=10)
    assert [p.formation_end for p in long] == [242, 368, 494, 620, 746, 872]
    assert [p.formation_end for p in short] == [494, 620, 746, 872]
    # the period under way at the range start trades from the range's first session
    assert (short[0].trading_start, short[0].trading_end) == (0, 120) and short[-1].trading_end == 400
    # a calendar starting 26 sessions later with anchor 36 is the same calendar
    moved = baseline_periods(calendar[26:], calendar[500:900], formation=100, trading=126, step=126, anchor=36)
    assert [p.formation_end + 26 for p in moved] == [p.formation_end for p in short]
    with pytest.raises(InsufficientHistoryError, match="needs 106 sessions of closes before the range start"):
        baseline_periods(calendar[395:], calendar[500:900], formation=100, trading=126, step=126, anchor=10 + 395)


def test_the_same_session_gets_the_same_baseline_whatever_the_range():
    # issue 18 item 5, on the embedded data: 2011–2022 inside a 1995–2022 run equals 2011–2022 alone,
    # whatever history precedes it — daily P&L, positions and trades
    from pairs_assets.assets.walk_forward import baseline_session_number
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings, run_baseline

    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True)
    settings = WalkForwardSettings(costs=[5.0])
    for symbols in (["BBY", "HD", "KO", "PEP", "PG", "WMT"], ["BAC", "JPM"]):
        sector = closes[symbols]

        def run(start, history, sector=sector):
            sessions = sector.loc[start:"2022-12-28"].index
            panel = sector.iloc[max(0, sector.index.get_loc(sessions[0]) - history) :]
            return run_baseline(panel, sessions, settings, "s", baseline_session_number(panel.index[0]))[5.0]

        inside, alone, other = run("1995-01-03", 2000), run("2011-01-03", 400), run("2011-01-03", 1500)
        pd.testing.assert_frame_equal(inside[0].loc["2011-01-03":], alone[0])
        in_range = inside[1][inside[1]["entry_exec"] >= "2011-01-03"].reset_index(drop=True)
        pd.testing.assert_frame_equal(in_range, alone[1])
        pd.testing.assert_frame_equal(alone[0], other[0])
        assert len(alone[1]) >= 4  # 47 consumer trades, 4 financial
    # without the anchor the periods follow the range start and the same years differ
    sessions = sector.loc["2011-01-03":"2022-12-28"].index
    loose = run_baseline(sector, sessions, settings, "s")[5.0][0]
    assert not loose.equals(inside[0].loc["2011-01-03":])
