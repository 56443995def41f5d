"""Stream ingestion: Alpaca's (or the recycler's) live bars → the market data store.

alpaca-py's ``StockDataStream`` runs its own event loop in a background thread and already
reconnects with exponential backoff and jitter (1 s … 30 s). Its bar handler only puts the raw
message on a queue; the calling thread validates the bars (``alpaca.data.models.Bar``, then the
bars contract), writes them in batches with the store's idempotent upsert (key: symbol, timestamp,
source), backfills gaps and reports counts.

No duplicate, no lost bar:

* duplicates — the store's primary key (symbol, timestamp, source) makes every write an upsert;
* losses on a dropped connection — the stream does not resend what it sent while a client was
  away (neither does Alpaca's). After a reconnect, the first bar of each symbol at time T1 is
  compared with the last bar received before the drop at T0; the bars strictly between T0 and T1
  are fetched from the historical endpoint (``StockHistoricalDataClient``; the recycler serves
  it too) and written with the same source;
* losses on shutdown — SIGINT/SIGTERM stop the stream, join its thread, then drain the queue and
  flush: every bar the handler received is written before the process exits.

Sources: ``alpaca:<feed>-stream`` from Alpaca, ``recycler:<feed>`` from a recycler (so replayed
bars never overwrite the originals they were replayed from); bars a recycler served under a
stand-in symbol get ``…+proxy:<SYMBOL>``. Keys come from the environment and are never logged.

Credentials by destination: Alpaca's keys (``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``) are sent
only to Alpaca's own hosts over TLS (``wss://`` or ``https://`` to ``alpaca.markets`` or a
subdomain, see ``is_alpaca_url``). Every other URL — a recycler, a stand-in, a plain ``ws://`` —
gets the recycler's credentials (``PAIRS_RECYCLER_KEY`` / ``PAIRS_RECYCLER_SECRET``) or an
anonymous placeholder, on the first connection, on every reconnect and on every backfill request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import pandas as pd
from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream

from pairs_assets.errors import PairsError
from pairs_assets.market import wire
from pairs_assets.market.endpoints import (  # the one destination rule; re-exported for the stream's callers
    ALPACA_DOMAIN,
    ANONYMOUS_RECYCLER_KEY,
    ENV_API_KEY,
    ENV_RECYCLER_KEY,
    ENV_RECYCLER_SECRET,
    ENV_SECRET_KEY,
    CredentialsDestinationError,
    alpaca_key_values,
    credentials_for_destination,
    is_alpaca_url,
)
from resources.bars import BAR_COLUMNS
from resources.market_data import MarketDataStore

log = logging.getLogger(__name__)

__all__ = [
    "ALPACA_DOMAIN",
    "ANONYMOUS_RECYCLER_KEY",
    "ENV_API_KEY",
    "ENV_RECYCLER_KEY",
    "ENV_RECYCLER_SECRET",
    "ENV_SECRET_KEY",
    "StreamError",
    "StreamIngestor",
    "StreamSettings",
    "StreamStats",
    "is_alpaca_url",
]


def _history_url_for(url: str | None, historical_url: str | None) -> str | None:
    """Base URL of the historical endpoint (None: Alpaca's) for a stream ``url``."""
    if historical_url:
        return historical_url
    if is_alpaca_url(url):
        return None
    parts = urlsplit(url)
    return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"


class StreamError(PairsError, RuntimeError):
    """The stream cannot start (no keys for Alpaca, no symbols, bad URL); the message says which."""


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What to subscribe to and where to write. ``url=None`` means Alpaca's own stream.

    ``api_key``/``secret_key`` are Alpaca's keys: sent only where ``is_alpaca_url`` holds.
    ``recycler_key``/``recycler_secret`` go everywhere else (None: an anonymous placeholder).
    """

    symbols: tuple[str, ...]
    url: str | None = None
    feed: str = "iex"
    api_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    recycler_key: str | None = dataclasses.field(default=None, repr=False)
    recycler_secret: str | None = dataclasses.field(default=None, repr=False)
    source: str | None = None
    historical_url: str | None = None
    backfill_timeframe: str = "1Min"
    backfill: bool = True
    flush_interval_s: float = 1.0
    batch_size: int = 1000
    report_interval_s: float = 30.0
    data_timeout_s: float | None = None
    restart_min_backoff_s: float = 1.0
    restart_max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise StreamError("no symbols to stream: pass --symbols or add some with `pairs symbols add`")
        try:
            DataFeed(self.feed)
        except ValueError:
            raise StreamError(f"unknown feed {self.feed!r} (iex or sip)") from None
        if self.url is not None and urlsplit(self.url).scheme not in ("ws", "wss"):
            raise StreamError(f"stream url must start with ws:// or wss://, got {self.url!r}")
        needs_alpaca = is_alpaca_url(self.url) or (self.backfill and is_alpaca_url(self.history_url))
        if needs_alpaca and not (self.api_key and self.secret_key):
            where = (
                "streaming from Alpaca" if is_alpaca_url(self.url) else "backfilling from Alpaca's historical endpoint"
            )
            raise StreamError(
                f"{where} needs {ENV_API_KEY} and {ENV_SECRET_KEY} in the environment "
                "(or use the recycler: `pairs stream --url ws://127.0.0.1:8765/v2/iex`)"
            )
        self.stream_credentials()  # refuse now, not at the first (re)connection, if a key would go astray
        if self.backfill:
            self.history_credentials()

    @property
    def source_label(self) -> str:
        if self.source:
            return self.source
        return f"alpaca:{self.feed}-stream" if is_alpaca_url(self.url) else f"recycler:{self.feed}"

    @property
    def history_url(self) -> str | None:
        """Base URL of the historical endpoint used for backfills (None: Alpaca's)."""
        return _history_url_for(self.url, self.historical_url)

    def credentials_for(self, url: str | None) -> tuple[str, str]:
        """(key, secret) to send to ``url``: Alpaca's keys only to Alpaca over TLS, else the recycler's
        (``market.endpoints.credentials_for_destination``: a recycler key equal to one of Alpaca's is refused)."""
        if is_alpaca_url(url):
            if not (self.api_key and self.secret_key):
                raise StreamError(f"Alpaca's endpoint needs {ENV_API_KEY} and {ENV_SECRET_KEY} in the environment")
            return self.api_key, self.secret_key
        try:
            key, secret = credentials_for_destination(
                "stream",
                url,
                self.recycler_key,
                self.recycler_secret,
                environ={},  # the recycler's keys are the settings' own; Alpaca's are compared below
                alpaca_keys=frozenset(k for k in (self.api_key, self.secret_key) if k) | alpaca_key_values(),
            )
        except CredentialsDestinationError as exc:
            raise StreamError(str(exc)) from None
        return key or ANONYMOUS_RECYCLER_KEY, secret or ANONYMOUS_RECYCLER_KEY

    def stream_credentials(self) -> tuple[str, str]:
        """(key, secret) for the websocket's auth message, on every (re)connection."""
        return self.credentials_for(self.url)

    def history_credentials(self) -> tuple[str, str]:
        """(key, secret) for the historical endpoint's request headers (gap backfills)."""
        return self.credentials_for(self.history_url)

    @classmethod
    def from_env(
        cls, symbols: Sequence[str], url: str | None = None, environ: dict | None = None, **kwargs
    ) -> StreamSettings:
        """Settings with credentials from the environment.

        Alpaca's keys (``ALPACA_API_KEY``/``ALPACA_SECRET_KEY``) are read only when the stream or
        the backfill endpoint is Alpaca's (``is_alpaca_url``) and are only ever sent there. Any
        other URL gets ``PAIRS_RECYCLER_KEY``/``PAIRS_RECYCLER_SECRET``, or an anonymous
        placeholder when they are unset (a recycler without credentials accepts any).
        """
        env = os.environ if environ is None else environ
        history = _history_url_for(url, kwargs.get("historical_url"))
        alpaca = is_alpaca_url(url) or (kwargs.get("backfill", True) and is_alpaca_url(history))
        return cls(
            symbols=tuple(symbols),
            url=url,
            api_key=env.get(ENV_API_KEY) if alpaca else None,
            secret_key=env.get(ENV_SECRET_KEY) if alpaca else None,
            recycler_key=env.get(ENV_RECYCLER_KEY) or None,
            recycler_secret=env.get(ENV_RECYCLER_SECRET) or None,
            **kwargs,
        )


@dataclasses.dataclass
class StreamStats:
    received: int = 0
    written: int = 0
    rejected: int = 0
    backfilled: int = 0
    backfill_failures: int = 0
    connections: int = 0
    restarts: int = 0
    batches: int = 0
    last_bar: str | None = None
    per_symbol: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    def line(self) -> str:
        return (
            f"received {self.received}, written {self.written}, backfilled {self.backfilled}, rejected "
            f"{self.rejected}, reconnects {self.reconnects}, last bar {self.last_bar or '-'}"
        )


class _ObservedStockDataStream(StockDataStream):
    """alpaca-py's stream, told to report each successful (re)connection: gaps start there."""

    def __init__(self, *args, on_connected: Callable[[], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._on_connected = on_connected

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._on_connected()


class StreamIngestor:
    """Subscribe, write, backfill, report. ``run()`` blocks until ``stop()``, a signal or ``max_seconds``."""

    def __init__(
        self,
        store: MarketDataStore,
        settings: StreamSettings,
        *,
        echo: Callable[[str], None] | None = None,
        on_written: Callable[[pd.DataFrame, float], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.stats = StreamStats()
        self._echo = echo or (lambda line: log.info("%s", line))
        self._on_written = on_written
        self._queue: queue.Queue[tuple[int, dict]] = queue.Queue()
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self._stop = threading.Event()
        self._stream: _ObservedStockDataStream | None = None
        self._thread: threading.Thread | None = None
        self._last: dict[str, tuple[pd.Timestamp, int]] = {}
        self._pending_backfills: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
        self._history_client = None

    # --- stream thread ---
    def _connected(self) -> None:
        with self._epoch_lock:
            self._epoch += 1
            self.stats.connections += 1
        log.info("stream connected (connection %d)", self.stats.connections)

    async def _on_bar(self, message: dict) -> None:
        self._queue.put((self._epoch, message))

    def _make_stream(self) -> _ObservedStockDataStream:
        s = self.settings
        key, secret = s.stream_credentials()  # Alpaca's keys only for Alpaca's own host over TLS
        stream = _ObservedStockDataStream(
            key,
            secret,
            raw_data=True,
            feed=DataFeed(s.feed),
            url_override=s.url,
            data_timeout=s.data_timeout_s,
            on_connected=self._connected,
        )
        stream.subscribe_bars(self._on_bar, *s.symbols)
        return stream

    def _start_thread(self) -> None:
        self._stream = self._make_stream()
        self._thread = threading.Thread(target=self._stream.run, name="alpaca-stream", daemon=True)
        self._thread.start()

    def _stop_thread(self, timeout: float = 10.0) -> None:
        stream, thread = self._stream, self._thread
        if stream is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        while thread.is_alive() and getattr(stream, "_loop", None) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = getattr(stream, "_loop", None)
        if thread.is_alive() and loop is not None and loop.is_running():
            import asyncio

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stream.stop_ws(), loop).result(timeout=5)
            thread.join(0.5)  # a busy stream notices the stop at its next message
            if thread.is_alive() and loop.is_running():
                # a quiet one would wait for its 5 s receive poll: close the socket instead
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(stream.close(), loop).result(timeout=5)
        thread.join(max(0.1, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("the stream thread did not stop within %.0f s", timeout)

    # --- processing ---
    def _drain(self, limit: int | None = None) -> list[dict]:
        rows: list[dict] = []
        source = self.settings.source_label
        while limit is None or len(rows) < limit:
            try:
                epoch, message = self._queue.get_nowait()
            except queue.Empty:
                break
            symbol = str(message.get("S", ""))
            try:
                row = wire.bar_record(symbol, message, source)
            except (ValueError, TypeError) as exc:
                self.stats.rejected += 1
                log.warning("rejected a bar: %s", exc)
                continue
            proxy = message.get(wire.PROXY_KEY)
            if proxy:
                row["source"] = f"{source}+proxy:{proxy}"
            self.stats.received += 1
            self.stats.per_symbol[symbol] = self.stats.per_symbol.get(symbol, 0) + 1
            ts = row["timestamp"]
            previous = self._last.get(symbol)
            if previous is not None and epoch > previous[1] and ts > previous[0] + pd.Timedelta(microseconds=1):
                self._pending_backfills.append((symbol, previous[0], ts))
            self._last[symbol] = (ts, epoch)  # arrival order: a looping replay may go back in time
            rows.append(row)
        return rows

    def _write(self, rows: list[dict], context: str) -> int:
        if not rows:
            return 0
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame.drop_duplicates(["symbol", "timestamp", "source"], keep="last")[BAR_COLUMNS]
        for column in ["open", "high", "low", "close", "volume", "trade_count", "vwap"]:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        written = self.store.upsert_bars(frame, context=context)
        self.stats.batches += 1
        self.stats.last_bar = frame["timestamp"].max().isoformat()
        if self._on_written is not None:
            self._on_written(frame, time.time())
        return written

    def _history(self):
        if self._history_client is None:
            from alpaca.data.historical import StockHistoricalDataClient

            key, secret = self.settings.history_credentials()  # never Alpaca's keys to a foreign host
            self._history_client = StockHistoricalDataClient(
                key, secret, raw_data=True, url_override=self.settings.history_url
            )
        return self._history_client

    def _backfill(self) -> None:
        if not self._pending_backfills or not self.settings.backfill:
            self._pending_backfills.clear()
            return
        from alpaca.common.exceptions import APIError
        from alpaca.data.requests import StockBarsRequest

        from pairs_assets.market.symbology import parse_timeframe

        pending, self._pending_backfills = self._pending_backfills, []
        for symbol, after, before in pending:
            request = StockBarsRequest(
                symbol_or_symbols=[symbol],
                timeframe=parse_timeframe(self.settings.backfill_timeframe),
                start=after.to_pydatetime(),
                end=before.to_pydatetime(),
                feed=DataFeed(self.settings.feed),
            )
            try:
                raw = self._history().get_stock_bars(request)
            except (APIError, OSError, ValueError) as exc:
                self.stats.backfill_failures += 1
                log.warning("backfill of %s between %s and %s failed: %s", symbol, after, before, exc)
                continue
            source = self.settings.source_label
            rows = []
            for message in (raw or {}).get(symbol, []):
                try:
                    row = wire.bar_record(symbol, message, source)
                except (ValueError, TypeError) as exc:
                    self.stats.rejected += 1
                    log.warning("rejected a backfilled bar: %s", exc)
                    continue
                if not (after < row["timestamp"] < before):
                    continue
                if message.get(wire.PROXY_KEY):
                    row["source"] = f"{source}+proxy:{message[wire.PROXY_KEY]}"
                rows.append(row)
            written = self._write(rows, context=f"backfill {symbol}")
            self.stats.backfilled += written
            self.stats.written += written
            self._echo(
                f"stream: backfilled {written} bar(s) of {symbol} between {after.isoformat()} and {before.isoformat()}"
            )

    def flush(self) -> int:
        """Write everything queued now (and run pending backfills); return the bars written."""
        total = 0
        while True:
            rows = self._drain(self.settings.batch_size)
            if not rows:
                break
            written = self._write(rows, context="stream")
            self.stats.written += written
            total += written
        self._backfill()
        return total

    # --- control ---
    def stop(self) -> None:
        """Ask ``run()`` to stop (thread-safe; signal handlers call this)."""
        self._stop.set()

    def run(self, max_seconds: float | None = None, install_signal_handlers: bool = False) -> StreamStats:
        """Stream until stopped; flush every ``flush_interval_s``; report every ``report_interval_s``."""
        previous_handlers = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous_handlers[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        s = self.settings
        self._echo(
            f"stream: {len(s.symbols)} symbol(s) from {s.url or 'Alpaca (' + s.feed + ')'} into "
            f"{self.store.display_url} as source {s.source_label!r}"
        )
        started = time.monotonic()
        last_report = started
        backoff = s.restart_min_backoff_s
        try:
            self._start_thread()
            while not self._stop.is_set():
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
                self._stop.wait(s.flush_interval_s)
                self.flush()
                if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
                    # alpaca-py gave up (it does on "insufficient subscription"): restart with backoff
                    self.stats.restarts += 1
                    log.warning("the stream stopped by itself; restarting in %.1f s", backoff)
                    if self._stop.wait(backoff):
                        break
                    backoff = min(backoff * 2, s.restart_max_backoff_s)
                    self._start_thread()
                if time.monotonic() - last_report >= s.report_interval_s:
                    last_report = time.monotonic()
                    self._echo(f"stream: {self.stats.line()}")
        finally:
            self._stop_thread()
            self.flush()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            self._echo(f"stream stopped: {self.stats.line()}")
        return self.stats
