"""Alpaca's market-data wire format (stream v2 and the historical bars endpoint), as alpaca-py reads it.

Stream (``wss://stream.data.alpaca.markets/v2/<feed>``; read from
``alpaca/data/live/websocket.py``): every frame is a *list* of messages. A client that sends the
header ``Content-Type: application/msgpack`` (alpaca-py does) talks msgpack in binary frames and
gets timestamps as msgpack Timestamp extensions (ext type -1, which alpaca-py turns into a
``datetime`` with ``.to_datetime()``); any other client talks JSON in text frames with RFC 3339
timestamps. The dialogue::

    server → [{"T": "success", "msg": "connected"}]
    client → {"action": "auth", "key": "…", "secret": "…"}
    server → [{"T": "success", "msg": "authenticated"}]     or [{"T": "error", "code": 402, …}]
    client → {"action": "subscribe", "bars": ["AAPL", "MSFT"], …}
    server → [{"T": "subscription", "trades": [], "quotes": [], "bars": ["AAPL", "MSFT"], …}]
    server → [{"T": "b", "S": "AAPL", "o": …, "h": …, "l": …, "c": …, "v": …, "t": <ts>,
               "n": …, "vw": …}, …]

``alpaca.data.models.Bar`` requires ``o h l c v`` as numbers and the keys ``n`` and ``vw``
(``None`` allowed). A stored bar whose open/high/low/volume is unknown (the embedded dataset has
closes only) must still be sent with numbers, so the recycler sends the close (volume 0) *and
names the filled fields* in the extension key ``filled``; the stream ingestion turns them back
into nulls, so nothing invented reaches the store. A bar replayed under a stand-in symbol carries
``proxy`` (the symbol whose bars it really is). Real Alpaca never sends either key; alpaca-py
ignores unknown keys.

Historical (``GET <base>/v2/stocks/bars``): JSON ``{"bars": {"AAPL": [{"t": "…Z", "o": …}, …]},
"next_page_token": "…" | null}``; the page limit counts bars over all symbols; alpaca-py follows
``next_page_token`` until it is null.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import pandas as pd

from pairs_assets.errors import PairsError
from pairs_assets.util import to_utc

#: Alpaca's documented stream error codes and messages.
ERROR_MESSAGES: dict[int, str] = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action",
    500: "internal error",
}

#: Subscription channels of the stock stream, in the order Alpaca lists them.
CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
#: Channels the recycler replays (from stored bars), with the message type ``T`` of each.
BAR_CHANNELS: dict[str, str] = {"bars": "b", "updatedBars": "u", "dailyBars": "d"}

FILLED_KEY = "filled"
PROXY_KEY = "proxy"

CONNECTED = {"T": "success", "msg": "connected"}
AUTHENTICATED = {"T": "success", "msg": "authenticated"}


class WireError(PairsError, ValueError):
    """A client frame that cannot be understood; ``code`` is the Alpaca error code to answer with."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        super().__init__(detail or ERROR_MESSAGES.get(code, "error"))
        self.code = code
        self.detail = detail


def error_message(code: int, detail: str | None = None) -> dict:
    """An Alpaca error message; ``detail`` (naming the symbol or field) follows the standard text.

    Never puts "insufficient subscription" in a detail: alpaca-py stops for good on that text.
    """
    text = ERROR_MESSAGES.get(code, "error")
    return {"T": "error", "code": code, "msg": f"{text}: {encodable(detail)}" if detail else text}


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot carry (a lone surrogate a client's JSON key smuggled in via
    ``\\ud800``) escaped as ``\\ud800``: it can go into a frame or a log line."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def subscription_message(subscribed: Mapping[str, Iterable[str]]) -> dict:
    """The ``subscription`` acknowledgement listing every channel (empty lists included)."""
    message: dict[str, Any] = {"T": "subscription"}
    for channel in CHANNELS:
        message[channel] = sorted(subscribed.get(channel, ()))
    return message


# --- timestamps ---------------------------------------------------------------------------------


def rfc3339(value: Any) -> str:
    """``2022-12-28T21:00:00Z`` (fractional seconds only when present), as Alpaca writes them."""
    ts = to_utc(value)
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ts.microsecond * 1000 + ts.nanosecond
    return f"{base}.{frac:09d}".rstrip("0") + "Z" if frac else base + "Z"


def msgpack_timestamp(value: Any) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(int(to_utc(value).value))


def parse_timestamp(value: Any) -> pd.Timestamp:
    """A wire timestamp (msgpack Timestamp, datetime or RFC 3339 string) as a UTC Timestamp."""
    if isinstance(value, msgpack.Timestamp):
        return pd.Timestamp(value.to_unix_nano(), unit="ns", tz="UTC")
    return to_utc(value)


# --- bars ---------------------------------------------------------------------------------------


def _known(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def bar_message(
    symbol: str,
    timestamp: Any,
    *,
    open: float | None,
    high: float | None,
    low: float | None,
    close: float,
    volume: float | None,
    trade_count: float | None = None,
    vwap: float | None = None,
    msg_type: str = "b",
    proxy_for: str | None = None,
    binary: bool = True,
) -> dict:
    """One bar in Alpaca's stream (``binary=True``: msgpack timestamp) or REST (RFC 3339) form.

    Unknown open/high/low are sent as the close and unknown volume as 0 (alpaca-py requires
    numbers); the fields so filled are listed under ``filled``. ``proxy_for`` (the symbol whose
    bars these really are) is sent under ``proxy``.
    """
    c = _known(close)
    if c is None:
        raise ValueError(f"bar of symbol {symbol} at {timestamp}: close is unknown")
    values = {"o": _known(open), "h": _known(high), "l": _known(low), "v": _known(volume)}
    filled = [key for key, value in values.items() if value is None]
    message: dict[str, Any] = {"T": msg_type, "S": symbol} if msg_type else {}
    message.update(
        {
            "o": c if values["o"] is None else values["o"],
            "h": c if values["h"] is None else values["h"],
            "l": c if values["l"] is None else values["l"],
            "c": c,
            "v": 0.0 if values["v"] is None else values["v"],
            "t": msgpack_timestamp(timestamp) if binary else rfc3339(timestamp),
            "n": _known(trade_count),
            "vw": _known(vwap),
        }
    )
    if filled:
        message[FILLED_KEY] = filled
    if proxy_for:
        message[PROXY_KEY] = proxy_for
    return message


_FIELD_OF_KEY = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume", "n": "trade_count", "vw": "vwap"}


def bar_record(symbol: str, message: Mapping[str, Any], source: str) -> dict:
    """A raw bar message → one row of the bars contract (filled fields back to null).

    The message is first validated by ``alpaca.data.models.Bar`` (the model alpaca-py itself
    builds), so a bar the real client would reject is rejected here too, naming the symbol.
    """
    from alpaca.data.models import Bar

    raw = dict(message)
    ts = parse_timestamp(raw.get("t"))
    raw["t"] = ts.to_pydatetime()
    try:
        bar = Bar(symbol, raw)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"bar of symbol {symbol} at {ts.isoformat()} is malformed: {exc}") from exc
    row = {
        "symbol": symbol,
        "timestamp": ts,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "trade_count": bar.trade_count,
        "vwap": bar.vwap,
        "source": source,
    }
    for key in raw.get(FILLED_KEY) or ():
        field = _FIELD_OF_KEY.get(str(key))
        if field and field != "close":
            row[field] = None
    return row


# --- codecs -------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        return rfc3339(pd.Timestamp(value.to_unix_nano(), unit="ns", tz="UTC"))
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return rfc3339(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class Codec:
    """Encoding of one connection: ``msgpack`` (binary frames) or ``json`` (text frames)."""

    def __init__(self, kind: str) -> None:
        if kind not in ("msgpack", "json"):
            raise ValueError(f"codec must be 'msgpack' or 'json', got {kind!r}")
        self.kind = kind

    @property
    def binary(self) -> bool:
        return self.kind == "msgpack"

    def encode(self, messages: list[dict]) -> bytes | str:
        if self.kind == "msgpack":
            return msgpack.packb(messages, use_bin_type=True)
        return json.dumps(messages, default=_json_default, separators=(",", ":"))

    @staticmethod
    def decode(frame: bytes | str) -> Any:
        """A client frame (msgpack if binary, JSON if text) → a Python object; ``WireError`` if not."""
        try:
            if isinstance(frame, (bytes, bytearray, memoryview)):
                return msgpack.unpackb(bytes(frame), raw=False)
            return json.loads(frame)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            kind = "binary" if isinstance(frame, (bytes, bytearray, memoryview)) else "text"
            raise WireError(400, f"{kind} frame is neither msgpack nor JSON ({type(exc).__name__})") from exc
        except RecursionError:  # JSON nested deeper than the interpreter's stack ([[[[…]]]])
            raise WireError(400, "frame nested too deeply") from None
