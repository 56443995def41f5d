"""Live symbol management (file, status) and the click commands of the live path."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pairs_assets.live import symbols as live
from pairs_assets.live.commands import main
from pairs_assets.settings import EMBEDDED_UNIVERSE_FILE
from pairs_assets_tests.live.helpers import store_with_bars
from resources.market_data import MarketDataStore


def test_file_round_trip_is_atomic_and_validated(tmp_path):
    path = tmp_path / "live_symbols.json"
    config = live.add_symbols(live.LiveSymbols(), ["ko", "PEP", "KO"])
    config = live.set_proxy(config, "XYZ", "AAPL")
    live.save_live_symbols(config, path)
    assert [p.name for p in tmp_path.iterdir()] == ["live_symbols.json"]  # no temp file left behind
    loaded = live.load_live_symbols(path, universe_file=EMBEDDED_UNIVERSE_FILE)
    assert loaded == config and loaded.symbols == ("KO", "PEP") and loaded.proxy_for("XYZ") == "AAPL"
    assert json.loads(path.read_text())["schema_version"] == 1
    with pytest.raises(live.LiveSymbolsError, match="not in the live list"):
        live.remove_symbols(loaded, ["MSFT"])
    with pytest.raises(live.LiveSymbolsError, match="'BAD SYMBOL' is not a ticker"):
        live.add_symbols(loaded, ["BAD SYMBOL"])
    with pytest.raises(live.LiveSymbolsError, match="cannot be its own proxy"):
        live.set_proxy(loaded, "KO", "KO")
    path.write_text(json.dumps({"symbols": "KO"}))
    with pytest.raises(live.LiveSymbolsError, match="field 'symbols' must be a list"):
        live.load_live_symbols(path, universe_file=EMBEDDED_UNIVERSE_FILE)
    path.write_text(json.dumps({"mode": "yolo"}))
    with pytest.raises(live.LiveSymbolsError, match="mode must be one of replay, alpaca"):
        live.load_live_symbols(path, universe_file=EMBEDDED_UNIVERSE_FILE)


def test_defaults_come_from_the_universe(tmp_path):
    config = live.load_live_symbols(tmp_path / "absent.json", universe_file=EMBEDDED_UNIVERSE_FILE)
    assert config.mode == "replay" and "KO" in config.symbols and "AAPL" in config.symbols


def test_status_counts_bars_and_names_proxies(sqlite_url):
    store = store_with_bars(sqlite_url, ["AAPL", "KO"], 12)
    config = live.LiveSymbols(symbols=("AAPL", "KO", "NEW", "ZZZ"), proxies={"NEW": "AAPL"})
    table = live.symbol_status(config, store.bar_counts()).set_index("symbol")
    assert table.loc["KO", "bars"] == 12 and table.loc["KO", "status"] == "data"
    assert table.loc["NEW", "proxy"] == "AAPL" and table.loc["NEW", "status"] == "proxy"
    assert table.loc["ZZZ", "status"] == "missing"


def test_symbols_commands(tmp_path, sqlite_url):
    store_with_bars(sqlite_url, ["KO"], 3)
    path = str(tmp_path / "live.json")
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["symbols", "--symbols-file", path, *args])
        return result

    assert run("from-universe", "--sector", "consumer").exit_code == 0
    assert run("add", "NEW,ZZZ").exit_code == 0
    assert run("proxy", "NEW", "KO").exit_code == 0
    assert run("remove", "BBY").exit_code == 0
    assert run("mode", "alpaca").exit_code == 0
    status = run("status", "--database-url", sqlite_url)
    assert status.exit_code == 0, status.output
    assert "mode:         alpaca" in status.output and "without data or proxy: HD, PEP, PG, WMT, ZZZ" in status.output
    as_json = json.loads(run("status", "--database-url", sqlite_url, "--json").output)
    rows = {r["symbol"]: r for r in as_json["status"]}
    assert rows["NEW"]["status"] == "proxy" and rows["KO"]["bars"] == 3 and "BBY" not in rows
    bad = run("remove", "MSFT")
    assert bad.exit_code == 2 and "MSFT are not in the live list" in bad.output
    assert run("unproxy", "NEW").exit_code == 0 and run("default-proxy", "KO").exit_code == 0
    assert live.load_live_symbols(tmp_path / "live.json", universe_file=EMBEDDED_UNIVERSE_FILE).default_proxy == "KO"


def test_recycler_command_refuses_an_empty_store_with_a_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    MarketDataStore(database_url=url).bar_counts()
    result = CliRunner().invoke(main, ["recycler", "--port", "0", "--database-url", url, "--all-symbols"])
    assert result.exit_code == 2 and "holds no bars" in result.output
    bad = CliRunner().invoke(main, ["recycler", "--proxy", "XYZ", "--database-url", url])
    assert bad.exit_code == 2 and "SYMBOL=PROXY" in bad.output


def test_stream_command_needs_keys_for_alpaca(tmp_path, monkeypatch):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET_KEY", raising=False)
    result = CliRunner().invoke(
        main, ["stream", "--alpaca", "--symbols", "KO", "--symbols-file", str(tmp_path / "x.json")]
    )
    assert result.exit_code == 2 and "ALPACA_API_KEY and ALPACA_SECRET_KEY" in result.output
