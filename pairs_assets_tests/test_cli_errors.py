"""One error path for every `pairs` command: one line on stderr, exit status 2, no traceback unless --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import dagster as dg
import pytest
from click.testing import CliRunner

from pairs_assets.cli import main
from pairs_assets.cli_common import PairsGroup
from pairs_assets.errors import BarsFileError
from pairs_assets.settings import paths

ROOT = Path(__file__).resolve().parents[1]


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_error(result, *expected: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def fresh_paths():
    """Settings re-read from the environment for this test (and again after it)."""
    paths.cache_clear()
    yield
    paths.cache_clear()


def _runs() -> int:
    from pairs_assets.cli import init_home

    init_home()
    with dg.DagsterInstance.get() as instance:
        return instance.get_runs_count()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["demo", "--as-of", "notadate"], ["'notadate' is not a date (YYYY-MM-DD)"]),
        (
            ["demo", "--as-of", "2022-12-25"],
            ["2022-12-25 is not an NYSE session (Sunday); the previous session is 2022-12-23, the next 2022-12-27"],
        ),
        (["demo", "--as-of", "2023-01-05"], ["--as-of", "2023-01-05 is past the data: the data ends on 2022-12-28"]),
        (
            ["demo", "--sector", "crypto", "--skip-load"],
            ["--sector", "unknown sector(s) crypto (known: consumer, energy"],
        ),
        (
            ["load-bars", "--start", "2022-12-28", "--end", "2022-12-01"],
            ["--start", "2022-12-28 is after --end 2022-12-01"],
        ),
        (
            ["load-bars", "--start", "2023-01-03", "--end", "2023-01-10"],
            ["--start", "2023-01-03 is after the last bar: the data ends on 2022-12-28"],
        ),
        (["load-bars", "--start", "2022-13-01", "--end", "2022-12-28"], ["'2022-13-01' is not a date"]),
        (
            ["load-bars", "--start", "2022-12-01", "--end", "2022-12-28", "--sector", "crypto"],
            ["unknown sector(s) crypto"],
        ),
        (["load-bars", "--start", "2022-12-01"], ["Missing option '--end'", "load-bars --help"]),
        (["stream", "--url", "http://127.0.0.1:1", "--symbols", "KO"], ["stream url must start with ws:// or wss://"]),
        (["symbols", "proxy", "KO", "1$"], ["'1$' is not a ticker"]),
        # issue 21 item 10: each was a failed run (IndexError), a silent drop, a run failed after creation
        (
            ["walk-forward", "--skip-load", "--set", "formation_window=100000"],
            [
                "the longest window needs 200081 sessions of bars before it",
                "no start can",
                "lower the strategy windows (formation_window 100000",
            ],
        ),
        (
            ["walk-forward", "--skip-load", "--periods", "1900-1901"],
            ["--periods", "1900-1901 lies outside the range 1995-01-03 → 2022-12-28: nothing of it would be replayed"],
        ),
        (
            ["walk-forward", "--skip-load", "--start", "2020-01-02", "--periods", "2016-2022,2011-2015"],
            ["--periods", "2011-2015 lies outside the range 2020-01-02 → 2022-12-28"],
        ),
        (
            ["walk-forward", "--skip-load", "--sector", "crypto"],
            ["--sector", "unknown sector(s) crypto (known: consumer"],
        ),
        (
            ["symbols", "--symbols-file", os.devnull + ".d/none.json", "from-universe", "--sector", "crypto"],
            ["sector 'crypto' is not in the universe"],
        ),
        (
            ["walk-forward", "--set", "formation_window=5"],
            ["strategy setting formation_window = 5: Input should be greater than or equal to 20"],
        ),
        (
            ["walk-forward", "--preset", "seed", "--set", "exit_z=2.5"],
            ["strategy settings: need exit_z < entry_z < stop_z, got 2.5, 2.0, 3.5"],
        ),
        (["walk-forward", "--preset", "sed"], ["'sed' is not one of 'default', 'seed', 'trading_period'"]),
    ],
)
def test_bad_input_is_one_line_with_exit_status_2(args, expected):
    runs = _runs()
    _one_line_error(_invoke(*args), *expected)
    assert _runs() == runs  # refused before any run started


def test_a_non_session_range_is_refused_and_nothing_is_loaded():
    runs = _runs()
    _one_line_error(
        _invoke("load-bars", "--start", "2022-12-24", "--end", "2022-12-26", "--sector", "consumer"),
        "no NYSE session between 2022-12-24 and 2022-12-26",
        "the previous session is 2022-12-23, the next 2022-12-27",
    )
    assert _runs() == runs


def test_a_range_with_non_session_ends_is_clipped_to_its_sessions_and_says_so():
    result = _invoke("load-bars", "--start", "2022-12-24", "--end", "2022-12-27", "--sector", "consumer")
    assert result.exit_code == 0, result.output
    assert (
        "sessions 2022-12-27...2022-12-27 (the range's first and last NYSE sessions; 2022-12-24...2022-12-27 asked)"
        in result.stdout
    )
    assert "raw_bars 2022-12-27...2022-12-27: ok" in result.stdout
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
    assert run.tags["dagster/asset_partition_range_start"] == "2022-12-27|consumer"
    assert run.tags["dagster/asset_partition_range_end"] == "2022-12-27|consumer"


def test_a_range_past_the_data_is_clipped_to_its_last_session_and_says_so():
    result = _invoke("load-bars", "--start", "2022-12-24", "--end", "2023-01-10", "--sector", "consumer")
    assert result.exit_code == 0, result.output
    assert (
        "sessions 2022-12-27...2022-12-28 (the data ends on 2022-12-28, the last partition; 2022-12-24...2023-01-10 asked)"
        in result.stdout
    )
    assert "raw_bars 2022-12-27...2022-12-28: ok" in result.stdout


def test_a_malformed_universe_file_is_one_line(tmp_path, monkeypatch, fresh_paths):
    universe = tmp_path / "universe.yaml"
    universe.write_text("sectors: [oops\n")
    monkeypatch.setenv("PAIRS_UNIVERSE_FILE", str(universe))
    _one_line_error(_invoke("load-bars", "--start", "2022-12-01", "--end", "2022-12-28"), str(universe))


def test_a_weekend_row_in_the_bars_file_names_file_and_row(tmp_path, monkeypatch, fresh_paths):
    bars = tmp_path / "bars.csv"
    bars.write_text("symbol,timestamp,open,high,low,close,volume\nKO,2022-12-23,1,1,1,1,1\nKO,2022-12-24,1,1,1,1,1\n")
    monkeypatch.setenv("PAIRS_BARS_FILE", str(bars))
    line = _one_line_error(_invoke("load-bars", "--start", "2022-12-01", "--end", "2022-12-23"))
    assert line == (
        f"Error: bars file {bars}: row 3 (symbol KO) is dated 2022-12-24, which is not an NYSE session "
        "(Saturday; previous session 2022-12-23, next 2022-12-27)"
    )


def test_debug_adds_the_traceback():
    result = _invoke("--debug", "demo", "--as-of", "2023-01-05")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: Invalid value for --as-of: 2023-01-05 is past the data")
    )


def test_every_command_takes_the_one_path_even_one_added_later():
    assert isinstance(main, PairsGroup)

    @click.command("later-command")
    def later() -> None:
        raise BarsFileError("bars file x.csv: row 7 has no symbol")

    main.add_command(later)
    try:
        _one_line_error(_invoke("later-command"), "Error: bars file x.csv: row 7 has no symbol")
    finally:
        main.commands.pop("later-command")
    for name, command in main.commands.items():  # no command re-routes its errors around the handler
        assert type(command).invoke in (click.Command.invoke, click.Group.invoke), name


def test_a_failed_run_is_one_line_naming_step_and_error(tmp_path):
    """In its own process: the bar source a run uses is fixed when the definitions are imported."""
    bars = tmp_path / "ny.csv"
    # complete (a gap is refused before any run starts: test_raw_bars_range), but KO's high < low
    rows = [
        f"{s},2022-11-04T15:59:00-04:00,1,{'0.5,2' if s == 'KO' else '1,1'},1,1"
        for s in ("BBY", "HD", "KO", "PEP", "PG", "WMT")
    ]
    bars.write_text("symbol,timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    env = {**os.environ, "PAIRS_HOME": str(tmp_path / "home"), "PAIRS_BARS_FILE": str(bars)}
    env.pop("DAGSTER_HOME", None)
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairs_assets.cli",
            "load-bars",
            "--start",
            "2022-11-04",
            "--end",
            "2022-11-04",
            "--sector",
            "consumer",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 2, process.stderr[-3000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr[-3000:]
    assert lines[0].startswith("Error: raw_bars 2022-11-04...2022-11-04 failed (run ")
    # the step, then the failed blocking check and the partition it failed in
    assert lines[0].endswith(
        "raw_bars: Failure: 1 blocking raw_bars check evaluation(s) failed with ERROR severity (ohlc_consistent) "
        "in 1 partition(s): 2022-11-04|consumer"
    ), lines[0]


def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def _live_main():
    from pairs_assets.live.commands import main as live_main

    return live_main


@pytest.mark.parametrize("root", ["pairs", "pairs live"])
def test_every_command_of_every_group_reports_a_pairs_error_as_one_line(root, monkeypatch):
    """Each command (subgroups' too: ``symbols …``; the live ones; walk-forward) raising a PairsError
    from its body gives one line and exit status 2: nothing routes an error around the one path."""
    group = main if root == "pairs" else _live_main()
    assert isinstance(group, PairsGroup)
    leaves = dict(_leaf_commands(group))
    assert ("symbols", "proxy") in leaves and ("stream",) in leaves and ("recycler",) in leaves
    if root == "pairs":
        assert {("walk-forward",), ("load-bars",), ("demo",), ("dev",), ("worker",)} <= set(leaves)
    for path, command in leaves.items():

        def fail(*args, _path=path, **kwargs):
            raise BarsFileError(f"{' '.join(_path)}: bars file x.csv: row 7 has no symbol")

        monkeypatch.setattr(command, "params", [])  # no required option stands between the call and the body
        monkeypatch.setattr(command, "callback", fail)
        result = CliRunner().invoke(group, list(path))
        _one_line_error(result, f"Error: {' '.join(path)}: bars file x.csv: row 7 has no symbol")


def test_walk_forward_refuses_a_bad_name_in_one_line():
    _one_line_error(
        _invoke("walk-forward", "--name", "../elsewhere", "--skip-load"),
        "walk-forward name '../elsewhere': use letters, digits",
    )


def test_the_live_group_reports_its_errors_in_one_line(tmp_path):
    live_main = _live_main()
    symbols_file = str(tmp_path / "live.json")
    _one_line_error(
        CliRunner().invoke(live_main, ["symbols", "--symbols-file", symbols_file, "proxy", "KO", "1$"]),
        "'1$' is not a ticker",
    )
    _one_line_error(
        CliRunner().invoke(
            live_main, ["recycler", "--proxy", "XYZ", "--database-url", f"sqlite:///{tmp_path / 's.sqlite'}"]
        ),
        "SYMBOL=PROXY",
    )
    _one_line_error(
        CliRunner().invoke(live_main, ["stream", "--url", "http://127.0.0.1:1", "--symbols", "KO"]), "ws:// or wss://"
    )


def _fail_in_a_worker():
    from pairs_assets.errors import MissingBarsError

    raise MissingBarsError("partition 2011-01-28|consumer: symbol BBY has no bars for 19 of the 252 window sessions")


def test_an_error_raised_in_a_worker_process_is_named_not_its_remote_traceback():
    """The walk-forward runs sectors in processes: the one line is the worker's error, not a triple quote."""
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from types import SimpleNamespace

    from dagster._utils.error import serializable_error_info_from_exc_info

    from pairs_assets.cli import step_failure

    try:
        with ProcessPoolExecutor(1) as pool:
            pool.submit(_fail_in_a_worker).result()
    except Exception:  # the error as the parent sees it, a worker's traceback chained as its cause
        error = serializable_error_info_from_exc_info(sys.exc_info())
    assert error.cause is not None and error.cause.cls_name == "_RemoteTraceback"
    failed = SimpleNamespace(
        is_step_failure=True, step_key="walk_forward", event_specific_data=SimpleNamespace(error=error)
    )
    assert step_failure(SimpleNamespace(all_events=[failed])) == (
        "walk_forward: MissingBarsError: partition 2011-01-28|consumer: symbol BBY has no bars for 19 of the 252 window sessions"
    )
