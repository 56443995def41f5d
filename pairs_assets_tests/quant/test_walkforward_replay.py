"""The walk-forward's replay: configs from the stage functions, trades from configs, point in time."""

import math

import numpy as np
import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.quant.walkforward.engine import WalkForwardError, WalkForwardSettings, run_walk_forward
from pairs_assets.quant.walkforward.execution import execute
from pairs_assets.quant.walkforward.replay import SectorPanel, _rolling_pair_correlations, build_configs, trade_configs
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.planted import planted_closes
from pairs_assets_tests.trading_configs import garch_block, pair_config, trading_config

SESSIONS = partitions.sessions_in_range("2022-06-01", "2022-06-30")


def _one_pair_configs(z_path, *, spread_std=0.01):
    """Configs (one per session) listing Y-X with β 1, a 0, mean 0 and σ_forecast = σ_∞ (z = spread/σ)."""
    garch = garch_block(omega=1e-5 * 0.05, alpha=0.05, beta=0.9, sigma_forecast=math.sqrt(1e-5))
    pair = pair_config("Y", "X", hedge_ratio=1.0, intercept=0.0, spread_mean=0.0, spread_std=spread_std, garch=garch)
    sessions = SESSIONS[: len(z_path) + 1]
    configs = {
        sessions[i]: trading_config(
            [pair], as_of=str(sessions[i].date()), effective=str(sessions[i + 1].date()), sector="s"
        )
        for i in range(len(z_path))
    }
    x = np.full(len(sessions), 100.0)
    y = 100.0 * np.exp(np.concatenate([[0.0], np.asarray(z_path) * spread_std]))
    closes = pd.DataFrame({"X": x, "Y": y}, index=sessions)
    return configs, closes, sessions[1:], pair


def test_trades_follow_the_levels_by_hand():
    # entry 2, exit 0.5, stop 3.5; z at the decision closes of sessions 1..7
    configs, closes, sessions, pair = _one_pair_configs([2.5, 1.0, 0.3, -2.2, -3.6, -2.5, -1.0])
    trades = trade_configs(configs, closes, sessions, max_holding=0)
    assert list(trades["side"]) == [-1, 1]
    assert list(trades["entry_session"]) == [sessions[0], sessions[3]]
    assert list(trades["exit_session"]) == [sessions[2], sessions[4]]
    assert list(trades["exit_reason"]) == ["exit", "stop"]
    assert trades["z_entry"].round(9).tolist() == [2.5, -2.2]
    # short spread: sell y, buy x (β > 0), sized as the config says
    assert trades.loc[0, "w_y"] == -pair.sizing.y_fraction and trades.loc[0, "w_x"] == pair.sizing.x_fraction
    # after the stop, |z| = 2.5 is not re-entered until it came back below entry_z: no third trade


def test_max_holding_and_dropped_pairs():
    configs, closes, sessions, _ = _one_pair_configs([2.5, 1.8, 1.6, 1.4, 1.2, 1.1])
    held = trade_configs(configs, closes, sessions, max_holding=3)
    assert list(held["exit_reason"]) == ["max_holding"] and held.loc[0, "exit_session"] == sessions[3]
    # the pair leaves the config after its entry: 'exit' closes at the next close, 'keep' trades on
    first = {k: v for k, v in configs.items() if v.effective_session == str(sessions[0].date())}
    dropped = trade_configs(first, closes, sessions, on_drop="exit")
    assert list(dropped["exit_reason"]) == ["config_drop"] and dropped.loc[0, "exit_session"] == sessions[1]
    kept = trade_configs(first, closes, sessions, on_drop="keep", max_holding=0)
    assert list(kept["exit_reason"]) == ["range_end"] and pd.isna(kept.loc[0, "exit_session"])


def test_intraday_bars_decide_on_every_bar_and_hold_for_sessions():
    """Two bars a session (a midday bar and the close): each bar is a decision with its session's config,
    max_holding counts sessions, and executing on the bar index with lag 1 fills at the next bar."""
    configs, daily, sessions, _ = _one_pair_configs([0.0, 0.0, 0.0, 0.0])
    # z per bar: enter short at session 1's midday bar, exit at its close; enter again at session 2's
    # close and hold (|z| between exit and entry) until max_holding = 1 session closes it at session 3's midday bar
    z = [2.5, 0.3, 1.0, 2.4, 1.5, 1.2, 1.0, 0.9]
    bars, days = [], []
    for day in sessions:
        midday, close = partitions.session_open_utc(day) + pd.Timedelta(hours=3), partitions.session_close_utc(day)
        bars += [midday.tz_convert(None), close.tz_convert(None)]
        days += [day, day]
    closes = pd.DataFrame({"X": 100.0, "Y": 100.0 * np.exp(np.asarray(z) * 0.01)}, index=pd.DatetimeIndex(bars))
    trades = trade_configs(configs, closes, closes.index, max_holding=1, bar_sessions=days)
    assert list(trades["side"]) == [-1, -1]
    assert list(trades["entry_session"]) == [bars[0], bars[3]]
    assert list(trades["exit_session"]) == [bars[1], bars[4]]
    assert list(trades["exit_reason"]) == ["exit", "max_holding"]
    executed = execute(trades, closes, closes.index, lag=1).trades
    assert list(executed["entry_exec"]) == [bars[1], bars[4]] and list(executed["exit_exec"]) == [bars[2], bars[5]]
    # one bar per session: the daily path, unchanged
    assert trade_configs(configs, daily, sessions, bar_sessions=list(sessions)).equals(
        trade_configs(configs, daily, sessions)
    )
    with pytest.raises(ValueError, match="bar_sessions has 2 entries for 8 bars"):
        trade_configs(configs, closes, closes.index, bar_sessions=days[:2])


def test_bad_trading_settings_are_refused():
    configs, closes, sessions, _ = _one_pair_configs([2.5])
    with pytest.raises(ValueError, match="on_drop"):
        trade_configs(configs, closes, sessions, on_drop="hold")
    with pytest.raises(ValueError, match="max_holding"):
        trade_configs(configs, closes, sessions, max_holding=-1)
    with pytest.raises(ValueError, match="cost"):
        WalkForwardSettings(costs="5,-1")
    with pytest.raises(ValueError, match="not a number"):
        WalkForwardSettings(costs="5,abc")
    with pytest.raises(ValueError, match="lag"):
        WalkForwardSettings(lag=2)
    with pytest.raises(ValueError, match="after end"):
        WalkForwardSettings(start="2022-01-03", end="2021-01-04")


def test_the_screen_correlations_match_the_correlation_stage():
    """The running-sum correlations the screen reads equal the correlation stage's, window by window."""
    closes = planted_closes(n_sessions=400)[["AAPL", "AMD", "MSFT"]]
    corr, _, _ = _rolling_pair_correlations(closes.to_numpy(dtype=float), 60)
    from pairs_assets.quant.correlation import correlation_long

    for end in range(59, 400, 7):
        expected = correlation_long(closes.iloc[end - 59 : end + 1])["correlation"].to_numpy()
        np.testing.assert_allclose(corr[end], expected, rtol=0, atol=1e-9, err_msg=str(end))
    assert np.isnan(corr[:59]).all()


def _planted_panel(phi: float = 0.3):
    closes = planted_closes(n_sessions=1160, phi=phi)[["AAPL", "AMD", "MSFT"]]
    return SectorPanel(sector="technology", closes=closes, source="planted")


def test_planted_pair_makes_money_gross_and_nothing_reads_the_future():
    strategy = StrategySettings.preset("seed")
    panel = _planted_panel()
    index = panel.closes.index
    as_of = index[1040:-1]
    configs = build_configs(panel, as_of, index[1041:], ["AAPL", "AMD", "MSFT"], strategy)
    selected = [c for c in configs.values() if c.pairs]
    assert selected and all(p.pair_id in ("AAPL-MSFT", "MSFT-AAPL") for c in selected for p in c.pairs)
    sessions = index[1041:]
    trades = trade_configs(configs, panel.closes, sessions)
    result = execute(trades, panel.closes, sessions, lag=1, cost_bp=0.0)
    assert len(trades) >= 3 and result.daily["pnl"].sum() > 0

    # scramble every bar after T: no config with as-of ≤ T and no decision at or before T changes
    t = index[1100]
    values = panel.closes.to_numpy()
    later = (index > t)[:, None]
    noise = np.exp(np.random.default_rng(3).normal(0, 0.05, values.shape))
    # built like the original frame (same memory layout: bitwise-identical arithmetic on the past)
    scrambled = pd.DataFrame(np.where(later, values * noise, values), index=index, columns=panel.closes.columns)
    other = build_configs(
        SectorPanel("technology", scrambled, "planted"), as_of, index[1041:], ["AAPL", "AMD", "MSFT"], strategy
    )
    for day in as_of[as_of <= t]:
        assert other[day] == configs[day]
    other_trades = trade_configs(other, scrambled, sessions)
    decided = trades[trades["entry_session"] <= t]
    assert other_trades[other_trades["entry_session"] <= t][["pair_id", "side", "entry_session", "z_entry"]].equals(
        decided[["pair_id", "side", "entry_session", "z_entry"]]
    )


def test_independent_random_walks_make_no_money_on_average():
    # every pair a candidate, so Engle-Granger's false positives are traded
    strategy = StrategySettings.preset("seed", correlation_min=-1.0, score_min=0.0)
    rng = np.random.default_rng(11)
    index = partitions.window_sessions("2022-12-28", 1100, history_start="1990-01-02")
    pnl = []
    for _ in range(4):
        closes = pd.DataFrame(
            50 * np.exp(np.cumsum(rng.normal(0, 0.015, (len(index), 4)), axis=0)), index=index, columns=list("ABCD")
        )
        panel = SectorPanel("rw", closes, "random")
        configs = build_configs(panel, index[1040:-1], index[1041:], list("ABCD"), strategy)
        trades = trade_configs(configs, closes, index[1041:])
        if len(trades):
            pnl.extend(execute(trades, closes, index[1041:], lag=1).trades["gross_pnl"])
    pnl = np.asarray(pnl)
    assert len(pnl) >= 5
    t_stat = pnl.mean() / (pnl.std(ddof=1) / math.sqrt(len(pnl)))
    assert t_stat < 2.0


def test_engine_summary_rows_costs_and_range_errors():
    strategy = StrategySettings.preset("seed")
    panel = _planted_panel()
    index = panel.closes.index
    settings = WalkForwardSettings(
        start=str(index[1120].date()), end=str(index[-1].date()), costs=[0, 5, 20], periods=[]
    )
    result = run_walk_forward(
        {"technology": panel}, {"technology": ["AAPL", "AMD", "MSFT"]}, partitions.next_session, strategy, settings
    )
    full = result.summary[result.summary["period"] == "full"]
    assert set(full["strategy"]) == {"default", "baseline"} and set(full["sector"]) == {"technology", "all"}
    ours = full[(full["strategy"] == "default") & (full["sector"] == "all")].set_index("cost_bp")
    assert ours.loc[0.0, "ann_return"] >= ours.loc[5.0, "ann_return"] >= ours.loc[20.0, "ann_return"]
    with pytest.raises(WalkForwardError, match="needs 1001 sessions"):
        run_walk_forward(
            {"technology": panel},
            {"technology": ["AAPL", "AMD", "MSFT"]},
            partitions.next_session,
            strategy,
            WalkForwardSettings(start=str(index[500].date()), end=str(index[-1].date())),
        )
    with pytest.raises(WalkForwardError, match="outside the bars"):
        run_walk_forward(
            {"technology": panel},
            {"technology": ["AAPL", "AMD", "MSFT"]},
            partitions.next_session,
            strategy,
            WalkForwardSettings(start=str(index[1120].date()), end="2023-06-30"),
        )


def test_gru_gate_trades_the_same_configs_with_the_models_veto():
    strategy = StrategySettings.preset("seed", gru_max_epochs=3, gru_hidden=16)
    closes = planted_closes(n_sessions=1340, phi=0.3)[["AAPL", "AMD", "MSFT"]]
    panel = SectorPanel(sector="technology", closes=closes, source="planted")
    index = closes.index
    settings = WalkForwardSettings(
        start=str(index[1322].date()), end=str(index[-1].date()), costs=[0], periods=[], gru=True, workers=1
    )
    result = run_walk_forward(
        {"technology": panel}, {"technology": ["AAPL", "AMD", "MSFT"]}, partitions.next_session, strategy, settings
    )
    counts = result.gru["technology"]
    assert counts["trained"] > 0  # a GRU per selected pair and session, as gru_models trains it
    full = result.summary[(result.summary["period"] == "full") & (result.summary["sector"] == "all")].set_index(
        "strategy"
    )
    assert {"default", "default_gru", "baseline"} <= set(full.index)
    gated = result.trades[result.trades["strategy"] == "default_gru"]
    ungated = result.trades[result.trades["strategy"] == "default"]
    key = ["pair_id", "side", "entry_session", "exit_session"]
    if counts["allowed"] + counts["vetoed"] == 0:  # no model beat its baselines: the signal job would not gate
        assert gated[key].reset_index(drop=True).equals(ungated[key].reset_index(drop=True))
    else:
        assert len(gated) <= len(ungated) + counts["allowed"]
    with pytest.raises(WalkForwardError, match="needs 1300 sessions"):
        run_walk_forward(
            {"technology": panel},
            {"technology": ["AAPL", "AMD", "MSFT"]},
            partitions.next_session,
            strategy,
            WalkForwardSettings(start=str(index[1200].date()), end=str(index[-1].date()), gru=True),
        )


def test_the_screens_skip_only_sessions_whose_config_is_empty(monkeypatch):
    """Configs with the screens equal configs with every session through the stages (real data, 2 years)."""
    from pairs_assets.quant.walkforward import replay
    from resources.bar_sources import EmbeddedBarSource

    sessions = partitions.sessions_in_range("2006-01-03", "2008-12-31")
    bars = EmbeddedBarSource().load_bars(
        ["BAC", "JPM", "CVX", "XOM"], *partitions.sessions_span_utc(sessions[0], sessions[-1])
    )
    closes = bars.assign(
        session=bars["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    )
    closes = closes.pivot(index="session", columns="symbol", values="close").reindex(sessions)
    strategy = StrategySettings.preset("seed", garch_window=500, garch_holdout=100)
    as_of, effective = sessions[510:-1], sessions[511:]
    for symbols in (["BAC", "JPM"], ["CVX", "XOM"]):
        panel = SectorPanel("s", closes[symbols], "embedded")
        screened = build_configs(panel, as_of, effective, symbols, strategy)
        assert replay.cointegration_screen(closes[symbols], strategy)[510:-1].sum() < len(as_of)  # it does skip
        monkeypatch.setattr(replay, "cointegration_screen", lambda c, s, at=None: np.ones(len(c), dtype=bool))
        every = build_configs(panel, as_of, effective, symbols, strategy)
        monkeypatch.undo()
        assert screened == every
        assert any(c.pairs for c in every.values()) or symbols == ["CVX", "XOM"]


def _flipping_configs(z_path, flip_at: int):
    """Configs listing Y-X for the first ``flip_at`` sessions, then X-Y (the same legs, the other
    ordering: β 1, so z of X-Y is −z of Y-X)."""
    configs, closes, sessions, pair = _one_pair_configs(z_path)
    flipped = pair.model_copy(update={"pair_id": "X-Y", "y": "X", "x": "Y"})
    for i, as_of in enumerate(sorted(configs)):
        if i >= flip_at:
            configs[as_of] = configs[as_of].model_copy(update={"pairs": [flipped]})
    return configs, closes, sessions


def test_a_flipped_ordering_is_the_held_position_not_a_second_one():
    """Short Y-X from z 2.5; the re-formation lists X-Y at z −2.4: the same bet, not a second entry."""
    configs, closes, sessions = _flipping_configs([2.5, 2.6, 2.4, 1.0, 0.3, -0.2], flip_at=2)
    kept = trade_configs(configs, closes, sessions, max_holding=0)
    assert list(kept["pair_id"]) == ["Y-X"] and list(kept["exit_reason"]) == ["exit"]
    assert kept.loc[0, "exit_session"] == sessions[4]  # managed by its own terms until it exits
    # on_drop="exit": the flip is the held ordering's drop; X-Y may enter once the pair is flat
    dropped = trade_configs(configs, closes, sessions, on_drop="exit", max_holding=0)
    assert list(dropped["pair_id"]) == ["Y-X"] and list(dropped["exit_reason"]) == ["config_drop"]
    assert dropped.loc[0, "exit_session"] == sessions[2]
    # flat when the ordering flips: X-Y trades as itself (z −2.4 → long X-Y, i.e. short Y-X)
    configs, closes, sessions = _flipping_configs([0.1, 0.2, 2.4, 1.0, 0.3, -0.2], flip_at=2)
    flat = trade_configs(configs, closes, sessions, max_holding=0)
    assert (
        list(flat["pair_id"]) == ["X-Y"] and list(flat["side"]) == [1] and flat.loc[0, "entry_session"] == sessions[2]
    )


def test_healthcare_2012_06_28_mrk_pfe_is_not_held_twice():
    """Embedded data: MRK-PFE short from 2012-06-27; the 2012-06-28 re-formation lists PFE-MRK (z −2.4)
    — before, a second, opposite-ordered position (long PFE-MRK 2012-06-29, the same bet doubled)."""
    from pairs_assets.data import EMBEDDED_UNIVERSE_FILE
    from pairs_assets.universe import load_universe
    from resources.bar_sources import EmbeddedBarSource

    strategy = StrategySettings.preset("default")
    symbols = list(load_universe(EMBEDDED_UNIVERSE_FILE).symbols("healthcare"))
    hist = partitions.sessions_in_range("2008-06-02", "2012-07-31")
    bars = EmbeddedBarSource().load_bars(symbols, *partitions.sessions_span_utc(hist[0], hist[-1]))
    closes = bars.assign(
        session=bars["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    )
    closes = closes.pivot(index="session", columns="symbol", values="close").reindex(hist)
    first = closes.index.get_loc(pd.Timestamp("2012-06-20"))
    as_of, effective = closes.index[first - 1 : -1], list(closes.index[first:])

    def formation_of(d):
        return partitions.formation_session(d, strategy.reselect_every)

    configs = build_configs(
        SectorPanel("healthcare", closes, "embedded"), as_of, effective, symbols, strategy, formation_of=formation_of
    )
    listed = {str(d.date()): [p.pair_id for p in c.pairs] for d, c in configs.items()}
    assert "MRK-PFE" in listed["2012-06-26"] and "PFE-MRK" in listed["2012-06-28"]  # the flip
    trades = trade_configs(configs, closes, effective)
    mrk_pfe = trades[trades["pair_id"].isin(["MRK-PFE", "PFE-MRK"])]
    assert list(mrk_pfe["pair_id"]) == ["MRK-PFE"] and list(mrk_pfe["side"]) == [-1]
    assert str(mrk_pfe.iloc[0]["entry_session"].date()) == "2012-06-27"
    assert str(mrk_pfe.iloc[0]["exit_session"].date()) == "2012-07-05" and mrk_pfe.iloc[0]["exit_reason"] == "stop"
    # at most one open position per unordered pair on every session
    for session in effective:
        open_ = trades[(trades["entry_session"] <= session) & ~(trades["exit_session"] <= session)]
        keys = [tuple(sorted((y, x))) for y, x in zip(open_["y"], open_["x"])]
        assert len(keys) == len(set(keys)), session


def test_a_scheduled_strategy_screens_its_formation_sessions_only(monkeypatch):
    """With re-selection every 21 sessions Engle-Granger runs on the formation sessions alone; the
    screen there equals the every-session screen, and the configs equal those with every formation
    through the stages (real data, 3 years)."""
    from pairs_assets.quant import cointegration
    from pairs_assets.quant.walkforward import replay
    from resources.bar_sources import EmbeddedBarSource

    calendar = partitions.sessions_in_range("1990-01-02", "2008-12-31")
    sessions = calendar[calendar >= "2006-01-03"]
    symbols = ["BAC", "JPM"]
    bars = EmbeddedBarSource().load_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    closes = bars.assign(
        session=bars["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    )
    closes = closes.pivot(index="session", columns="symbol", values="close").reindex(sessions)
    strategy = StrategySettings.preset("seed", garch_window=500, garch_holdout=100, reselect_every=21)
    schedule = partitions.formation_schedule(strategy.reselect_every, calendar[-1])
    as_of, effective = sessions[540:-1], sessions[541:]
    formations = sorted({schedule(d) for d in as_of})
    rows = closes.index.get_indexer(pd.DatetimeIndex(formations))
    full = replay.cointegration_screen(closes, strategy)
    only = replay.cointegration_screen(closes, strategy, at=rows)
    assert (only[rows] == full[rows]).all() and not np.delete(only, rows).any()
    assert 0 < full[rows].sum() < len(rows)  # some formations screened out, some not

    windows = []
    eg = cointegration.engle_granger_many
    monkeypatch.setattr(
        cointegration, "engle_granger_many", lambda y, x, *a, **k: windows.append(y.shape[-1]) or eg(y, x, *a, **k)
    )
    panel = SectorPanel("financial", closes, "embedded")
    screened = build_configs(panel, as_of, effective, symbols, strategy, formation_of=schedule)
    monkeypatch.undo()
    assert 0 < sum(windows) <= 2 * len(formations) < len(as_of)  # the screen: one window per formation and ordering
    monkeypatch.setattr(replay, "cointegration_screen", lambda c, s, at=None: np.ones(len(c), dtype=bool))
    every = build_configs(panel, as_of, effective, symbols, strategy, formation_of=schedule)
    monkeypatch.undo()
    assert screened == every
    assert any(c.pairs for c in every.values())
