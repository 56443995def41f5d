"""Shared helpers of the live tests: synthetic bar stores, a stream client in a thread, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from alpaca.data.live import StockDataStream

from resources.market_data import MarketDataStore

TEST_SOURCE = "test:synthetic"


def synthetic_bars(
    symbols: list[str],
    n: int,
    *,
    start: str = "2022-11-01 14:30",
    freq: str = "1min",
    closes_only: bool = False,
    source: str = TEST_SOURCE,
    seed: int = 7,
) -> pd.DataFrame:
    """``n`` bars per symbol (random walks) in the bars contract; ``closes_only`` leaves OHLV null."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    rows = []
    for k, symbol in enumerate(symbols):
        close = 50.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        for t, c in zip(times, close):
            rows.append(
                {
                    "symbol": symbol,
                    "timestamp": t,
                    "open": np.nan if closes_only else c * 0.999,
                    "high": np.nan if closes_only else c * 1.002,
                    "low": np.nan if closes_only else c * 0.997,
                    "close": c,
                    "volume": np.nan if closes_only else 1000.0 + k,
                    "trade_count": np.nan if closes_only else 10.0,
                    "vwap": np.nan if closes_only else c,
                    "source": source,
                }
            )
    return pd.DataFrame(rows)


def store_with_bars(url: str, symbols: list[str], n: int, **kwargs) -> MarketDataStore:
    store = MarketDataStore(database_url=url)
    store.upsert_bars(synthetic_bars(symbols, n, **kwargs), context="test")
    return store


#: a test's wait for a frame, a counter or a process: generous, because a loaded 2-core machine stalls
#: threads for seconds; it only bounds a hung test (each wait ends on what it waits for, never on the clock)
WAIT_S = 60


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class StreamClient:
    """The real alpaca-py ``StockDataStream`` running in a thread, collecting what it receives."""

    def __init__(
        self,
        url: str,
        symbols: list[str],
        *,
        key: str = "key",
        secret: str = "secret",
        raw: bool = False,
        channel: str = "bars",
    ) -> None:
        self.received: list = []
        self.stream = StockDataStream(key, secret, raw_data=raw, url_override=url)

        async def handler(item) -> None:
            self.received.append(item)

        getattr(self.stream, f"subscribe_{'bars' if channel == 'bars' else 'daily_bars'}")(handler, *symbols)
        self.thread = threading.Thread(target=self.stream.run, name="test-stream", daemon=True)

    def start(self) -> StreamClient:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the stream (close the socket so it does not wait for its 5 s receive poll)."""
        deadline = time.monotonic() + timeout
        while self.thread.is_alive() and getattr(self.stream, "_loop", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = getattr(self.stream, "_loop", None)
        if self.thread.is_alive() and loop is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stream.stop_ws(), loop).result(5)
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.stream.close(), loop).result(5)
        self.thread.join(max(0.1, deadline - time.monotonic()))
        assert not self.thread.is_alive(), "the alpaca-py stream did not stop"


@contextlib.contextmanager
def stream_client(url: str, symbols: list[str], **kwargs) -> Iterator[StreamClient]:
    client = StreamClient(url, symbols, **kwargs).start()
    try:
        yield client
    finally:
        client.stop()
