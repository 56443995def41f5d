"""The broker: dry-run records, the live-trading switch, and alpaca-py's TradingClient against a local endpoint."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from pairs_assets.quant.signals import OrderIntent
from resources.broker import BrokerError, BrokerResource, client_order_id
from resources.market_data import MarketDataStore, orders_table

BAR = pd.Timestamp("2022-12-29T15:05:00Z")


def intents(pair_id: str = "KO-PEP", y_side: str = "sell", y_symbol: str = "KO") -> list[OrderIntent]:
    return [
        OrderIntent(pair_id, "x", "PEP", "buy" if y_side == "sell" else "sell", 50.0, 180.0, 50.0),
        OrderIntent(pair_id, "y", y_symbol, y_side, 160.0, 62.5, -160.0 if y_side == "sell" else 160.0),
    ]


def test_dry_run_fills_at_the_reference_price_and_records_everything(sqlite_url):
    store = MarketDataStore(database_url=sqlite_url)
    broker = BrokerResource()
    assert broker.mode == "dry-run" and broker.account_equity() == 100_000.0
    records = broker.submit(store, intents(), BAR, {"KO-PEP": {"action": "short_spread", "zscore": 2.6}})
    assert [r["leg"] for r in records] == ["y", "x"]  # the dependent leg first
    orders = store.read_table(orders_table).set_index("leg")
    assert (
        orders.loc["y", "client_order_id"]
        == "pairs-KO-PEP-y-20221229T150500000000"
        == client_order_id("KO-PEP", "y", BAR)
    )
    assert (
        orders.loc["y", "status"] == "filled"
        and orders.loc["y", "fill_price"] == 62.5
        and orders.loc["y", "side"] == "sell"
    )
    request = json.loads(orders.loc["x", "request"])
    assert request["symbol"] == "PEP" and request["qty"] == 50.0 and request["action"] == "short_spread"
    positions = broker.positions(store).set_index("symbol")
    assert positions.loc["KO", "qty"] == -160.0 and positions.loc["PEP", "qty"] == 50.0
    assert positions.loc["KO", "avg_price"] == 62.5
    assert broker.pair_positions(store, ["KO-PEP"]) == {"KO-PEP": {"y": -160.0, "x": 50.0}}

    assert broker.submit(store, intents(), BAR) == []  # the same bar again: nothing new
    assert len(store.read_table(orders_table)) == 2

    later = BAR + pd.Timedelta(minutes=5)
    closing = [
        OrderIntent("KO-PEP", "y", "KO", "buy", 160.0, 61.0, 0.0),
        OrderIntent("KO-PEP", "x", "PEP", "sell", 50.0, 181.0, 0.0),
    ]
    broker.submit(store, closing, later)
    positions = broker.positions(store).set_index("symbol")
    assert positions.loc["KO", "qty"] == 0 and pd.isna(positions.loc["KO", "avg_price"])
    assert broker.pair_positions(store, ["KO-PEP"]) == {"KO-PEP": {"y": 0.0, "x": 0.0}}


def test_modes_need_keys_and_live_needs_the_explicit_switch(monkeypatch):
    with pytest.raises(BrokerError, match="one of dry-run, alpaca-paper, alpaca-live"):
        BrokerResource(mode="yolo").check()
    with pytest.raises(BrokerError, match="alpaca-paper needs ALPACA_API_KEY and ALPACA_SECRET_KEY"):
        BrokerResource(mode="alpaca-paper").check()
    monkeypatch.delenv("PAIRS_ALLOW_LIVE_TRADING", raising=False)
    live = BrokerResource(mode="alpaca-live", api_key="AK", secret_key="SK")
    with pytest.raises(BrokerError, match="PAIRS_ALLOW_LIVE_TRADING=yes"):
        live.check()
    monkeypatch.setenv("PAIRS_ALLOW_LIVE_TRADING", "true")  # anything but "yes" is no
    with pytest.raises(BrokerError, match="refused"):
        live.account_equity()
    monkeypatch.setenv("PAIRS_ALLOW_LIVE_TRADING", "yes")
    live.check()
    assert "SKHIDDEN" not in repr(BrokerResource(mode="alpaca-paper", api_key="AK", secret_key="SKHIDDEN"))


class _LocalTradingHandler(BaseHTTPRequestHandler):
    """Just enough of Alpaca's trading API for TradingClient(raw_data=True): account, orders, positions."""

    seen: list[dict] = []
    #: what GET /v2/positions answers (local_trading_api(positions=…) sets it)
    positions: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        _LocalTradingHandler.seen.append({"path": self.path, "key": self.headers.get("APCA-API-KEY-ID")})
        if self.path == "/v2/account":
            self._reply(200, {"equity": "50000", "status": "ACTIVE"})
        elif self.path == "/v2/positions":
            self._reply(200, _LocalTradingHandler.positions)
        else:
            self._reply(404, {"code": 40410000, "message": "not found"})

    def do_POST(self) -> None:
        order = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _LocalTradingHandler.seen.append(
            {"path": self.path, "order": order, "key": self.headers.get("APCA-API-KEY-ID")}
        )
        if order["symbol"] == "REJ":
            self._reply(403, {"code": 40310000, "message": "insufficient buying power"})
            return
        self._reply(
            200,
            {
                "id": str(uuid.uuid4()),
                "client_order_id": order["client_order_id"],
                "status": "accepted",
                "symbol": order["symbol"],
                "filled_avg_price": None,
            },
        )


@contextlib.contextmanager
def local_trading_api(positions: list[dict] | None = None):
    _LocalTradingHandler.seen = []
    _LocalTradingHandler.positions = (
        [{"symbol": "KO", "qty": "-160", "side": "short", "avg_entry_price": "62.5"}]
        if positions is None
        else positions
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LocalTradingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_paper_trading_through_alpacas_trading_client(sqlite_url):
    store = MarketDataStore(database_url=sqlite_url)
    with local_trading_api() as url:
        broker = BrokerResource(mode="alpaca-paper", api_key="AKPAPER", secret_key="SKPAPER", url_override=url)
        assert broker.account_equity() == 50_000.0
        records = broker.submit(store, intents(), BAR)
        assert [r["status"] for r in records] == ["accepted", "accepted"]
        posted = [s["order"] for s in _LocalTradingHandler.seen if "order" in s]
        assert [(o["symbol"], o["side"], o["type"], o["time_in_force"]) for o in posted] == [
            ("KO", "sell", "market", "day"),
            ("PEP", "buy", "market", "day"),
        ]
        assert posted[0]["client_order_id"] == client_order_id("KO-PEP", "y", BAR)
        assert all(s["key"] == "AKPAPER" for s in _LocalTradingHandler.seen)
        assert broker.positions(store).set_index("symbol").loc["KO", "qty"] == -160.0

        rejected = broker.submit(store, intents("BAD-PEP", y_symbol="REJ"), BAR)
        assert [(r["leg"], r["status"]) for r in rejected] == [("y", "rejected"), ("x", "skipped")]
        assert "insufficient buying power" in json.loads(rejected[0]["request"])["error"]
        assert (
            len([s for s in _LocalTradingHandler.seen if s.get("order", {}).get("symbol") == "PEP"]) == 1
        )  # no naked x leg
        for record in store.read_table(orders_table)["request"]:
            assert "SKPAPER" not in record and "AKPAPER" not in record
        assert broker.pair_positions(store, ["BAD-PEP"]) == {"BAD-PEP": {"y": 0.0, "x": 0.0}}
