"""The recycler's historical bars endpoint: Alpaca's ``GET /v2/stocks/bars`` with paging.

``StockHistoricalDataClient(url_override="http://<host>:<port>")`` reads from it as from Alpaca:
JSON ``{"bars": {"AAPL": [...]}, "next_page_token": ...}``, the page limit counting bars over all
symbols. It serves the stored bars *and* the bars already emitted by the replay clock under their
re-stamped times (the emitted-bar log kept here), so a client that missed steps while disconnected
recovers them, as from Alpaca. Also the plain-HTTP helpers the server shares.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import email.utils
import hmac
import http
import json
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qs

import pandas as pd
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from pairs_assets.errors import PairsError
from pairs_assets.live.recycler.data import MAX_PAGE, VALUE_FIELDS, RecyclerSettings, choose_sources
from pairs_assets.market import wire
from pairs_assets.market.symbology import is_symbol, is_timeframe
from resources.market_data import MarketDataStore

#: Page size when the request names none (Alpaca's default).
DEFAULT_PAGE = 1_000


class HttpError(PairsError):
    """A request the endpoint refuses: ``status`` and a message naming the bad parameter."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def has_body(headers: Headers) -> bool:
    """Whether a request announces a body (any ``Content-Length`` but 0, or chunked)."""
    return "Transfer-Encoding" in headers or any(v.strip() != "0" for v in headers.get_all("Content-Length"))


def json_response(status: int, payload: Any) -> Response:
    """A complete HTTP response carrying ``payload`` as JSON (connection closed after it)."""
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


class HistoryEndpoint:
    """Answers ``GET /v2/stocks/bars`` from the store and from the bars the clock emitted."""

    def __init__(self, store: MarketDataStore, settings: RecyclerSettings) -> None:
        self.store = store
        self.settings = settings
        # per symbol its emitted (ns, values) in order, and the symbols in emission order: the cap
        # (settings.max_emitted_bars) is on the total — 20 symbols no longer keep 20 × a per-symbol cap
        self._log: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._log_order: collections.deque = collections.deque()
        self._log_lock = threading.Lock()
        self._history_cache: dict[tuple, tuple[float, list]] = {}
        self._sources_cache: tuple[float, dict[str, str]] | None = None

    def record(self, step: Mapping[str, tuple], stamp: pd.Timestamp) -> None:
        """Remember an emitted step under its re-stamped time (``restamp=True`` only)."""
        if not self.settings.restamp:
            return
        ns = stamp.value
        cap = self.settings.max_emitted_bars
        with self._log_lock:
            for symbol, values in step.items():
                self._log[symbol].append((ns, values))
                self._log_order.append(symbol)
            while len(self._log_order) > cap:  # the oldest bar overall is its symbol's oldest
                oldest = self._log_order.popleft()
                entries = self._log[oldest]
                entries.popleft()
                if not entries:
                    del self._log[oldest]

    @property
    def emitted_bars_kept(self) -> int:
        """Emitted bars held for the historical endpoint (at most ``max_emitted_bars``)."""
        with self._log_lock:
            return len(self._log_order)

    async def respond(self, request: Request, parts: SplitResult) -> Response:
        """The response to a GET of ``/v2/stocks/bars`` (keys checked when the recycler has them)."""
        if self.settings.auth_required:
            key = request.headers.get("APCA-API-KEY-ID") or ""
            secret = request.headers.get("APCA-API-SECRET-KEY") or ""
            if not (
                hmac.compare_digest(key.encode(), str(self.settings.api_key).encode())
                & hmac.compare_digest(secret.encode(), str(self.settings.secret_key).encode())
            ):
                return json_response(401, {"code": 40110000, "message": "request is not authorized"})
        try:
            payload = await asyncio.to_thread(self.historical_bars, parse_qs(parts.query, keep_blank_values=True))
        except HttpError as exc:
            return json_response(exc.status, {"code": exc.status * 100000, "message": str(exc)})
        return json_response(200, payload)

    def historical_bars(self, query: Mapping[str, list[str]]) -> dict:
        """Answer ``GET /v2/stocks/bars`` (query as ``parse_qs`` gives it) like Alpaca, paging included."""

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        raw_symbols = one("symbols")
        if not raw_symbols:
            raise HttpError(400, "missing required parameter 'symbols'")
        symbols = sorted({s.strip() for s in raw_symbols.split(",") if s.strip()})
        bad = [s for s in symbols if not is_symbol(s)]
        if bad:
            raise HttpError(400, f"invalid symbol(s): {', '.join(bad[:5])}")
        timeframe = one("timeframe")
        if not is_timeframe(timeframe):
            raise HttpError(422, f"invalid timeframe {timeframe!r} (e.g. 1Min, 5Min, 1Hour, 1Day)")
        try:
            start = wire.to_utc(one("start")) if one("start") else pd.Timestamp("1900-01-01", tz="UTC")
            end = wire.to_utc(one("end")) if one("end") else pd.Timestamp.now(tz="UTC")
        except (ValueError, TypeError) as exc:
            raise HttpError(422, f"invalid start or end: {exc}") from None
        try:
            limit = int(one("limit") or DEFAULT_PAGE)
        except ValueError:
            raise HttpError(422, f"invalid limit {one('limit')!r}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise HttpError(422, f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        limit = min(limit, self.settings.max_page_size)
        sort = one("sort") or "asc"
        if sort not in ("asc", "desc"):
            raise HttpError(422, f"invalid sort {sort!r} (asc or desc)")
        items = self._history_items(tuple(symbols), start, end, sort)
        offset = 0
        token = one("page_token")
        if token:
            try:
                symbol, ns = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                position = (str(symbol), int(ns) if sort == "asc" else -int(ns))
            except (ValueError, TypeError, UnicodeDecodeError):
                raise HttpError(422, "invalid page_token") from None
            offset = bisect.bisect_left(items, position, key=lambda item: (item[0], item[1]))
        page = items[offset : offset + limit]
        bars: dict[str, list[dict]] = {}
        for symbol, signed_ns, values, proxy_for in page:
            fields = dict(zip(VALUE_FIELDS, values))
            bars.setdefault(symbol, []).append(
                wire.bar_message(
                    symbol,
                    pd.Timestamp(abs(signed_ns), unit="ns", tz="UTC"),
                    **fields,
                    msg_type="",
                    proxy_for=proxy_for,
                    binary=False,
                )
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
                values = stored[list(VALUE_FIELDS)].to_numpy(dtype="float64")
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
            rows = [(symbol, ns, *values) for symbol, entries in self._log.items() for ns, values in entries]
        frame = pd.DataFrame(rows, columns=["symbol", "ns", *VALUE_FIELDS])
        frame["timestamp"] = pd.to_datetime(frame["ns"], unit="ns", utc=True)
        return frame.drop(columns="ns").sort_values(["symbol", "timestamp"]).reset_index(drop=True)
