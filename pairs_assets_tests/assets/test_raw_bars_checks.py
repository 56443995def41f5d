"""Data plausibility checks on raw_bars (issue 9, item 11), materialized on bad data.

Before these checks a close of 1e308 (finite, positive) and a bar with high < low were stored with
every gate green, and a one-symbol sector loaded without a word.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from pairs_assets_tests.assets.graph_harness import materialize, materialized_keys, preload_history, resources_for
from pairs_assets_tests.planted import planted_closes, write_bars_file
from resources.bar_sources import EmbeddedBarSource, FileBarSource
from resources.market_data import MarketDataStore

AS_OF = "2022-12-28"
TECH = ["AAPL", "AMD", "MSFT"]


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _meta(evaluation, key: str):
    return evaluation.metadata[key].value


@pytest.fixture()
def tech_closes() -> pd.DataFrame:
    return planted_closes(n_sessions=90)[TECH].copy()


def test_inconsistent_ohlc_is_an_error_naming_the_bar(tmp_path, sqlite_url, tech_closes):
    path = write_bars_file(tmp_path / "bars.csv", tech_closes)
    frame = pd.read_csv(path)
    amd = (frame["symbol"] == "AMD") & (frame["timestamp"] == AS_OF)
    frame.loc[amd, ["high", "low"]] = frame.loc[amd, ["low", "high"]].to_numpy()  # high < low
    msft = (frame["symbol"] == "MSFT") & (frame["timestamp"] == AS_OF)
    frame.loc[msft, "close"] = frame.loc[msft, "high"] * 1.05  # close above the high
    frame.to_csv(path, index=False)
    source = FileBarSource(path=path)
    preload_history(sqlite_url, source, TECH, "2022-12-27", 70)

    result = materialize(
        AS_OF, "technology", resources_for(sqlite_url, source), selection=["raw_bars", "correlation_matrix"]
    )
    checks = _checks(result)
    ohlc = checks["ohlc_consistent"]
    assert not ohlc.passed and ohlc.severity == dg.AssetCheckSeverity.ERROR
    examples = _meta(ohlc, "examples")
    assert _meta(ohlc, "violations") == 2
    assert "AMD@2022-12-28" in examples and "high < low" in examples
    assert "MSFT@2022-12-28" in examples and "close > high" in examples
    assert "AAPL" not in examples
    # the old gates did not see it: every price is positive and finite
    assert checks["prices_positive_finite"].passed
    # an impossible bar blocks: the stage downstream did not run on it
    assert materialized_keys(result) == {"raw_bars"}


def test_clean_bars_pass_every_plausibility_check(tmp_path, sqlite_url, tech_closes):
    path = write_bars_file(tmp_path / "bars.csv", tech_closes)
    source = FileBarSource(path=path)
    preload_history(sqlite_url, source, TECH, "2022-12-27", 70)
    result = materialize(AS_OF, "technology", resources_for(sqlite_url, source), selection=["raw_bars"])
    checks = _checks(result)
    for name in ("ohlc_consistent", "price_jumps_plausible", "sector_has_two_usable_symbols"):
        assert checks[name].passed, (name, checks[name].metadata)
    assert _meta(checks["ohlc_consistent"], "bars_with_ohlc") == 3
    assert _meta(checks["sector_has_two_usable_symbols"], "usable_symbols") == 3


def test_a_close_of_1e308_and_a_doubling_are_flagged_as_implausible_with_the_bar_named(
    tmp_path, sqlite_url, tech_closes
):
    closes = tech_closes.copy()
    closes.loc[pd.Timestamp(AS_OF), "AMD"] = 1e308
    closes.loc[pd.Timestamp(AS_OF), "MSFT"] *= 2.0
    long = (
        closes.rename_axis("timestamp").reset_index().melt(id_vars="timestamp", var_name="symbol", value_name="close")
    )
    long["timestamp"] = long["timestamp"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "closes.csv"
    long[["open", "high", "low", "volume"]] = float("nan")  # closes only: OHLC unknown (empty fields)
    long[["symbol", "timestamp", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    source = FileBarSource(path=str(path))
    preload_history(sqlite_url, source, TECH, "2022-12-27", 70)

    result = materialize(AS_OF, "technology", resources_for(sqlite_url, source), selection=["raw_bars"])
    assert result.success
    checks = _checks(result)
    assert checks["prices_positive_finite"].passed  # 1e308 is positive and finite: the old gate let it through
    jumps = checks["price_jumps_plausible"]
    assert not jumps.passed and jumps.severity == dg.AssetCheckSeverity.WARN
    assert _meta(jumps, "flagged") == 2
    examples = _meta(jumps, "examples")
    assert "AMD@2022-12-28" in examples and "above price_max" in examples
    assert "MSFT@2022-12-28" in examples and "log return +0.69" in examples and "robust z" in examples
    assert "AAPL" not in examples
    # the store holds it (bars are never silently altered), but the sector's usable count drops AMD
    stored = MarketDataStore(database_url=sqlite_url).read_bars(
        ["AMD"], pd.Timestamp("2022-12-28", tz="UTC"), pd.Timestamp("2022-12-29", tz="UTC")
    )
    assert stored["close"].iloc[-1] == 1e308
    sector = checks["sector_has_two_usable_symbols"]
    assert sector.passed and _meta(sector, "usable_symbols") == 2
    # closes-only bars: nothing to contradict
    assert checks["ohlc_consistent"].passed and _meta(checks["ohlc_consistent"], "bars_with_ohlc") == 0


def test_a_one_symbol_sector_warns(sqlite_url):
    result = materialize(AS_OF, "industrial", resources_for(sqlite_url, EmbeddedBarSource()), selection=["raw_bars"])
    assert result.success
    sector = _checks(result)["sector_has_two_usable_symbols"]
    assert not sector.passed and sector.severity == dg.AssetCheckSeverity.WARN
    assert _meta(sector, "usable_symbols") == 1 and _meta(sector, "symbols") == "GE"
    assert "no pair can be formed" in _meta(sector, "note")


def test_the_first_sessions_of_a_load_are_judged_a_3x_jump_and_a_1e_300_close(tmp_path, sqlite_url, tech_closes):
    """Issue 21 item 8: a range load into an empty store — before, the jump check was green for its
    first 20 sessions (no robust scale yet) whatever the bars; now an absolute rule judges them."""
    from pairs_assets_tests.assets.graph_harness import materialize_raw_bars_range
    from pairs_assets_tests.planted import write_bars_file

    sessions = [str(s.date()) for s in tech_closes.index[:10]]
    closes = tech_closes.copy()
    closes.loc[pd.Timestamp(sessions[4]) :, "MSFT"] *= 3.0  # a 3× step that stays (an unadjusted split)
    closes.loc[pd.Timestamp(sessions[6]), "AMD"] = 1e-300
    path = write_bars_file(tmp_path / "bars.csv", closes)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = materialize_raw_bars_range(instance, sqlite_url, path, sessions)
        assert result.success  # the jump check warns; nothing blocks
        key = dg.AssetCheckKey(dg.AssetKey("raw_bars"), "price_jumps_plausible")
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
        evaluations = {r.partition: r.event.get_dagster_event().asset_check_evaluation_data for r in records}
    failed = {p.split("|")[0]: e for p, e in evaluations.items() if not e.passed}
    # AMD's 1e-300 and its return to a price are both flagged in their sessions
    assert sorted(failed) == [sessions[4], sessions[6], sessions[7]]
    msft = _meta(failed[sessions[4]], "examples")
    assert (
        f"MSFT@{sessions[4]}" in msft
        and "log return +1.0" in msft
        and "beyond 2x with fewer than 20 earlier returns" in msft
    )
    amd = _meta(failed[sessions[6]], "examples")
    assert f"AMD@{sessions[6]}" in amd and "close 1e-300" in amd and "below price_min 0.0001" in amd
    assert f"AMD@{sessions[7]}" in _meta(failed[sessions[7]], "examples")
    assert _meta(failed[sessions[4]], "jump_short_history_ratio_max") == 2.0
