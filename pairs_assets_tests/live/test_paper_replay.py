"""``pairs paper-replay``: the live path over history against the walk-forward over the same bars.

Two real paths compared: recycler (stored timestamps) → ``pairs stream``'s ingestion → ``signal_job``'s
asset per session through Dagster → the dry-run broker → the paper book, against
``run_walk_forward`` on the same panel (cost 0, lag 0). Windows (embedded data, ≥ 60 sessions):

* technology 2022-09-19 → 2022-12-28 under the defaults (71 sessions): the defaults trade rarely —
  one round trip in this window (MSFT-AMD, formed 2022-12-02, short the spread 2022-12-14, exit
  2022-12-28), and one per sector in 2018–2022 at most (technology, financial, energy; none in
  consumer or healthcare in 2022);
* consumer 2022-05-02 → 2022-07-29 under the seed preset (62 sessions): two round trips on pairs
  sharing a leg (PEP-PG short from 2022-06-29, KO-PEP long from 2022-07-07), both stopped 2022-07-08.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pairs_assets.cli import main
from pairs_assets.paper_replay import (
    PaperReplayError,
    ReplayResult,
    paper_replay,
    parity_table,
    print_parity,
)
from pairs_assets.settings import StrategySettings, paths
from pairs_assets.universe import load_universe
from resources.market_data import (
    MarketDataStore,
    bars_table,
    orders_table,
    pair_states_table,
    trading_signals_table,
)


def _replay(home: Path, sector: str, start: str, end: str, strategy: StrategySettings):
    return paper_replay(
        start,
        end,
        [sector],
        universe=load_universe(paths().universe_file),
        home=home,
        history_start=paths().history_start,
        strategy=strategy,
        echo=lambda _line: None,
    )


def test_technology_defaults_live_path_equals_the_walk_forward(tmp_path):
    result = _replay(tmp_path / "tech", "technology", "2022-09-19", "2022-12-28", StrategySettings())
    assert result.counts["sessions"] == 71 and result.counts["sessions"] >= 60
    assert result.verdict.startswith("PARITY: 1 round trip"), result.verdict
    (row,) = result.parity.itertuples(index=False)
    assert (row.pair_id, row.entry, row.side, row.exit, row.reason) == (
        "MSFT-AMD",
        "2022-12-14",
        -1,
        "2022-12-28",
        "exit",
    )
    assert (row.wf_entry, row.wf_side, row.wf_shares, row.wf_exit) == (row.entry, row.side, row.shares, row.exit)
    assert abs(row.d_pnl) <= row.tolerance and row.match == "yes"

    # the live path really ran: the stream's bars, the signal job's rows and states, the broker's fills
    store = MarketDataStore(database_url=f"sqlite:///{result.home / 'paper.sqlite'}")
    bars = store.read_table(bars_table)
    streamed = bars[bars["source"] == "recycler:iex"]
    assert len(streamed) == result.counts["bars_streamed"] == 71 * 3
    last_close = pd.Timestamp("2022-12-28 21:00")
    # the last session's only bars are the stream's: its signal could not have read another source
    assert set(bars.loc[pd.to_datetime(bars["timestamp"]) == last_close, "source"]) == {"recycler:iex"}
    orders = store.read_table(orders_table)
    assert len(orders) == 4 and set(orders["status"]) == {"filled"} and set(orders["broker"]) == {"dry-run"}
    signals = store.read_table(trading_signals_table)
    assert set(signals.loc[signals["action"] != "hold", "action"]) == {"short_spread", "exit"}
    states = store.read_table(pair_states_table)
    assert list(states["pair_id"]) == ["MSFT-AMD"] and int(states["side"].iloc[0]) == 0


def test_consumer_seed_two_pairs_sharing_a_leg_via_the_cli(pairs_home):
    result = CliRunner().invoke(
        main,
        [
            "paper-replay",
            "--start",
            "2022-05-02",
            "--end",
            "2022-07-29",
            "--sector",
            "consumer",
            "--preset",
            "seed",
            "--name",
            "consumer",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {line.split()[0]: line for line in lines if line.startswith(("KO-PEP ", "PEP-PG "))}
    assert set(rows) == {"KO-PEP", "PEP-PG"}
    for line in rows.values():
        assert line.rstrip().endswith("yes") and line.count("stop") == 2
    assert "2022-06-29   -1" in rows["PEP-PG"] and "2022-07-07   +1" in rows["KO-PEP"]
    (verdict,) = [line for line in lines if line.startswith(("PARITY", "DIVERGED"))]
    assert verdict.startswith("PARITY: 2 round trip(s) in 2 pair(s), identical entries and exits"), result.output
    assert "62 sessions x 1 sector(s)" in result.output
    book = MarketDataStore(
        database_url=f"sqlite:///{Path(paths().home) / 'paper_replay' / 'consumer' / 'paper.sqlite'}"
    )
    assert len(book.read_table(orders_table)) == 8


def test_parity_table_reports_a_divergence():
    """The comparison can fail: a shifted entry, a different share count, a P&L past the rounding."""
    day = pd.Timestamp
    base = {
        "sector": "s",
        "pair_id": "A-B",
        "y": "A",
        "x": "B",
        "side": 1,
        "entry": day("2022-01-03"),
        "exit": day("2022-01-10"),
        "reason": "exit",
        "shares_y": 10.0,
        "shares_x": 5.0,
        "pnl": 100.0,
    }
    theirs = pd.DataFrame([{**base, "pnl": 100.4, "tolerance": 0.5}])
    assert parity_table(pd.DataFrame([base]), theirs)[1].startswith("PARITY: 1 round trip")
    for change in ({"entry": day("2022-01-04")}, {"shares_x": 6.0}, {"pnl": 101.0}, {"reason": "stop"}):
        frame, verdict = parity_table(pd.DataFrame([{**base, **change}]), theirs)
        assert verdict.startswith("DIVERGED: 1 of 1") and list(frame["match"]) == ["NO"], change
    ours = pd.DataFrame([base, {**base, "entry": day("2022-02-01"), "exit": pd.NaT, "reason": "range_end"}])
    frame, verdict = parity_table(ours, theirs)
    assert verdict.startswith(
        "DIVERGED: 1 of 2 round trip(s) differ (first: A-B trade 2, ours entry 2022-02-01 vs walk-forward none)"
    )
    lines = []  # a trade only one side made prints with dashes on the other
    print_parity(ReplayResult(frame, verdict, ours, theirs, Path("."), {}, {}), echo=lines.append)
    assert lines[3].split()[:8] == ["A-B", "2", "2022-02-01", "+1", "10/5", "open", "range_end", "100.00"]
    assert lines[3].rstrip().endswith("–  NO") and lines[-1] == verdict


@pytest.mark.parametrize(
    "start, end, message",
    [
        (
            "2022-12-01",
            "2023-03-01",
            (
                "replay range 2022-12-01 → 2023-03-01 is outside the bars: source "
                "'embedded:skfolio-sp500' ends on 2022-12-28; end the range on or before it"
            ),
        ),
        ("1990-03-01", "1990-06-01", "replay range 1990-03-01 → 1990-06-01 is outside the bars: its windows need"),
        ("2022-12-24", "2022-12-26", "replay range 2022-12-24 → 2022-12-26 holds no NYSE session"),
    ],
)
def test_a_range_outside_the_bars_is_one_line_and_creates_nothing(pairs_home, tmp_path, start, end, message):
    with pytest.raises(PaperReplayError, match="^" + re.escape(message)):
        _replay(tmp_path / "never", "technology", start, end, StrategySettings())
    assert not (tmp_path / "never").exists()
    result = CliRunner().invoke(main, ["paper-replay", "--start", start, "--end", end, "--name", "bad"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("Error: " + message), result.output
    assert not (Path(paths().home) / "paper_replay" / "bad").exists()


@pytest.mark.slow
def test_intraday_file_every_bar_a_decision_identical_on_both_paths(tmp_path):
    """A generated hourly bars file (the planted AAPL-MSFT market, 7 bars a session): signal_job runs
    once per bar, the walk-forward decides on the same bars; identical entries and exits (bar, side,
    shares), |ΔP&L| within the share rounding."""
    from pairs_assets_tests.intraday import intraday_bars_file
    from resources.bar_sources import FileBarSource

    path = intraday_bars_file(tmp_path / "hourly.csv")
    first = pd.read_csv(path, nrows=1)["timestamp"].iloc[0][:10]
    result = paper_replay(
        "2022-12-21",
        "2022-12-28",
        ["technology"],
        universe=load_universe(paths().universe_file),
        home=tmp_path / "home",
        history_start=first,
        strategy=StrategySettings(),
        bar_source=FileBarSource(path=path),
        echo=lambda _line: None,
    )
    assert result.counts["intraday"] is True
    assert result.counts["sessions"] == 5 and result.counts["signal_runs"] == 5 * 7
    assert result.verdict.startswith("PARITY: 4 round trip(s) in 1 pair(s)"), result.verdict
    parity = result.parity
    assert set(parity["match"]) == {"yes"} and set(parity["pair_id"]) == {"AAPL-MSFT"}
    # decisions inside sessions, not only at closes; a stop among them; entries stamped with their bar
    assert any(not entry.endswith("16:00") for entry in parity["entry"])
    assert {"exit", "stop"} <= set(parity["reason"])
    assert (parity["d_pnl"].abs() <= parity["tolerance"] + 1e-6).all()
