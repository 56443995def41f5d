"""The walk-forward on intraday bars (a generated hourly file): a decision on every bar, lag = the next
bar, the P&L summed per session; the daily path unchanged; ``pairs walk-forward`` on the file.

The same range and bars as the paper-replay parity test
(``pairs_assets_tests/live/test_paper_replay.py::test_intraday_file_every_bar_a_decision_identical_on_both_paths``,
which compares this engine's trades with the live path's): technology 2022-12-21 → 2022-12-28 on
the planted AAPL-MSFT market, 7 bars a session.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.assets.common import read_panel
from pairs_assets.assets.walk_forward import panel_sessions
from pairs_assets.quant.walkforward.bars import BarPanel
from pairs_assets.quant.walkforward.engine import WalkForwardError, WalkForwardSettings, run_walk_forward
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.intraday import intraday_bars_file
from resources.bar_sources import FileBarSource
from resources.market_data import MarketDataStore

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("AAPL", "AMD", "MSFT")
RANGE = ("2022-12-21", "2022-12-28")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """The hourly file, its history start and a store holding the walk-forward's bars."""
    folder = tmp_path_factory.mktemp("intraday_wf")
    path = intraday_bars_file(folder / "hourly.csv")
    first = pd.read_csv(path, nrows=1)["timestamp"].iloc[0][:10]
    source = FileBarSource(path=path)
    settings = WalkForwardSettings(start=RANGE[0], end=RANGE[1], sectors=["technology"], costs=[0.0], workers=1)
    days = panel_sessions(settings, StrategySettings(), first)
    store = MarketDataStore(database_url=f"sqlite:///{folder / 'store.sqlite'}")
    store.upsert_bars(source.load_bars(list(SYMBOLS), *partitions.sessions_span_utc(days[0], days[-1])), context="test")
    return {"path": path, "first": first, "source": source.source_name, "store": store, "days": days}


def _run(market, *, with_bars=True, panel=None, **overrides):
    settings = WalkForwardSettings(
        start=RANGE[0],
        end=RANGE[1],
        sectors=["technology"],
        workers=1,
        bootstrap_resamples=10,
        min_trades=0,
        **{"costs": [0.0], "lag": 1, **overrides},
    )
    if panel is None:
        panel = read_panel(
            market["store"], market["source"], "technology", SYMBOLS, market["days"], with_bars=with_bars
        )
    # the daily graph's formation calendar (fixed epoch): the same whatever the file's first session
    schedule = partitions.formation_schedule(StrategySettings().reselect_every, RANGE[1], since=market["first"])
    return run_walk_forward(
        {"technology": panel},
        {"technology": SYMBOLS},
        partitions.next_session,
        StrategySettings(),
        settings,
        formation_of=schedule,
    )


def _ours(result, cost=0.0):
    trades = result.trades[(result.trades["strategy"] == "default") & (result.trades["cost_bp"] == cost)]
    daily = result.daily[
        (result.daily["strategy"] == "default")
        & (result.daily["sector"] == "technology")
        & (result.daily["cost_bp"] == cost)
    ].set_index("session")
    return trades.reset_index(drop=True), daily


def test_lag_zero_trades_are_the_paper_replay_parity_trades(market):
    """Lag 0, cost 0 (the dry-run fill): the four round trips the parity test matches with the live path."""
    result = _run(market, lag=0)
    trades, daily = _ours(result)
    assert (
        result.bars.startswith("intraday bars: a decision on every bar")
        and "the baseline trades the daily closes" in result.bars
    )
    bars_at = [str(t)[11:16] for t in trades["entry_session"]]
    assert list(trades["pair_id"]) == ["AAPL-MSFT"] * 4
    assert list(trades["side"]) == [-1, -1, -1, -1]
    assert bars_at == ["16:30", "15:30", "20:30", "18:30"]  # UTC bars inside the sessions, not closes
    assert list(trades["exit_reason"]) == ["exit", "stop", "exit", "range_end"]
    assert (trades["entry_exec"] == trades["entry_session"]).all()  # lag 0: the decision bar
    # the daily series: one row per session of the range, its P&L the trades' summed
    assert list(daily.index) == list(partitions.sessions_in_range(*RANGE))
    assert daily["pnl"].sum() == pytest.approx(trades["pnl"].sum(), abs=1e-12)
    # holding counts sessions: only the trade held over the 2022-12-27 close spans one
    assert list(trades["holding"]) == [0, 0, 1, 0]


def test_lag_one_executes_at_the_next_bar_with_costs(market):
    result = _run(market, costs=[0.0, 5.0])
    panel = read_panel(market["store"], market["source"], "technology", SYMBOLS, market["days"], with_bars=True)
    bars = panel.bars.closes.index
    for cost in (0.0, 5.0):
        trades, daily = _ours(result, cost)
        assert len(trades) == 4
        decided = bars.get_indexer(pd.DatetimeIndex(trades["entry_session"]))
        assert (bars[decided + 1] == pd.DatetimeIndex(trades["entry_exec"])).all()  # the next bar, even across a close
        closed = trades.dropna(subset=["exit_session"])
        assert (
            bars[bars.get_indexer(pd.DatetimeIndex(closed["exit_session"])) + 1]
            == pd.DatetimeIndex(closed["exit_exec"])
        ).all()
        assert daily["pnl"].sum() == pytest.approx(trades["pnl"].sum(), abs=1e-12)
        assert daily["cost"].sum() == pytest.approx(trades["cost"].sum(), abs=1e-12)
    free, costly = _ours(result, 0.0)[0], _ours(result, 5.0)[0]
    assert (costly["cost"] > 0).all() and np.allclose(costly["gross_pnl"], free["gross_pnl"])
    # the summary keeps its daily meaning: the sessions of the range, ours beside the baseline
    full = result.summary[(result.summary["sector"] == "all") & (result.summary["period"] == "full")]
    assert (
        set(full["strategy"]) == {"default", "baseline"}
        and (full.loc[full["strategy"] == "default", "trades"] == 4).all()
    )


def test_the_same_file_read_as_session_closes_trades_the_closes(market):
    """Without the bar panel (the daily path) the engine trades session closes, as before."""
    result = _run(market, with_bars=False)
    trades, daily = _ours(result)
    assert result.bars == "daily closes"
    assert all(pd.Timestamp(t) == pd.Timestamp(t).normalize() for t in trades["entry_session"])
    assert list(daily.index) == list(partitions.sessions_in_range(*RANGE))


def test_a_session_without_bars_is_one_line(market):
    panel = read_panel(market["store"], market["source"], "technology", SYMBOLS, market["days"], with_bars=True)
    keep = panel.bars.sessions != pd.Timestamp("2022-12-23")
    holed = BarPanel(closes=panel.bars.closes[keep], sessions=panel.bars.sessions[keep])
    panel = type(panel)(panel.sector, panel.closes, panel.source, panel.row_hashes, holed)
    with pytest.raises(
        WalkForwardError, match=r"^sector technology: no intraday bar in session 2022-12-23 of the range$"
    ):
        _run(market, panel=panel)


def test_pairs_walk_forward_on_the_intraday_file(market, tmp_path):
    """The command in its own process (the definitions' resources are read from the environment at import)."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")  # what `pairs init` does
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PAIRS_BAR_SOURCE", "PAIRS_DATABASE_URL", "MLFLOW_TRACKING_URI")
    }
    env.update(
        PAIRS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        PAIRS_BARS_FILE=market["path"],
        PAIRS_HISTORY_START=market["first"],
    )
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairs_assets.cli",
            "walk-forward",
            "--start",
            RANGE[0],
            "--end",
            RANGE[1],
            "--sector",
            "technology",
            "--costs",
            "0,5",
            "--name",
            "hourly",
            "--min-trades",
            "0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-3000:]
    assert "bars            intraday bars: a decision on every bar" in output
    assert "the baseline trades the daily closes" in output
    trades = pd.read_csv(Path(home) / "walk_forward" / "hourly" / "trades.csv")
    ours = trades[(trades["strategy"] == "default") & (trades["cost_bp"] == 0)]
    assert list(ours["entry_exec"].str[11:]) == ["17:30:00Z", "16:30:00Z", "21:00:00Z", "19:30:00Z"]
    expected = _ours(_run(market, costs=[0.0, 5.0]))[0]
    assert np.allclose(ours["pnl"].to_numpy(), expected["pnl"].to_numpy(), rtol=1e-6, atol=1e-12)
