"""The recycler against the real alpaca-py clients (stream and historical) on 127.0.0.1, bounded in time."""

from __future__ import annotations

import json
import math

import msgpack
import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import Bar
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pairs_assets.live.recycler import RecyclerError, RecyclerSettings, recycler_in_thread
from pairs_assets_tests.live.helpers import (
    TEST_SOURCE,
    WAIT_S,
    store_with_bars,
    stream_client,
    synthetic_bars,
    wait_until,
)
from resources.market_data import MarketDataStore

FAST = 60.0 / 0.02  # one step every 20 ms
SYMBOLS = ["AAPL", "KO", "MSFT", "PEP"]


@pytest.fixture()
def store(sqlite_url) -> MarketDataStore:
    return store_with_bars(sqlite_url, SYMBOLS, 30)


def settings(**kwargs) -> RecyclerSettings:
    base = dict(port=0, speed=FAST, mode="single_pass")
    base.update(kwargs)
    return RecyclerSettings(**base)


def test_stream_client_receives_bars_of_several_symbols_restamped(store):
    before = pd.Timestamp.now(tz="UTC")
    with recycler_in_thread(store, settings()) as recycler:
        with stream_client(recycler.ws_url, ["AAPL", "KO", "MSFT"]) as client:
            assert recycler.wait_finished(15), recycler.stats
            assert wait_until(lambda: len(client.received) == 90, WAIT_S), len(client.received)
    bars = client.received
    assert all(isinstance(b, Bar) for b in bars)
    assert {b.symbol for b in bars} == {"AAPL", "KO", "MSFT"}
    stored = store.read_bars(["AAPL"], pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    aapl = [b for b in bars if b.symbol == "AAPL"]
    assert [b.close for b in aapl] == pytest.approx(stored["close"].tolist())
    assert aapl[0].open == pytest.approx(stored["open"].iloc[0]) and aapl[0].trade_count == 10.0
    stamps = [pd.Timestamp(b.timestamp) for b in aapl]
    assert all(before <= s <= pd.Timestamp.now(tz="UTC") for s in stamps)  # re-stamped to the current time
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_keep_timestamps_and_loop_count(store):
    with recycler_in_thread(store, settings(mode="loop", loops=2, restamp=False)) as recycler:
        with stream_client(recycler.ws_url, ["PEP"]) as client:
            assert recycler.wait_finished(15)
            assert wait_until(lambda: len(client.received) == 60, WAIT_S), len(client.received)
    stored = store.read_bars(["PEP"], pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    expected = [t.to_pydatetime() for t in stored["timestamp"]] * 2
    assert [b.timestamp for b in client.received] == expected
    assert recycler.stats.passes_done == 2


def test_date_range_and_tail(store):
    with recycler_in_thread(
        store, settings(mode="date_range", start="2022-11-01T14:40:00Z", end="2022-11-01T14:44:00Z", restamp=False)
    ) as recycler:
        assert recycler.recycler.data.n_bars == 5 * len(SYMBOLS)
    with recycler_in_thread(store, settings(tail=3)) as recycler:
        assert len(recycler.recycler.data.steps) == 3
    with pytest.raises(RecyclerError, match="start and end"):
        settings(mode="date_range", start="2022-11-01")


def test_closes_only_bars_are_sent_filled_and_labelled(sqlite_url):
    store = store_with_bars(sqlite_url, ["AAPL"], 5, closes_only=True)
    with recycler_in_thread(store, settings(proxies={"ZZZ": "AAPL"})) as recycler:
        with stream_client(recycler.ws_url, ["AAPL", "ZZZ"], raw=True) as client:
            assert recycler.wait_finished(10)
            assert wait_until(lambda: len(client.received) == 10, WAIT_S)
    raw = client.received
    assert all(m["o"] == m["c"] and m["v"] == 0 and m["filled"] == ["o", "h", "l", "v"] for m in raw)
    assert {m["S"] for m in raw if m.get("proxy") == "AAPL"} == {"ZZZ"}
    assert all("proxy" not in m for m in raw if m["S"] == "AAPL")
    assert all(isinstance(m["t"], msgpack.Timestamp) for m in raw)


def test_empty_store_refuses_to_start(sqlite_url):
    with pytest.raises(RecyclerError, match="holds no bars"):
        with recycler_in_thread(MarketDataStore(database_url=sqlite_url), settings()):
            pass


def test_unknown_configured_symbols_are_named(store):
    with pytest.raises(RecyclerError, match="unknown symbol.*NOPE"):
        with recycler_in_thread(store, settings(symbols=("AAPL", "NOPE"))):
            pass
    with pytest.raises(RecyclerError, match="proxy ALSO of symbol NOPE"):
        with recycler_in_thread(store, settings(symbols=("NOPE",), proxies={"NOPE": "ALSO"})):
            pass
    with recycler_in_thread(store, settings(symbols=("AAPL", "NOPE"), default_proxy="KO")) as recycler:
        assert recycler.recycler.resolve("NOPE") == "KO"


def _recv(ws, timeout: float = WAIT_S):
    frame = ws.recv(timeout=timeout)
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


def test_malformed_and_unexpected_client_messages(store):
    with recycler_in_thread(store, settings(api_key="k", secret_key="s", start_on_subscribe=True)) as recycler:
        with connect(recycler.ws_url, open_timeout=WAIT_S) as ws:  # JSON client (no msgpack header)
            assert _recv(ws) == [{"T": "success", "msg": "connected"}]
            ws.send(b"\xc1\xc1 not msgpack")
            assert _recv(ws)[0]["code"] == 400
            ws.send("{not json")
            assert _recv(ws)[0]["code"] == 400
            ws.send(json.dumps([1, 2, 3]))
            assert "expected a map" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL"]}))
            assert _recv(ws)[0]["code"] == 401  # before auth
            ws.send(json.dumps({"action": "dance"}))
            assert "unknown action 'dance'" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"hello": 1}))
            assert "without 'action'" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
            assert _recv(ws) == [{"T": "success", "msg": "authenticated"}]
            ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
            assert _recv(ws)[0]["code"] == 403
            ws.send(json.dumps({"action": "subscribe", "bars": "AAPL"}))
            assert "'bars' must be a list" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "subscribe", "bars": ["aapl; drop"]}))
            assert "invalid symbol" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "subscribe", "candles": ["AAPL"]}))
            assert "unknown channel(s) candles" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL", "NOPE"], "trades": ["AAPL"]}))
            replies = [_recv(ws)[0] for _ in range(3)]
            errors = " | ".join(r["msg"] for r in replies if r["T"] == "error")
            assert "unknown symbol(s) NOPE" in errors and "bars only" in errors
            ack = next(r for r in replies if r["T"] == "subscription")
            assert ack["bars"] == ["AAPL"] and ack["trades"] == []
            first_bar = _recv(ws)[0]  # the connection survived all of it and streams
            assert first_bar["T"] == "b" and first_bar["S"] == "AAPL" and first_bar["t"].endswith("Z")
        assert recycler.stats.protocol_errors >= 11


def test_authentication_and_auth_timeout(store):
    with recycler_in_thread(store, settings(api_key="right", secret_key="keys", auth_timeout_s=5.0)) as recycler:
        with connect(
            recycler.ws_url, open_timeout=WAIT_S, additional_headers={"Content-Type": "application/msgpack"}
        ) as ws:
            _recv(ws)
            ws.send(msgpack.packb({"action": "auth", "key": "wrong", "secret": "keys"}))
            assert _recv(ws) == [{"T": "error", "code": 402, "msg": "auth failed"}]
            with pytest.raises(ConnectionClosed):
                _recv(ws, timeout=WAIT_S)  # closed by the server (a timeout would mean it was not)
        with connect(recycler.ws_url, open_timeout=WAIT_S) as ws:
            _recv(ws)
            # nothing sent: the 404 after the 5 s auth timeout (5 s, not 0.5: the first client must
            # get its wrong keys in before it on a loaded machine)
            assert _recv(ws)[0]["code"] == 404
        # the real client with wrong keys never gets a bar
        with stream_client(recycler.ws_url, ["AAPL"], key="wrong", secret="keys") as client:
            assert not wait_until(lambda: client.received, 1.0)
        assert recycler.stats.steps_emitted == 0


def test_bad_stream_path_is_refused(store):
    with recycler_in_thread(store, settings()) as recycler:
        with pytest.raises(Exception, match="404"):
            connect(recycler.http_url.replace("http", "ws") + "/v1/nothing", open_timeout=WAIT_S)


def test_historical_client_reads_all_pages(store):
    with recycler_in_thread(store, settings(max_page_size=7)) as recycler:
        client = StockHistoricalDataClient("key", "secret", url_override=recycler.http_url)
        barset = client.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols=["AAPL", "MSFT", "NOPE"],
                timeframe=TimeFrame.Minute,
                start=pd.Timestamp("2022-11-01", tz="UTC").to_pydatetime(),
            )
        )
        assert recycler.stats.http_requests >= math.ceil(60 / 7)
        stored = store.read_bars(
            ["AAPL", "MSFT"], pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC")
        )
        assert set(barset.data) == {"AAPL", "MSFT"}
        for symbol in ("AAPL", "MSFT"):
            got = barset.data[symbol]
            want = stored[stored["symbol"] == symbol]
            assert [b.close for b in got] == pytest.approx(want["close"].tolist())
            assert [pd.Timestamp(b.timestamp) for b in got] == list(want["timestamp"])
        window = client.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="KO",
                timeframe=TimeFrame.Minute,
                limit=5,
                start=pd.Timestamp("2022-11-01T14:35:00Z").to_pydatetime(),
                end=pd.Timestamp("2022-11-01T14:50:00Z").to_pydatetime(),
            )
        )
        assert [pd.Timestamp(b.timestamp).strftime("%H:%M") for b in window.data["KO"]] == [
            "14:35",
            "14:36",
            "14:37",
            "14:38",
            "14:39",
        ]


def test_historical_endpoint_checks_keys_and_parameters(store):
    with recycler_in_thread(store, settings(api_key="right", secret_key="keys")) as recycler:
        wrong = StockHistoricalDataClient("wrong", "keys", url_override=recycler.http_url)
        with pytest.raises(APIError) as denied:
            wrong.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day))
        assert denied.value.status_code == 401
        right = StockHistoricalDataClient("right", "keys", url_override=recycler.http_url)
        with pytest.raises(APIError) as bad:
            right._get_marketdata(path="/stocks/bars", params={"symbols": "AAPL", "timeframe": "7Fortnights"})
        assert bad.value.status_code == 422 and "timeframe" in str(bad.value)
        with pytest.raises(APIError) as bad_symbol:
            right._get_marketdata(path="/stocks/bars", params={"symbols": "AAPL,bad symbol", "timeframe": "1Day"})
        assert bad_symbol.value.status_code == 400 and "bad symbol" in str(bad_symbol.value)


def test_settings_are_validated():
    with pytest.raises(RecyclerError, match="mode"):
        RecyclerSettings(mode="sometimes")
    with pytest.raises(RecyclerError, match="speed"):
        RecyclerSettings(speed=0)
    with pytest.raises(RecyclerError, match="loops"):
        RecyclerSettings(loops=0)
    with pytest.raises(RecyclerError, match="key and secret"):
        RecyclerSettings(api_key="only-key")
    assert "TOPSECRET" not in repr(RecyclerSettings(api_key="k", secret_key="TOPSECRET"))
    assert RecyclerSettings(speed=2.0).step_seconds == 30.0
    assert RecyclerSettings(speed=math.inf).step_seconds == 0.0
    assert synthetic_bars(["A"], 1)["source"].iloc[0] == TEST_SOURCE


def test_the_emitted_bar_log_is_capped_in_total_not_per_symbol(store):
    """Issue 21 item 10: the log was capped per symbol (500,000 each: ~36 MB a symbol, 943 MB with 20)."""
    from pairs_assets.live.recycler.history import HistoryEndpoint

    symbols = [f"S{i:02d}" for i in range(20)]
    endpoint = HistoryEndpoint(store, settings(max_emitted_bars=1_000))
    values = (1.0, 1.0, 1.0, 1.0, 100.0, 1.0, 1.0)
    for step in range(200):  # 200 steps × 20 symbols = 4,000 bars emitted
        endpoint.record({s: values for s in symbols}, pd.Timestamp("2026-01-02T15:00:00Z") + pd.Timedelta(minutes=step))
    assert endpoint.emitted_bars_kept == 1_000
    kept = endpoint.emitted_bars()
    assert len(kept) == 1_000 and kept.groupby("symbol").size().eq(50).all()  # the newest 50 steps of each
    assert kept["timestamp"].min() == pd.Timestamp("2026-01-02T15:00:00Z") + pd.Timedelta(minutes=150)
    with pytest.raises(RecyclerError, match="max_emitted_bars must be at least 1, got 0"):
        settings(max_emitted_bars=0)


def test_deeply_nested_json_and_a_lone_surrogate_key_get_alpacas_400(store, caplog):
    """Issue 21 item 10: both closed the connection with 1011 and logged a server traceback."""
    caplog.set_level("DEBUG")
    with recycler_in_thread(store, settings()) as recycler:
        with connect(recycler.ws_url, open_timeout=WAIT_S) as ws:  # a real websockets client, JSON frames
            assert _recv(ws) == [{"T": "success", "msg": "connected"}]
            ws.send("[" * 100_000 + "]" * 100_000)
            assert _recv(ws) == [{"T": "error", "code": 400, "msg": "invalid syntax: frame nested too deeply"}]
            ws.send('{"\\ud800": 1}')  # valid JSON text: a key of one lone surrogate
            reply = _recv(ws)[0]
            assert reply["code"] == 400 and "without 'action' (keys: \\ud800)" in reply["msg"]
            ws.send('{"action": "\\udfff"}')
            assert "unknown action" in _recv(ws)[0]["msg"]
            ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))  # the connection still works
            assert _recv(ws) == [{"T": "success", "msg": "authenticated"}]
        assert recycler.stats.protocol_errors == 3
    failures = [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")]
    assert not failures, [r.getMessage() for r in failures]
