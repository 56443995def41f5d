"""The recycler server: Alpaca's stock stream protocol over websockets, and the replay clock.

One ``websockets`` server on one port answers the stream (``ws://…/v2/<feed>``: connect, auth,
subscribe, bar frames, errors with Alpaca's codes; see :mod:`pairs_assets.market.wire`), routes
plain HTTP to ``/healthz`` and the historical endpoint (:mod:`pairs_assets.live.recycler.history`),
and runs the broadcast clock that emits one step of stored bars per tick to every subscribed
client, with a bounded queue per client (a client that falls behind gets 407 and is disconnected).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import time
from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING
from websockets.server import ServerProtocol

from pairs_assets.live.recycler.data import VALUE_FIELDS, RecyclerSettings, ReplayData, load_replay_data
from pairs_assets.live.recycler.history import HistoryEndpoint, has_body, json_response
from pairs_assets.market import wire
from pairs_assets.market.symbology import is_symbol
from resources.market_data import MarketDataStore

log = logging.getLogger("pairs_assets.live.recycler")

#: Feeds a stream URL may name (``/v2/<feed>``), as Alpaca's.
STREAM_FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "test")
#: Symbols named in one error message (a subscribe can name thousands).
MAX_SYMBOLS_ECHOED = 20
#: Largest client frame (and websockets message) accepted.
MAX_FRAME_BYTES = 2**20
#: An HTTP request head (request line + headers) larger than this is left to websockets' parser.
_HTTP_HEAD_PEEK_LIMIT = 64 * 1024


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
        self.history = HistoryEndpoint(store, self.settings)

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
        log.info("client %s: error %d %s", client.peer, code, wire.encodable(detail or ""))
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
            client.peer,
            client.pending_frames + dropped,
            self.settings.max_pending_frames,
            dropped,
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
        except TimeoutError:
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
            except TimeoutError:
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
            bad = [s for s in symbols if s != "*" and not is_symbol(s)]
            if bad:
                more = f" (+{len(bad) - 5} more; {len(bad)} invalid in all)" if len(bad) > 5 else ""
                raise wire.WireError(
                    400, f"invalid symbol(s) {', '.join(repr(s[:20]) for s in bad[:5])}{more} in {channel!r}"
                )
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
            detail = "; ".join(
                f"{channel} {_echo(sorted(set(symbols)))}" for channel, symbols in sorted(unserved.items())
            )
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
        self.history.record(step, stamp)
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
                            **dict(zip(VALUE_FIELDS, values)),
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
                        # behind schedule (a loaded machine) the replay catches up, but always yields: the
                        # senders must run between two steps, or every client — the fast one too — falls
                        # max_pending_frames behind in one burst and is dropped as slow (issue 21 item 11)
                        await asyncio.sleep(max(delay, 0.0))
                    else:
                        await asyncio.sleep(0)
                self.stats.passes_done += 1
        finally:
            self.stats.finished = self.stats.passes_done == passes
            if self.stats.finished:
                log.info(
                    "recycler finished: %d step(s), %d bars emitted", self.stats.steps_emitted, self.stats.bars_emitted
                )
                self.finished.set()

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if request.method != "GET":
            response = json_response(
                405, {"code": 40510000, "message": f"method {request.method[:16]} not allowed; use GET"}
            )
            response.headers["Allow"] = "GET"
            return response
        if has_body(request.headers):
            length = (request.headers.get("Content-Length") or "chunked")[:24]
            return json_response(
                413,
                {
                    "code": 41310000,
                    "message": f"request bodies are not accepted (Content-Length: {length}); "
                    "pass parameters in the query string",
                },
            )
        if (request.headers.get("Upgrade") or "").lower() == "websocket":
            segments = [s for s in parts.path.split("/") if s]
            if parts.path in ("", "/") or (len(segments) == 2 and segments[0] == "v2" and segments[1] in STREAM_FEEDS):
                return None
            return json_response(404, {"code": 40410000, "message": f"no stream at {parts.path}; use /v2/iex"})
        self.stats.http_requests += 1
        if parts.path == "/healthz":
            return json_response(200, {"status": "ok", **self.stats.as_dict()})
        if parts.path != "/v2/stocks/bars":
            return json_response(404, {"code": 40410000, "message": f"endpoint not found: {parts.path}"})
        return await self.history.respond(request, parts)

    def historical_bars(self, query: Mapping[str, list[str]]) -> dict:
        """Answer ``GET /v2/stocks/bars`` (see :meth:`HistoryEndpoint.historical_bars`)."""
        return self.history.historical_bars(query)

    def emitted_bars(self) -> pd.DataFrame:
        """The bars emitted so far under their re-stamped times (``restamp=True`` only)."""
        return self.history.emitted_bars()


def _echo(symbols: list[str], n: int = MAX_SYMBOLS_ECHOED) -> str:
    """At most ``n`` symbols for a message, then how many more (a request can name 50,000)."""
    shown = ", ".join(symbols[:n])
    return f"{shown} … (+{len(symbols) - n} more, {len(symbols)} in all; list truncated)" if len(symbols) > n else shown


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
        if method == "GET" and not has_body(headers):
            return None
        yield from self.reader.read_exact(end + 4)
        return Request(path, headers, method, protocol)


class _RecyclerConnection(ServerConnection):
    """A connection whose protocol is :class:`_HttpGuardProtocol` (same settings as the stock one)."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(_HttpGuardProtocol(max_size=MAX_FRAME_BYTES, logger=protocol.logger), *args, **kwargs)
