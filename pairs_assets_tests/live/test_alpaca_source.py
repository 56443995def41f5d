"""AlpacaBarSource (alpaca-py StockHistoricalDataClient) against the recycler's historical endpoint."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from pairs_assets.live.recycler import RecyclerSettings, recycler_in_thread
from pairs_assets.market.symbology import parse_timeframe
from pairs_assets_tests.live.helpers import store_with_bars
from resources.alpaca_source import AlpacaBarSource, AlpacaSourceError
from resources.bar_sources import EmbeddedBarSource
from resources.bars import BAR_COLUMNS, validate_bars
from resources.market_data import MarketDataStore

START, END = pd.Timestamp("2022-11-01", tz="UTC"), pd.Timestamp("2022-12-29", tz="UTC")


def test_daily_bars_match_the_stored_ones_with_paging(sqlite_url):
    embedded = EmbeddedBarSource().load_bars(["KO", "PEP"], START, END)
    store = MarketDataStore(database_url=sqlite_url)
    store.upsert_bars(embedded, context="test")
    with recycler_in_thread(
        store, RecyclerSettings(port=0, max_page_size=9, api_key="AKTEST", secret_key="SKTEST")
    ) as recycler:
        source = AlpacaBarSource(api_key="AKTEST", secret_key="SKTEST", url_override=recycler.http_url)
        bars = source.load_bars(["PEP", "KO", "NOPE"], START, END)
        assert recycler.stats.http_requests >= len(embedded) // 9
    assert source.source_name == "alpaca:iex" and (bars["source"] == "alpaca:iex").all()
    assert list(bars.columns) == BAR_COLUMNS
    validate_bars(bars, context="test")
    expected = embedded.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert bars[["symbol", "timestamp"]].equals(expected[["symbol", "timestamp"]])  # stamped at the session close
    assert (bars["close"] - expected["close"]).abs().max() < 1e-12
    assert bars["open"].isna().all() and bars["volume"].isna().all()  # closes-only data stays closes-only
    window = source.model_copy(update={"url_override": recycler.http_url})
    assert "SKTEST" not in repr(window) and "SKTEST" not in window.describe()


def test_intraday_bars_keep_their_timestamps(sqlite_url):
    store = store_with_bars(sqlite_url, ["AAPL"], 20)
    with recycler_in_thread(store, RecyclerSettings(port=0)) as recycler:
        source = AlpacaBarSource(api_key="k", secret_key="s", timeframe="1Min", url_override=recycler.http_url)
        bars = source.load_bars(["AAPL"], pd.Timestamp("2022-11-01T14:35Z"), pd.Timestamp("2022-11-01T14:39Z"))
    assert [t.strftime("%H:%M") for t in bars["timestamp"]] == ["14:35", "14:36", "14:37", "14:38", "14:39"]
    assert bars["volume"].notna().all()


def test_errors_name_the_cause_but_never_the_secret(sqlite_url):
    with pytest.raises(AlpacaSourceError, match="ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        AlpacaBarSource().load_bars(["KO"], START, END)
    store = store_with_bars(sqlite_url, ["KO"], 5)
    with recycler_in_thread(store, RecyclerSettings(port=0, api_key="right", secret_key="keys")) as recycler:
        with pytest.raises(AlpacaSourceError, match=r"refused bars of KO \(HTTP 401\)") as denied:
            AlpacaBarSource(api_key="wrong", secret_key="VERYSECRET", url_override=recycler.http_url).load_bars(
                ["KO"], START, END
            )
    assert "VERYSECRET" not in str(denied.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(AlpacaSourceError, match="unreachable"):
        AlpacaBarSource(api_key="k", secret_key="s", url_override=f"http://127.0.0.1:{closed_port}").load_bars(
            ["KO"], START, END
        )
    with pytest.raises(ValueError, match="timeframe"):
        parse_timeframe("2Fortnights")
    assert parse_timeframe("5Min").value == "5Min"
