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

    result = materialize(AS_OF, "technology", resources_for(sqlite_url, source), selection=["raw_bars", "correlation_matrix"])
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


def test_a_close_of_1e308_and_a_doubling_are_flagged_as_implausible_with_the_bar_named(tmp_path, sqlite_url, tech_closes):
    closes = tech_closes.copy()
    closes.loc[pd.Timestamp(AS_OF), "AMD"] = 1e308
    closes.loc[pd.Timestamp(AS_OF), "MSFT"] *= 2.0
    long = closes.rename_axis("timestamp").reset_index().melt(id_vars="timestamp", var_name="symbol", value_name="close")
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
