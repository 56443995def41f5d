"""The data recycler: replays stored bars as Alpaca's market-data stream and historical bars endpoint.

One ``websockets`` server on one port (``127.0.0.1`` by default) serves both:

* ``ws://<host>:<port>/v2/<feed>`` — Alpaca's stock stream protocol (see :mod:`pairs_assets.market.wire`),
  so the unmodified ``alpaca.data.live.StockDataStream(key, secret, url_override=…)`` connects,
  authenticates, subscribes and receives ``alpaca.data.models.Bar`` objects;
* ``http://<host>:<port>/v2/stocks/bars`` — Alpaca's historical bars endpoint with paging, so
  ``StockHistoricalDataClient(url_override="http://<host>:<port>")`` reads from it;
* ``http://<host>:<port>/healthz`` — ``ok`` and the replay counters as JSON.

The replay is a broadcast clock, like a market: every ``bar_interval_s / speed`` seconds it emits
the next *step* (all bars sharing the next stored timestamp) to every client subscribed to those
symbols. A client that is disconnected misses the steps emitted meanwhile — as with Alpaca — and
recovers them from the historical endpoint, which also serves the bars already emitted (under
their re-stamped times when re-stamping). Modes: ``loop`` (``loops`` passes, -1 = forever),
``date_range`` (one pass over ``start``..``end``), ``single_pass`` (one pass over everything).

At ``speed=inf`` the clock has no period: it emits the next step as soon as the *fastest* subscribed
client has drained its queue, and idles while no client is subscribed (nobody would read the steps,
and the emitted-bar log would fill for nothing). Each client's queue is bounded
(``max_pending_frames`` bar frames): a client that falls that far behind — it stopped reading, or
reads slower than the replay — gets Alpaca's ``[{"T": "error", "code": 407, "msg": "slow client"}]``
(its queued bars are dropped so the error is next on the wire) and is disconnected; other clients
keep their pace. It recovers the gap from the historical endpoint, as from Alpaca.

Abuse is answered, never echoed in bulk or dropped silently: a subscribe naming thousands of
unknown symbols gets one error listing the first few and the count; an HTTP request other than
``GET`` gets ``405`` and a request with a body (any ``Content-Length`` but 0, or chunked) ``413``,
without reading the body.

Bars are re-stamped with the wall-clock time of their emission (UTC, microseconds, strictly
increasing) unless ``restamp=False``, which keeps the stored timestamps. A symbol without stored
bars can be served by a *proxy* symbol's bars (``proxies={"XYZ": "AAPL"}`` or ``default_proxy``);
every such bar is labelled with ``"proxy": "AAPL"`` so it never passes for the real thing.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import contextlib
import dataclasses
import email.utils
import hmac
import http
import json
import logging
import math
import re
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING
from websockets.server import ServerProtocol

from pairs_assets.errors import PairsError
from pairs_assets.market import wire
from resources.market_data import MarketDataStore

log = logging.getLogger(__name__)

MODES = ("loop", "date_range", "single_pass")
#: Sources the stream ingestion writes when it reads from a recycler; never replayed again by default.
RECYCLED_SOURCE_PREFIX = "recycler"
STREAM_FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "test")
SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.\-/]{0,15}$")
TIMEFRAME_RE = re.compile(r"^[1-9][0-9]*(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000
LOG_MAXLEN = 500_000
#: Symbols named in one error message (a subscribe can name thousands).
MAX_SYMBOLS_ECHOED = 20
#: Largest client frame (and websockets message) accepted.
MAX_FRAME_BYTES = 2**20
#: An HTTP request head (request line + headers) larger than this is left to websockets' parser.
_HTTP_HEAD_PEEK_LIMIT = 64 * 1024


class RecyclerError(PairsError, ValueError):
    """The recycler cannot start: empty store, unknown symbol, bad setting (named in the message)."""


@dataclasses.dataclass(frozen=True)
class RecyclerSettings:
    """How the recycler replays. Every field has a safe default; see the module docstring."""

    host: str = "127.0.0.1"
    port: int = 8765
    mode: str = "loop"
    loops: int = -1
    start: str | None = None
    end: str | None = None
    speed: float = 1.0
    bar_interval_s: float = 60.0
    restamp: bool = True
    symbols: tuple[str, ...] = ()
    proxies: Mapping[str, str] = dataclasses.field(default_factory=dict)
    default_proxy: str | None = None
    source: str | None = None
    tail: int | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    start_on_subscribe: bool = True
    auth_timeout_s: float = 10.0
    #: bar frames queued for one client before it is a slow client (407, disconnected)
    max_pending_frames: int = 1_000
    #: seconds a slow client gets to take its 407 before the connection is aborted
    slow_client_grace_s: float = 5.0
    max_page_size: int = MAX_PAGE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise RecyclerError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "loop" and (self.loops == 0 or self.loops < -1):
            raise RecyclerError(f"loops must be -1 (forever) or a positive count, got {self.loops}")
        if self.mode == "date_range" and not (self.start and self.end):
            raise RecyclerError("mode date_range needs both start and end (e.g. 2022-12-01 and 2022-12-28)")
        if not (math.isfinite(self.speed) or self.speed == math.inf) or self.speed <= 0:
            raise RecyclerError(f"speed must be positive (1 = one bar step per {self.bar_interval_s:g} s), got {self.speed}")
        if self.bar_interval_s < 0:
            raise RecyclerError(f"bar_interval_s must be >= 0, got {self.bar_interval_s}")
        if self.tail is not None and self.tail < 1:
            raise RecyclerError(f"tail must be a positive number of bar steps, got {self.tail}")
        if self.max_pending_frames < 1:
            raise RecyclerError(f"max_pending_frames must be at least 1, got {self.max_pending_frames}")
        if self.slow_client_grace_s <= 0:
            raise RecyclerError(f"slow_client_grace_s must be positive, got {self.slow_client_grace_s}")
        if not 1 <= self.max_page_size <= MAX_PAGE:
            raise RecyclerError(f"max_page_size must be between 1 and {MAX_PAGE}, got {self.max_page_size}")
        if bool(self.api_key) != bool(self.secret_key):
            raise RecyclerError("configure both the recycler key and secret, or neither")
        for symbol in (*self.symbols, *self.proxies.keys(), *self.proxies.values(), *([self.default_proxy] if self.default_proxy else [])):
            if not SYMBOL_RE.match(symbol):
                raise RecyclerError(f"invalid symbol {symbol!r} (upper-case ticker expected)")

    @property
    def step_seconds(self) -> float:
        """Seconds between two emitted steps (0: as fast as the clients read)."""
        return 0.0 if self.speed == math.inf else self.bar_interval_s / self.speed

    @property
    def passes(self) -> int:
        """Number of passes over the bars (-1 forever)."""
        return self.loops if self.mode == "loop" else 1

    @property
    def auth_required(self) -> bool:
        return bool(self.api_key)


# --- replay data -------------------------------------------------------------------------------

_VALUE_FIELDS = ("open", "high", "low", "close", "volume", "trade_count", "vwap")


@dataclasses.dataclass
class ReplayData:
    """The bars to replay, grouped into steps (one per distinct stored timestamp)."""

    step_times: list[pd.Timestamp]
    steps: list[dict[str, tuple]]  # data symbol -> values in _VALUE_FIELDS order
    sources: dict[str, str]  # data symbol -> source replayed
    symbols: tuple[str, ...]  # data symbols loaded

    @property
    def n_bars(self) -> int:
        return sum(len(step) for step in self.steps)


def choose_sources(counts: pd.DataFrame, symbols: list[str] | None, source: str | None) -> dict[str, str]:
    """Per symbol, the stored source to replay: ``source`` if given, else the one with most bars.

    Sources starting with ``recycler`` (bars the stream ingestion wrote while reading a recycler)
    are skipped unless asked for explicitly, so a recycler never replays its own echo.
    """
    if counts.empty:
        return {}
    if source is not None:
        chosen = counts[counts["source"] == source]
    else:
        chosen = counts[~counts["source"].astype(str).str.startswith(RECYCLED_SOURCE_PREFIX)]
    if symbols is not None:
        chosen = chosen[chosen["symbol"].isin(symbols)]
    chosen = chosen.sort_values(["symbol", "bars", "source"], ascending=[True, False, True], kind="stable")
    return dict(chosen.drop_duplicates("symbol")[["symbol", "source"]].itertuples(index=False, name=None))


def _bound(value: str | None, *, end: bool) -> pd.Timestamp | None:
    """A ``start``/``end`` setting as UTC: dates are New York calendar days (end inclusive)."""
    if not value:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise RecyclerError(f"{'end' if end else 'start'} {value!r} is not a date or timestamp") from exc
    if ts.tzinfo is None:
        date_only = ts == ts.normalize() and len(str(value)) <= 10
        ts = ts.tz_localize("America/New_York")
        if end and date_only:
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.tz_convert("UTC")


def load_replay_data(store: MarketDataStore, settings: RecyclerSettings) -> ReplayData:
    """Read the bars to replay from the store; raise ``RecyclerError`` naming what is missing."""
    counts = store.bar_counts()
    if counts.empty:
        raise RecyclerError(
            f"the market data store {store.display_url} holds no bars; load some first "
            "(materialize raw_bars, e.g. `pairs demo`, or run `pairs stream` against Alpaca)"
        )
    sources = choose_sources(counts, None, settings.source)
    if not sources:
        raise RecyclerError(
            f"the market data store {store.display_url} has no bars of source {settings.source!r} "
            f"(sources: {', '.join(sorted(counts['source'].astype(str).unique()))})"
        )
    wanted = list(settings.symbols) or sorted(sources)
    missing = [s for s in wanted if s not in sources and not (settings.proxies.get(s) or settings.default_proxy)]
    if missing:
        raise RecyclerError(
            f"unknown symbol(s) {', '.join(missing)}: no stored bars in {store.display_url}"
            + (f" of source {settings.source!r}" if settings.source else "")
            + " and no proxy configured (add one with `pairs symbols proxy SYMBOL AAPL` or --proxy SYMBOL=AAPL)"
        )
    data_symbols = sorted({s for s in wanted if s in sources})
    for symbol in wanted:
        if symbol not in sources:
            stand_in = settings.proxies.get(symbol) or settings.default_proxy
            if stand_in not in sources:
                raise RecyclerError(f"proxy {stand_in} of symbol {symbol} has no stored bars either")
            data_symbols.append(stand_in)
    if settings.default_proxy and settings.default_proxy in sources:
        data_symbols.append(settings.default_proxy)
    data_symbols = sorted(set(data_symbols))
    start = _bound(settings.start, end=False) or pd.Timestamp("1900-01-01", tz="UTC")
    end = _bound(settings.end, end=True) or pd.Timestamp("2200-01-01", tz="UTC")
    if end < start:
        raise RecyclerError(f"end {settings.end} is before start {settings.start}")
    frames = []
    by_source: dict[str, list[str]] = collections.defaultdict(list)
    for symbol in data_symbols:
        by_source[sources[symbol]].append(symbol)
    for source, symbols in sorted(by_source.items()):
        frames.append(store.read_bars(symbols, start, end, source=source))
    bars = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if bars.empty:
        raise RecyclerError(
            f"no bars of {', '.join(data_symbols)} between {start.isoformat()} and {end.isoformat()} "
            f"in {store.display_url}"
        )
    bars = bars.sort_values(["timestamp", "symbol"], kind="stable")
    times = pd.DatetimeIndex(bars["timestamp"])
    unique_times = times.unique()
    if settings.tail:
        unique_times = unique_times[-settings.tail :]
        keep = times >= unique_times[0]
        bars, times = bars[keep], times[keep]
    values = bars[list(_VALUE_FIELDS)].to_numpy(dtype="float64")
    symbols_col = bars["symbol"].to_numpy()
    step_times: list[pd.Timestamp] = []
    steps: list[dict[str, tuple]] = []
    codes = times.asi8
    boundaries = np.flatnonzero(np.diff(codes)) + 1
    for chunk in np.split(np.arange(len(codes)), boundaries):
        if len(chunk) == 0:
            continue
        step_times.append(pd.Timestamp(codes[chunk[0]], tz="UTC"))
        steps.append({symbols_col[i]: tuple(values[i]) for i in chunk})
    return ReplayData(step_times=step_times, steps=steps, sources={s: sources[s] for s in data_symbols}, symbols=tuple(data_symbols))


# --- clients ------------------------------------------------------------------------------------


class _Client:
    def __init__(self, ws: ServerConnection, codec: wire.Codec) -> None:
        self.ws = ws
        self.codec = codec
        self.authenticated = False
        self.subscriptions: dict[str, set[str]] = {channel: set() for channel in wire.CHANNELS}
        self.queue: asyncio.Queue[tuple[bytes | str, int]] = asyncio.Queue()
        self.pending_frames = 0  # bar frames queued or being sent
        self.bars_sent = 0
        self.closing = False
        self.flushed = asyncio.Event()  # set when the queue ran empty after closing began
        self.close_task: asyncio.Future | None = None  # a slow client's 407-then-close

    @property
    def peer(self) -> str:
        address = self.ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"

    def bar_subscriptions(self) -> list[tuple[str, set[str]]]:
        return [(channel, self.subscriptions[channel]) for channel in wire.BAR_CHANNELS if self.subscriptions[channel]]

    @property
    def streaming(self) -> bool:
        """Authenticated, not closing, and subscribed to at least one bar channel."""
        return self.authenticated and not self.closing and any(self.subscriptions[c] for c in wire.BAR_CHANNELS)

    def drop_queued_bars(self) -> int:
        """Remove every queued frame not yet handed to the socket; return how many bar frames went."""
        dropped = 0
        while not self.queue.empty():
            _, n_bars = self.queue.get_nowait()
            if n_bars:
                dropped += 1
        self.pending_frames -= dropped
        return dropped

    def enqueue(self, messages: list[dict], n_bars: int = 0) -> None:
        self.queue.put_nowait((self.codec.encode(messages), n_bars))
        if n_bars:
            self.pending_frames += 1


@dataclasses.dataclass
class RecyclerStats:
    steps_emitted: int = 0
    bars_emitted: int = 0
    bars_sent: int = 0
    passes_done: int = 0
    connections: int = 0
    clients: int = 0
    http_requests: int = 0
    protocol_errors: int = 0
    slow_clients: int = 0
    idle_waits: int = 0
    started_at: float = 0.0
    finished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the server ---------------------------------------------------------------------------------


class Recycler:
    """The recycler server. ``await start()`` → listening; ``await stop()`` → closed.

    From another thread use :func:`recycler_in_thread`.
    """

    def __init__(self, store: MarketDataStore, settings: RecyclerSettings | None = None) -> None:
        self.store = store
        self.settings = settings or RecyclerSettings()
        self.stats = RecyclerStats()
        self.data: ReplayData | None = None
        self.port: int | None = None
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._replay_task: asyncio.Task | None = None
        self._subscribed = asyncio.Event()
        self._wake = asyncio.Event()  # a client subscribed, left, or drained its queue
        self._stopping = asyncio.Event()
        self.finished = asyncio.Event()
        self._last_stamp: pd.Timestamp | None = None
        self._log: dict[str, collections.deque] = collections.defaultdict(lambda: collections.deque(maxlen=LOG_MAXLEN))
        self._log_lock = threading.Lock()
        self._history_cache: dict[tuple, tuple[float, list]] = {}
        self._sources_cache: tuple[float, dict[str, str]] | None = None

    # --- lifecycle ---
    async def start(self) -> int:
        """Load the bars, listen, start the replay clock; return the bound port."""
        if self.settings.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "recycler binds %s, reachable from other machines; it serves stored market data%s",
                self.settings.host,
                "" if self.settings.auth_required else " WITHOUT authentication",
            )
        self.data = await asyncio.to_thread(load_replay_data, self.store, self.settings)
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            max_size=MAX_FRAME_BYTES,
            create_connection=_RecyclerConnection,
        )
        sockets = list(self._server.sockets)
        self.port = sockets[0].getsockname()[1]
        self.stats.started_at = time.time()
        if not self.settings.start_on_subscribe:
            self._subscribed.set()
        self._replay_task = asyncio.create_task(self._replay(), name="recycler-replay")
        log.info(
            "recycler on %s: %d bars of %d symbol(s) in %d steps, mode %s, one step per %.3g s, %s timestamps",
            self.http_url,
            self.data.n_bars,
            len(self.data.symbols),
            len(self.data.steps),
            self.settings.mode,
            self.settings.step_seconds,
            "re-stamped" if self.settings.restamp else "stored",
        )
        return self.port

    async def stop(self) -> None:
        self._stopping.set()
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
        if self._server is not None:
            self._server.close(close_connections=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def drop_connections(self) -> int:
        """Abruptly close every client connection (as a network fault would); return how many."""
        clients = list(self._clients)
        for client in clients:
            client.closing = True
            client.ws.transport.abort()
        return len(clients)

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/v2/iex"

    @property
    def http_url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        host = self.settings.host
        return f"[{host}]" if ":" in host else host

    # --- symbols ---
    def resolve(self, symbol: str) -> str | None:
        """The data symbol whose bars ``symbol`` receives (itself, or its proxy), or None."""
        assert self.data is not None
        if symbol in self.data.sources:
            return symbol
        stand_in = self.settings.proxies.get(symbol) or self.settings.default_proxy
        if stand_in and stand_in in self.data.sources:
            return stand_in
        return None

    def _served_symbols(self) -> list[str]:
        assert self.data is not None
        if self.settings.symbols:
            return sorted(set(self.settings.symbols) | set(self.settings.proxies))
        return sorted(set(self.data.sources) | set(self.settings.proxies))

    # --- stream protocol ---
    async def _handle(self, ws: ServerConnection) -> None:
        content_type = (ws.request.headers.get("Content-Type") or "").lower() if ws.request else ""
        client = _Client(ws, wire.Codec("msgpack" if "msgpack" in content_type else "json"))
        self._clients.add(client)
        self.stats.connections += 1
        self.stats.clients = len(self._clients)
        sender = asyncio.create_task(self._sender(client))
        log.info("client %s connected (%s)", client.peer, client.codec.kind)
        try:
            client.enqueue([wire.CONNECTED])
            await self._dialogue(client)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            self.stats.clients = len(self._clients)
            self._wake.set()
            if client.close_task is not None:  # let a slow client's 407 go out before the sender stops
                with contextlib.suppress(Exception):
                    await asyncio.shield(client.close_task)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
            log.info("client %s disconnected after %d bars", client.peer, client.bars_sent)

    async def _sender(self, client: _Client) -> None:
        ready_at = self._ready_level
        while True:
            frame, n_bars = await client.queue.get()
            await client.ws.send(frame)
            if n_bars:
                client.pending_frames -= 1
                client.bars_sent += n_bars
                self.stats.bars_sent += n_bars
                if client.pending_frames <= ready_at:
                    self._wake.set()
            if client.closing and client.queue.empty():
                client.flushed.set()

    @property
    def _ready_level(self) -> int:
        """A client with at most this many bar frames pending can take the next step (speed inf)."""
        return max(1, self.settings.max_pending_frames // 10)

    def _error(self, client: _Client, code: int, detail: str | None = None) -> None:
        self.stats.protocol_errors += 1
        log.info("client %s: error %d %s", client.peer, code, detail or "")
        if not client.closing and client.queue.qsize() >= self.settings.max_pending_frames:
            # it sends faster than it reads our answers: the same bound as for bars
            self._drop_slow_client(client)
            return
        client.enqueue([wire.error_message(code, detail)])

    def _drop_slow_client(self, client: _Client) -> None:
        """Alpaca's 407: drop the client's backlog, send ``slow client`` next, then disconnect it."""
        client.closing = True
        dropped = client.drop_queued_bars()
        self.stats.slow_clients += 1
        log.warning(
            "client %s is a slow client: %d bar frames behind (max_pending_frames %d); %d dropped, sent 407 and closing",
            client.peer, client.pending_frames + dropped, self.settings.max_pending_frames, dropped,
        )
        self._error(client, 407)
        self._wake.set()
        client.close_task = asyncio.ensure_future(self._close_slow_client(client))

    async def _close_slow_client(self, client: _Client) -> None:
        """Close once the 407 is on the wire; abort if the client does not take it within the grace."""
        grace = self.settings.slow_client_grace_s
        try:
            await asyncio.wait_for(client.flushed.wait(), grace)
            await asyncio.wait_for(client.ws.close(1008, "slow client"), grace)
        except asyncio.TimeoutError:
            log.info("client %s did not read its 407 within %g s: connection aborted", client.peer, grace)
            client.ws.transport.abort()

    async def _close_after_flush(self, client: _Client, code: int = 1008, reason: str = "") -> None:
        deadline = time.monotonic() + 2
        while not client.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await client.ws.close(code, reason)

    async def _dialogue(self, client: _Client) -> None:
        connected_at = time.monotonic()
        while True:
            timeout = None
            if not client.authenticated:
                timeout = self.settings.auth_timeout_s - (time.monotonic() - connected_at)
                if timeout <= 0:
                    self._error(client, 404)
                    await self._close_after_flush(client, 1008, "auth timeout")
                    return
            try:
                frame = await asyncio.wait_for(client.ws.recv(), timeout)
            except asyncio.TimeoutError:
                continue
            if client.close_task is not None:
                # a slow client on its way out: read and drop what it sends, so that its side of
                # the closing handshake is not stuck behind unread frames
                continue
            try:
                message = wire.Codec.decode(frame)
                await self._on_message(client, message)
            except wire.WireError as exc:
                self._error(client, exc.code, exc.detail)
            if client.closing and client.close_task is None:
                return

    async def _on_message(self, client: _Client, message: Any) -> None:
        if not isinstance(message, dict):
            raise wire.WireError(400, f"expected a map with an 'action', got {type(message).__name__}")
        action = message.get("action")
        if action == "auth":
            await self._on_auth(client, message)
        elif action in ("subscribe", "unsubscribe"):
            if not client.authenticated:
                raise wire.WireError(401, f"{action} before auth")
            self._on_subscription(client, message, subscribe=action == "subscribe")
        elif action is None:
            raise wire.WireError(400, f"message without 'action' (keys: {', '.join(sorted(map(str, message)))})")
        else:
            raise wire.WireError(400, f"unknown action {str(action)[:40]!r} (expected auth, subscribe, unsubscribe)")

    async def _on_auth(self, client: _Client, message: dict) -> None:
        if client.authenticated:
            raise wire.WireError(403)
        key, secret = message.get("key"), message.get("secret")
        if not isinstance(key, str) or not isinstance(secret, str):
            raise wire.WireError(400, "auth needs string fields 'key' and 'secret'")
        if self.settings.auth_required:
            ok = hmac.compare_digest(key.encode(), str(self.settings.api_key).encode()) & hmac.compare_digest(
                secret.encode(), str(self.settings.secret_key).encode()
            )
            if not ok:
                self._error(client, 402)
                client.closing = True
                await self._close_after_flush(client, 1008, "auth failed")
                return
        client.authenticated = True
        client.enqueue([wire.AUTHENTICATED])

    def _on_subscription(self, client: _Client, message: dict, *, subscribe: bool) -> None:
        unknown_keys = sorted(k for k in message if k != "action" and k not in wire.CHANNELS)
        if unknown_keys:
            raise wire.WireError(400, f"unknown channel(s) {', '.join(map(str, unknown_keys))}")
        unserved: dict[str, list[str]] = {}
        unknown: set[str] = set()
        for channel in wire.CHANNELS:
            symbols = message.get(channel)
            if symbols is None:
                continue
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                raise wire.WireError(400, f"field {channel!r} must be a list of symbols")
            bad = [s for s in symbols if s != "*" and not SYMBOL_RE.match(s)]
            if bad:
                more = f" (+{len(bad) - 5} more; {len(bad)} invalid in all)" if len(bad) > 5 else ""
                raise wire.WireError(400, f"invalid symbol(s) {', '.join(repr(s[:20]) for s in bad[:5])}{more} in {channel!r}")
            if not subscribe:
                client.subscriptions[channel].difference_update(symbols)
                continue
            if channel not in wire.BAR_CHANNELS:
                if symbols:
                    unserved[channel] = symbols
                continue
            for symbol in symbols:
                if symbol == "*" or self.resolve(symbol) is not None:
                    client.subscriptions[channel].add(symbol)
                else:
                    unknown.add(symbol)
        if unserved:
            detail = "; ".join(f"{channel} {_echo(sorted(set(symbols)))}" for channel, symbols in sorted(unserved.items()))
            self._error(client, 400, f"the recycler replays bars only, not subscribed: {detail}")
        if unknown:
            served = self._served_symbols()
            self._error(
                client,
                400,
                f"unknown symbol(s) {_echo(sorted(unknown))}: no stored bars and no proxy "
                f"(this recycler serves {_echo(served)})",
            )
        client.enqueue([wire.subscription_message(client.subscriptions)])
        if subscribe and any(client.subscriptions[c] for c in wire.BAR_CHANNELS):
            self._subscribed.set()
        self._wake.set()

    # --- replay clock ---
    def _stamp(self, stored: pd.Timestamp) -> pd.Timestamp:
        if not self.settings.restamp:
            return stored
        now = pd.Timestamp(time.time_ns(), unit="ns", tz="UTC").floor("us")
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + pd.Timedelta(microseconds=1)
        self._last_stamp = now
        return now

    def _emit(self, step: dict[str, tuple], stamp: pd.Timestamp) -> None:
        self.stats.steps_emitted += 1
        self.stats.bars_emitted += len(step)
        if self.settings.restamp:
            ns = stamp.value
            with self._log_lock:
                for symbol, values in step.items():
                    self._log[symbol].append((ns, values))
        for client in list(self._clients):
            if not client.authenticated or client.closing:
                continue
            messages = []
            for channel, symbols in client.bar_subscriptions():
                msg_type = wire.BAR_CHANNELS[channel]
                targets = sorted(step) if "*" in symbols else sorted(symbols)
                for symbol in targets:
                    data_symbol = symbol if "*" in symbols else self.resolve(symbol)
                    values = step.get(data_symbol) if data_symbol else None
                    if values is None:
                        continue
                    messages.append(
                        wire.bar_message(
                            symbol,
                            stamp,
                            **dict(zip(_VALUE_FIELDS, values)),
                            msg_type=msg_type,
                            proxy_for=data_symbol if data_symbol != symbol else None,
                            binary=client.codec.binary,
                        )
                    )
            if not messages:
                continue
            if client.pending_frames >= self.settings.max_pending_frames:
                self._drop_slow_client(client)
                continue
            client.enqueue(messages, n_bars=len(messages))

    async def _until_a_reader_is_ready(self) -> None:
        """At unlimited speed: wait until a subscribed client can take the next step.

        The pace is the fastest reader's: a client with at most ``max_pending_frames // 10`` bar
        frames pending is ready. With no subscribed client the replay idles (no busy loop); a
        client that cannot keep up falls behind until it is a slow client (407).
        """
        idle = False
        while True:
            streaming = [c for c in self._clients if c.streaming]
            if any(c.pending_frames <= self._ready_level for c in streaming):
                return
            if not streaming and not idle:
                idle = True
                self.stats.idle_waits += 1
                log.info("recycler idle: no client subscribed to bars (step %d)", self.stats.steps_emitted)
            self._wake.clear()
            await self._wake.wait()

    async def _replay(self) -> None:
        assert self.data is not None
        await self._subscribed.wait()
        step_s = self.settings.step_seconds
        passes = self.settings.passes
        t0 = time.monotonic()
        k = 0
        try:
            while passes == -1 or self.stats.passes_done < passes:
                for stored, step in zip(self.data.step_times, self.data.steps):
                    if step_s == 0:
                        await self._until_a_reader_is_ready()
                    self._emit(step, self._stamp(stored))
                    k += 1
                    if step_s > 0:
                        delay = t0 + k * step_s - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    else:
                        await asyncio.sleep(0)
                self.stats.passes_done += 1
        finally:
            self.stats.finished = self.stats.passes_done == passes
            if self.stats.finished:
                log.info("recycler finished: %d step(s), %d bars emitted", self.stats.steps_emitted, self.stats.bars_emitted)
                self.finished.set()

    # --- historical endpoint ---
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if request.method != "GET":
            response = _json_response(405, {"code": 40510000, "message": f"method {request.method[:16]} not allowed; use GET"})
            response.headers["Allow"] = "GET"
            return response
        if _has_body(request.headers):
            length = (request.headers.get("Content-Length") or "chunked")[:24]
            return _json_response(
                413, {"code": 41310000, "message": f"request bodies are not accepted (Content-Length: {length}); "
                      "pass parameters in the query string"}
            )
        if (request.headers.get("Upgrade") or "").lower() == "websocket":
            segments = [s for s in parts.path.split("/") if s]
            if parts.path in ("", "/") or (len(segments) == 2 and segments[0] == "v2" and segments[1] in STREAM_FEEDS):
                return None
            return _json_response(404, {"code": 40410000, "message": f"no stream at {parts.path}; use /v2/iex"})
        self.stats.http_requests += 1
        if parts.path == "/healthz":
            return _json_response(200, {"status": "ok", **self.stats.as_dict()})
        if parts.path != "/v2/stocks/bars":
            return _json_response(404, {"code": 40410000, "message": f"endpoint not found: {parts.path}"})
        if self.settings.auth_required:
            key = request.headers.get("APCA-API-KEY-ID") or ""
            secret = request.headers.get("APCA-API-SECRET-KEY") or ""
            if not (
                hmac.compare_digest(key.encode(), str(self.settings.api_key).encode())
                & hmac.compare_digest(secret.encode(), str(self.settings.secret_key).encode())
            ):
                return _json_response(401, {"code": 40110000, "message": "request is not authorized"})
        try:
            payload = await asyncio.to_thread(self.historical_bars, parse_qs(parts.query, keep_blank_values=True))
        except _HttpError as exc:
            return _json_response(exc.status, {"code": exc.status * 100000, "message": str(exc)})
        return _json_response(200, payload)

    def historical_bars(self, query: Mapping[str, list[str]]) -> dict:
        """Answer ``GET /v2/stocks/bars`` (query as ``parse_qs`` gives it) like Alpaca, paging included."""
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        raw_symbols = one("symbols")
        if not raw_symbols:
            raise _HttpError(400, "missing required parameter 'symbols'")
        symbols = sorted({s.strip() for s in raw_symbols.split(",") if s.strip()})
        bad = [s for s in symbols if not SYMBOL_RE.match(s)]
        if bad:
            raise _HttpError(400, f"invalid symbol(s): {', '.join(bad[:5])}")
        timeframe = one("timeframe")
        if not timeframe or not TIMEFRAME_RE.match(timeframe):
            raise _HttpError(422, f"invalid timeframe {timeframe!r} (e.g. 1Min, 5Min, 1Hour, 1Day)")
        try:
            start = wire.to_utc(one("start")) if one("start") else pd.Timestamp("1900-01-01", tz="UTC")
            end = wire.to_utc(one("end")) if one("end") else pd.Timestamp.now(tz="UTC")
        except (ValueError, TypeError) as exc:
            raise _HttpError(422, f"invalid start or end: {exc}") from None
        try:
            limit = int(one("limit") or DEFAULT_PAGE)
        except ValueError:
            raise _HttpError(422, f"invalid limit {one('limit')!r}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise _HttpError(422, f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        limit = min(limit, self.settings.max_page_size)
        sort = one("sort") or "asc"
        if sort not in ("asc", "desc"):
            raise _HttpError(422, f"invalid sort {sort!r} (asc or desc)")
        items = self._history_items(tuple(symbols), start, end, sort)
        offset = 0
        token = one("page_token")
        if token:
            try:
                symbol, ns = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                position = (str(symbol), int(ns) if sort == "asc" else -int(ns))
            except (ValueError, TypeError, UnicodeDecodeError):
                raise _HttpError(422, "invalid page_token") from None
            offset = bisect.bisect_left(items, position, key=lambda item: (item[0], item[1]))
        page = items[offset : offset + limit]
        bars: dict[str, list[dict]] = {}
        for symbol, signed_ns, values, proxy_for in page:
            fields = dict(zip(_VALUE_FIELDS, values))
            bars.setdefault(symbol, []).append(
                wire.bar_message(symbol, pd.Timestamp(abs(signed_ns), unit="ns", tz="UTC"), **fields, msg_type="", proxy_for=proxy_for, binary=False)
            )
        next_token = None
        if offset + limit < len(items):
            symbol, signed_ns = items[offset + limit][:2]
            next_token = base64.urlsafe_b64encode(json.dumps([symbol, abs(signed_ns)]).encode()).decode()
        return {"bars": bars, "next_page_token": next_token}

    def _history_items(self, symbols: tuple[str, ...], start: pd.Timestamp, end: pd.Timestamp, sort: str) -> list:
        """Sorted (symbol, ±ns, values, proxy) of stored and emitted bars in [start, end] (cached 30 s)."""
        key = (symbols, start.value, end.value, sort)
        cached = self._history_cache.get(key)
        if cached and time.monotonic() - cached[0] < 30 and not self.settings.restamp:
            return cached[1]
        assert self.data is not None
        stored_sources = self._stored_sources()
        items = []
        sign = 1 if sort == "asc" else -1
        for symbol in symbols:
            data_symbol = symbol if symbol in stored_sources else None
            if data_symbol is None:
                stand_in = self.settings.proxies.get(symbol) or self.settings.default_proxy
                data_symbol = stand_in if stand_in in stored_sources else None
            if data_symbol is None:
                continue
            proxy_for = data_symbol if data_symbol != symbol else None
            seen: dict[int, tuple] = {}
            stored = self.store.read_bars([data_symbol], start, end, source=stored_sources[data_symbol])
            if not stored.empty:
                values = stored[list(_VALUE_FIELDS)].to_numpy(dtype="float64")
                for ns, row in zip(pd.DatetimeIndex(stored["timestamp"]).asi8, values):
                    seen[int(ns)] = tuple(row)
            with self._log_lock:
                emitted = list(self._log.get(data_symbol, ()))
            lo, hi = start.value, end.value
            for ns, row in emitted:
                if lo <= ns <= hi:
                    seen[ns] = row
            items.extend((symbol, sign * ns, seen[ns], proxy_for) for ns in seen)
        items.sort(key=lambda item: (item[0], item[1]))
        if len(self._history_cache) > 64:
            self._history_cache.clear()
        self._history_cache[key] = (time.monotonic(), items)
        return items

    def _stored_sources(self) -> dict[str, str]:
        """Per stored symbol, the source served (``choose_sources``), re-read at most every 30 s."""
        cached = self._sources_cache
        if cached is None or time.monotonic() - cached[0] > 30:
            cached = (time.monotonic(), choose_sources(self.store.bar_counts(), None, self.settings.source))
            self._sources_cache = cached
        return cached[1]

    def emitted_bars(self) -> pd.DataFrame:
        """The bars emitted so far under their re-stamped times (``restamp=True`` only)."""
        with self._log_lock:
            rows = [
                (symbol, ns, *values) for symbol, entries in self._log.items() for ns, values in entries
            ]
        frame = pd.DataFrame(rows, columns=["symbol", "ns", *_VALUE_FIELDS])
        frame["timestamp"] = pd.to_datetime(frame["ns"], unit="ns", utc=True)
        return frame.drop(columns="ns").sort_values(["symbol", "timestamp"]).reset_index(drop=True)


def _echo(symbols: list[str], n: int = MAX_SYMBOLS_ECHOED) -> str:
    """At most ``n`` symbols for a message, then how many more (a request can name 50,000)."""
    shown = ", ".join(symbols[:n])
    return f"{shown} … (+{len(symbols) - n} more, {len(symbols)} in all; list truncated)" if len(symbols) > n else shown


def _has_body(headers: Headers) -> bool:
    return "Transfer-Encoding" in headers or any(v.strip() != "0" for v in headers.get_all("Content-Length"))


class _HttpGuardProtocol(ServerProtocol):
    """websockets' server protocol, answering plain-HTTP requests its parser would drop silently.

    websockets parses only ``GET`` requests without a body: on any other it closes the connection
    without a response (a POST, a ``Content-Length`` of a gigabyte). Here the request head is
    peeked first; a request other than a body-less GET is handed to ``process_request`` as read
    (which answers 405 or 413) and its body is never read. Everything else goes to the stock parser.
    """

    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            request = yield from self._unsupported_request()
            if request is not None:
                self.events.append(request)
                while True:  # until the response is sent (then websockets discards the rest itself)
                    self.reader.discard()  # the body, never parsed
                    yield
        yield from super().parse()

    def _unsupported_request(self) -> Generator[None, None, Request | None]:
        buffer = self.reader.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > _HTTP_HEAD_PEEK_LIMIT or self.reader.eof:
                return None
            yield
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0].isascii() or not parts[1].isascii():
            return None
        headers = Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                return None
            headers[name.strip()] = value.strip()
        method, path, protocol = parts
        if method == "GET" and not _has_body(headers):
            return None
        yield from self.reader.read_exact(end + 4)
        return Request(path, headers, method, protocol)


class _RecyclerConnection(ServerConnection):
    """A connection whose protocol is :class:`_HttpGuardProtocol` (same settings as the stock one)."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(_HttpGuardProtocol(max_size=MAX_FRAME_BYTES, logger=protocol.logger), *args, **kwargs)


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_response(status: int, payload: Any) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/json; charset=utf-8"),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


# --- running in a thread ------------------------------------------------------------------------


class RecyclerHandle:
    """A recycler running on its own event loop in a background thread (tests, benchmarks, CLI)."""

    def __init__(self, recycler: Recycler, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.recycler = recycler
        self._loop = loop
        self._thread = thread

    @property
    def ws_url(self) -> str:
        return self.recycler.ws_url

    @property
    def http_url(self) -> str:
        return self.recycler.http_url

    @property
    def stats(self) -> RecyclerStats:
        return self.recycler.stats

    def call(self, coro, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def drop_connections(self) -> int:
        return self.call(self.recycler.drop_connections())

    def wait_finished(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.recycler.stats.finished:
                return True
            time.sleep(0.02)
        return self.recycler.stats.finished

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self.recycler.stop(), timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


def start_recycler_thread(store: MarketDataStore, settings: RecyclerSettings, timeout: float = 30.0) -> RecyclerHandle:
    """Start a recycler in a daemon thread; return once it listens (errors re-raised here)."""
    loop = asyncio.new_event_loop()
    recycler = Recycler(store, settings)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await recycler.start()
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                started.set()

        loop.create_task(boot())
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="recycler", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise RecyclerError(f"recycler did not start within {timeout:g} s")
    handle = RecyclerHandle(recycler, loop, thread)
    if failure:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        raise failure[0]
    return handle


@contextlib.contextmanager
def recycler_in_thread(store: MarketDataStore, settings: RecyclerSettings, timeout: float = 30.0) -> Iterator[RecyclerHandle]:
    """``with recycler_in_thread(store, settings) as handle:`` — stopped on exit, whatever happens."""
    handle = start_recycler_thread(store, settings, timeout)
    try:
        yield handle
    finally:
        handle.stop()


async def serve_until_signalled(store: MarketDataStore, settings: RecyclerSettings, *, report_every_s: float = 30.0, exit_when_done: bool = False, echo=print) -> RecyclerStats:
    """Run a recycler until SIGINT/SIGTERM (or, with ``exit_when_done``, until the replay ends)."""
    import signal

    recycler = Recycler(store, settings)
    await recycler.start()
    echo(f"recycler listening: stream {recycler.ws_url}  historical {recycler.http_url}/v2/stocks/bars")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait())]
            if exit_when_done:
                waiters.append(asyncio.ensure_future(recycler.finished.wait()))
            done, pending = await asyncio.wait(waiters, timeout=report_every_s, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            s = recycler.stats
            echo(
                f"recycler: {s.steps_emitted} steps, {s.bars_emitted} bars emitted, {s.bars_sent} sent, "
                f"{s.clients} client(s), {s.passes_done} pass(es) done"
            )
            if exit_when_done and recycler.finished.is_set():
                break
    finally:
        await recycler.stop()
    return recycler.stats
