"""Each bad input named in the issue: a clear message naming symbol/partition/field, nothing written."""

import numpy as np
import pandas as pd
import pytest

from pairs_assets_tests.assets.graph_harness import materialize, resources_for
from pairs_assets_tests.planted import planted_closes, write_bars_file
from resources.bar_sources import EmbeddedBarSource, FileBarSource
from resources.market_data import MarketDataStore


def failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            messages = []
            while error is not None:
                messages.append(error.message)
                error = error.cause
            return "\n".join(messages)
    raise AssertionError("the run did not fail")


@pytest.fixture()
def tech_closes():
    return planted_closes(n_sessions=80)[["AAPL", "AMD", "MSFT"]].copy()


def _run_raw_bars(tmp_path, sqlite_url, closes, date="2022-12-28", sector="technology"):
    path = write_bars_file(tmp_path / "bars.csv", closes)
    result = materialize(date, sector, resources_for(sqlite_url, FileBarSource(path=path)), selection=["raw_bars"])
    return result, MarketDataStore(database_url=sqlite_url)


def test_universe_symbol_absent_from_bars(tmp_path, sqlite_url, tech_closes):
    result, store = _run_raw_bars(tmp_path, sqlite_url, tech_closes.drop(columns="AMD"))
    assert not result.success
    msg = failure_message(result)
    assert "partition 2022-12-28|technology" in msg and "universe symbol(s) AMD (sector technology) are absent" in msg
    assert store.bar_counts().empty, "nothing half-written"


def test_missing_bar_for_one_symbol(tmp_path, sqlite_url, tech_closes):
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS

    path = write_bars_file(tmp_path / "bars.csv", tech_closes)
    frame = pd.read_csv(path)
    frame[~((frame["symbol"] == "MSFT") & (frame["timestamp"] == "2022-12-27"))].to_csv(path, index=False)
    result = dg.materialize(
        DAILY_ASSETS,
        selection=["raw_bars"],
        resources=resources_for(sqlite_url, FileBarSource(path=path)),
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-20|technology",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-28|technology",
        },
        raise_on_error=False,
    )
    assert "partition 2022-12-27|technology: symbol(s) MSFT have no bar for session 2022-12-27" in failure_message(
        result
    )
    assert MarketDataStore(database_url=sqlite_url).bar_counts().empty, "nothing of the range is written"


def test_session_with_no_bars(tmp_path, sqlite_url, tech_closes):
    result, store = _run_raw_bars(tmp_path, sqlite_url, tech_closes.drop(index=pd.Timestamp("2022-12-28")))
    assert "has no bars for AAPL, AMD, MSFT in 2022-12-28" in failure_message(result)
    assert store.bar_counts().empty


def test_duplicated_bars(tmp_path, sqlite_url, tech_closes):
    path = write_bars_file(tmp_path / "bars.csv", tech_closes)
    frame = pd.read_csv(path)
    pd.concat([frame, frame.tail(1)]).to_csv(path, index=False)
    result = materialize(
        "2022-12-28", "technology", resources_for(sqlite_url, FileBarSource(path=path)), selection=["raw_bars"]
    )
    assert "duplicated bar for symbol MSFT at 2022-12-28T21:00:00+00:00" in failure_message(result)
    assert MarketDataStore(database_url=sqlite_url).bar_counts().empty


@pytest.mark.parametrize("bad", [0.0, -3.0, np.inf])
def test_non_positive_or_infinite_price(tmp_path, sqlite_url, tech_closes, bad):
    tech_closes.loc[pd.Timestamp("2022-12-28"), "AMD"] = bad
    result, store = _run_raw_bars(tmp_path, sqlite_url, tech_closes)
    assert f"symbol AMD has close={bad}" in failure_message(result)
    assert store.bar_counts().empty


def test_nan_price_in_file_is_a_missing_bar(tmp_path, sqlite_url, tech_closes):
    path = write_bars_file(tmp_path / "bars.csv", tech_closes)
    frame = pd.read_csv(path, dtype={"close": str})  # the file's text, so the cell can hold the text "NaN"
    frame.loc[frame.index[-1], "close"] = "NaN"
    frame.to_csv(path, index=False)
    result = materialize(
        "2022-12-28", "technology", resources_for(sqlite_url, FileBarSource(path=path)), selection=["raw_bars"]
    )
    assert "symbol MSFT has close=nan at 2022-12-28T21:00:00+00:00" in failure_message(result)


def test_malformed_bars_file(tmp_path, sqlite_url):
    path = tmp_path / "bars.csv"
    path.write_text("symbol,when,close\nAAPL,2022-12-28,1\n")
    result = materialize(
        "2022-12-28", "technology", resources_for(sqlite_url, FileBarSource(path=str(path))), selection=["raw_bars"]
    )
    assert "lacks required column(s) timestamp, open, high, low, volume" in failure_message(result)


def test_window_shorter_than_minimum_at_start_of_history(sqlite_url):
    result = materialize(
        "1990-02-01",
        "technology",
        resources_for(sqlite_url, EmbeddedBarSource()),
        selection=["raw_bars", "correlation_matrix"],
    )
    assert not result.success
    assert "partition 1990-02-01: the window needs 60 sessions but only 23 exist" in failure_message(result)


def test_window_not_loaded_says_what_to_materialize(sqlite_url):
    result = materialize(
        "2022-12-28",
        "technology",
        resources_for(sqlite_url, EmbeddedBarSource()),
        selection=["raw_bars", "correlation_matrix"],
    )
    msg = failure_message(result)
    assert "partition 2022-12-28|technology" in msg and "materialize raw_bars for 2022-10-04...2022-12-27 first" in msg
