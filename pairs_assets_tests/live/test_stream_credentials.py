"""Alpaca's keys go only to Alpaca's own hosts over TLS — never to a recycler or any other URL.

A capture server on 127.0.0.1 speaks just enough of Alpaca's stream protocol (connected, auth,
subscribe, one bar) and of its historical endpoint to keep a real ``pairs stream`` busy: it drops
every connection after one bar, so the client reconnects and backfills the gap over HTTP. It
records every credential it is sent, on every connection and every HTTP request. Bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import msgpack
import pandas as pd
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from pairs_assets.live.stream import (
    ANONYMOUS_RECYCLER_KEY,
    StreamError,
    StreamIngestor,
    StreamSettings,
    is_alpaca_url,
)
from pairs_assets.market import wire
from pairs_assets_tests.live.helpers import wait_until
from resources.market_data import MarketDataStore

ROOT = Path(__file__).resolve().parents[2]
ALPACA_KEY = "AKLEAKCANARY0001"
ALPACA_SECRET = "SKLEAKCANARYSECRET0001"
ALPACA_ENV = {"ALPACA_API_KEY": ALPACA_KEY, "ALPACA_SECRET_KEY": ALPACA_SECRET}
FIRST_BAR = pd.Timestamp("2024-03-04 15:00", tz="UTC")


class CaptureServer:
    """A non-Alpaca host: records (channel, key, secret) of every auth message and HTTP request."""

    def __init__(self) -> None:
        self.credentials: list[tuple[str, str, str]] = []
        self.connections = 0
        self.http_requests = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/iex"

    def received(self) -> str:
        """Everything any client sent as a credential, joined (for the leak asserts)."""
        return " ".join(f"{key} {secret}" for _, key, secret in self.credentials)

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, process_request=self._process_request) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._started.set()
            await self._stopping.wait()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if (request.headers.get("Upgrade") or "").lower() == "websocket":
            return None
        self.http_requests += 1
        self.credentials.append(
            ("http", request.headers.get("APCA-API-KEY-ID") or "", request.headers.get("APCA-API-SECRET-KEY") or "")
        )
        path = urlsplit(request.path).path
        body = json.dumps(
            {"bars": {}, "next_page_token": None} if path == "/v2/stocks/bars" else {"message": "not found"}
        ).encode()
        status = 200 if path == "/v2/stocks/bars" else 404
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
        )
        return Response(status, "OK" if status == 200 else "Not Found", headers, body)

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        n = self.connections
        await ws.send(msgpack.packb([{"T": "success", "msg": "connected"}]))
        auth = msgpack.unpackb(await ws.recv())
        self.credentials.append(("ws", str(auth.get("key")), str(auth.get("secret"))))
        await ws.send(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        subscribe = msgpack.unpackb(await ws.recv())
        symbols = list(subscribe.get("bars") or [])
        await ws.send(msgpack.packb([wire.subscription_message({"bars": symbols})], default=_msgpack_default))
        # one bar per connection, 5 minutes apart: every reconnect leaves a gap the stream backfills
        bars = [
            wire.bar_message(
                s, FIRST_BAR + pd.Timedelta(minutes=5 * n), open=10.0, high=10.5, low=9.5, close=10.0, volume=100.0
            )
            for s in symbols
        ]
        await ws.send(msgpack.packb(bars, default=_msgpack_default))
        await ws.close()

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        assert self._started.wait(10), "capture server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)


def _msgpack_default(value):
    raise TypeError(f"cannot pack {type(value).__name__}")


def _run_ingestor(settings: StreamSettings, store: MarketDataStore, until) -> StreamIngestor:
    ingestor = StreamIngestor(store, settings, echo=lambda line: None)
    thread = threading.Thread(target=ingestor.run, kwargs={"max_seconds": 60}, daemon=True)
    thread.start()
    try:
        assert wait_until(until, 45), "the capture server did not see the reconnects in time"
    finally:
        ingestor.stop()
        thread.join(20)
    assert not thread.is_alive(), "the ingestor did not stop"
    return ingestor


def test_alpaca_keys_never_reach_a_non_alpaca_stream_across_reconnects(sqlite_url):
    environ = dict(ALPACA_ENV)  # PAIRS_RECYCLER_KEY unset: the case that used to fall back to Alpaca's keys
    with CaptureServer() as server:
        settings = StreamSettings.from_env(["KO"], url=server.ws_url, environ=environ, flush_interval_s=0.05)
        _run_ingestor(
            settings,
            MarketDataStore(database_url=sqlite_url),
            lambda: server.connections >= 3 and server.http_requests >= 1,
        )
    channels = {channel for channel, _, _ in server.credentials}
    assert channels == {"ws", "http"}  # the stream auth and the gap backfill were both seen
    assert sum(channel == "ws" for channel, _, _ in server.credentials) >= 3
    assert ALPACA_KEY not in server.received() and ALPACA_SECRET not in server.received()
    assert {(key, secret) for _, key, secret in server.credentials} == {
        (ANONYMOUS_RECYCLER_KEY, ANONYMOUS_RECYCLER_KEY)
    }


def test_a_recycler_gets_its_own_credentials(sqlite_url):
    environ = {**ALPACA_ENV, "PAIRS_RECYCLER_KEY": "RKEY", "PAIRS_RECYCLER_SECRET": "RSECRET"}
    with CaptureServer() as server:
        settings = StreamSettings.from_env(["KO"], url=server.ws_url, environ=environ, flush_interval_s=0.05)
        _run_ingestor(
            settings,
            MarketDataStore(database_url=sqlite_url),
            lambda: server.connections >= 2 and server.http_requests >= 1,
        )
    assert {(key, secret) for _, key, secret in server.credentials} == {("RKEY", "RSECRET")}


def test_alpaca_stream_with_a_foreign_historical_url_keeps_the_keys_off_it(sqlite_url):
    """Alpaca's stream may have the keys; a --historical-url elsewhere gets the recycler's."""
    with CaptureServer() as server:
        settings = StreamSettings.from_env(
            ["KO"], url=None, environ=dict(ALPACA_ENV), historical_url=f"http://127.0.0.1:{server.port}"
        )
        assert settings.stream_credentials() == (ALPACA_KEY, ALPACA_SECRET)
        assert ALPACA_KEY not in settings.history_credentials() and ALPACA_SECRET not in settings.history_credentials()
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        ingestor = StreamIngestor(MarketDataStore(database_url=sqlite_url), settings, echo=lambda line: None)
        ingestor._history().get_stock_bars(
            StockBarsRequest(symbol_or_symbols=["KO"], timeframe=TimeFrame.Minute, start=FIRST_BAR.to_pydatetime())
        )
    assert server.http_requests == 1
    assert ALPACA_KEY not in server.received() and ALPACA_SECRET not in server.received()


def test_pairs_stream_command_sends_no_alpaca_key_to_a_ws_url(tmp_path):
    """The command a user runs, in its own process, with Alpaca's keys in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PAIRS_RECYCLER_KEY", "PAIRS_RECYCLER_SECRET")}
    env.update(ALPACA_ENV, PAIRS_HOME=str(tmp_path / "home"))
    with CaptureServer() as server:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pairs_assets.live.commands",
                "stream",
                "--url",
                server.ws_url,
                "--symbols",
                "KO",
                "--max-seconds",
                "90",
                "--flush-interval",
                "0.1",
                "--database-url",
                f"sqlite:///{tmp_path / 'bars.sqlite'}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            reached = wait_until(lambda: server.connections >= 3 or process.poll() is not None, 60)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert reached and server.connections >= 3, (out, err[-3000:])
    assert process.returncode == 0, err[-3000:]
    assert ALPACA_KEY not in server.received() and ALPACA_SECRET not in server.received()
    assert ALPACA_KEY not in out + err and ALPACA_SECRET not in out + err


@pytest.mark.parametrize(
    ("url", "alpaca"),
    [
        (None, True),  # alpaca-py's own default, wss://stream.data.alpaca.markets
        ("wss://stream.data.alpaca.markets/v2/iex", True),
        ("wss://stream.data.sandbox.alpaca.markets/v2/iex", True),
        ("https://data.alpaca.markets", True),
        ("wss://alpaca.markets/v2/iex", True),
        ("ws://stream.data.alpaca.markets/v2/iex", False),  # no TLS
        ("http://data.alpaca.markets", False),
        ("wss://stream.data.alpaca.markets.evil.example/v2/iex", False),
        ("wss://evilalpaca.markets/v2/iex", False),
        ("wss://stream.data.alpaca.markets@evil.example/v2/iex", False),
        ("wss://evil.example/stream.data.alpaca.markets", False),
        ("wss://evil.example#.alpaca.markets", False),
        ("ws://127.0.0.1:8765/v2/iex", False),
        ("wss://127.0.0.1:8765/v2/iex", False),
    ],
)
def test_only_alpaca_hosts_over_tls_count_as_alpaca(url, alpaca):
    assert is_alpaca_url(url) is alpaca
    if url is None or url.startswith("ws"):
        settings = StreamSettings.from_env(["KO"], url=url, environ=dict(ALPACA_ENV))
        assert (settings.stream_credentials() == (ALPACA_KEY, ALPACA_SECRET)) is alpaca
        if not alpaca:
            assert (
                ALPACA_KEY not in settings.stream_credentials() and ALPACA_SECRET not in settings.stream_credentials()
            )
            assert ALPACA_KEY not in settings.history_credentials()
            assert settings.source_label == "recycler:iex"
        else:
            assert settings.source_label == "alpaca:iex-stream"


def test_an_explicit_alpaca_url_without_keys_is_refused():
    with pytest.raises(StreamError, match="ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        StreamSettings.from_env(["KO"], url="wss://stream.data.alpaca.markets/v2/iex", environ={})
