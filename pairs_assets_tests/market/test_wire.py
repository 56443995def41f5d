"""Alpaca wire format: bar messages as alpaca-py's models read them, and back into the bars contract."""

from __future__ import annotations

import math

import msgpack
import pandas as pd
import pytest
from alpaca.data.models import Bar

from pairs_assets.market import wire


def test_bar_message_round_trips_through_alpacas_model():
    ts = pd.Timestamp("2022-12-28T21:00:00.123456Z")
    message = wire.bar_message(
        "KO", ts, open=62.0, high=63.0, low=61.5, close=62.5, volume=1e6, trade_count=12.0, vwap=62.4
    )
    packed = msgpack.unpackb(msgpack.packb([message]))[0]
    assert isinstance(packed["t"], msgpack.Timestamp) and "filled" not in packed
    packed["t"] = packed["t"].to_datetime()
    bar = Bar(packed["S"], packed)  # what alpaca-py's stream does with a parsed frame
    assert (bar.symbol, bar.close, bar.vwap, pd.Timestamp(bar.timestamp)) == ("KO", 62.5, 62.4, ts)
    row = wire.bar_record("KO", message, "src")
    assert row["timestamp"] == ts and row["open"] == 62.0 and row["source"] == "src"


def test_unknown_fields_are_filled_on_the_wire_and_null_again_in_the_store():
    message = wire.bar_message(
        "KO",
        "2022-12-28T21:00:00Z",
        open=None,
        high=math.nan,
        low=None,
        close=62.5,
        volume=None,
        proxy_for="PEP",
        binary=False,
    )
    assert message["o"] == message["h"] == message["l"] == 62.5 and message["v"] == 0.0
    assert message["filled"] == ["o", "h", "l", "v"] and message["proxy"] == "PEP"
    assert message["t"] == "2022-12-28T21:00:00Z" and message["n"] is None
    row = wire.bar_record("KO", message, "src")
    assert row["close"] == 62.5 and row["open"] is None and row["volume"] is None and row["high"] is None


def test_malformed_bars_name_the_symbol():
    with pytest.raises(ValueError, match="symbol KO.*close is unknown"):
        wire.bar_message("KO", "2022-12-28", open=1, high=1, low=1, close=None, volume=1)
    with pytest.raises(ValueError, match="bar of symbol PEP"):
        wire.bar_record(
            "PEP", {"t": "2022-12-28T21:00:00Z", "o": "x", "h": 1, "l": 1, "c": 1, "v": 1, "n": None, "vw": None}, "s"
        )


def test_rfc3339_and_codecs():
    assert wire.rfc3339("2022-12-28 21:00:00") == "2022-12-28T21:00:00Z"
    assert wire.rfc3339(pd.Timestamp("2022-12-28T21:00:00.5Z")) == "2022-12-28T21:00:00.5Z"
    assert (
        wire.parse_timestamp(msgpack.Timestamp.from_unix_nano(1_672_261_200_000_000_001)).value
        == 1_672_261_200_000_000_001
    )
    json_codec = wire.Codec("json")
    text = json_codec.encode([wire.bar_message("A", "2022-12-28T21:00:00Z", open=1, high=1, low=1, close=1, volume=1)])
    assert '"t":"2022-12-28T21:00:00Z"' in text
    assert wire.Codec.decode(msgpack.packb({"action": "auth"})) == {"action": "auth"}
    with pytest.raises(wire.WireError) as bad:
        wire.Codec.decode(b"\xc1")
    assert bad.value.code == 400
    assert wire.error_message(402) == {"T": "error", "code": 402, "msg": "auth failed"}
    assert wire.subscription_message({"bars": {"B", "A"}})["bars"] == ["A", "B"]
