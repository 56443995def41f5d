"""The broker: turns pair signals into two leg orders. Dry-run by default; Alpaca paper on request.

Modes (``mode``):

* ``dry-run`` (default) — nothing leaves the machine: each order is filled at its reference price
  (the latest bar's close), recorded in the store's ``orders`` table and the resulting net
  position in ``positions`` (broker ``dry-run``). Equity is the ``equity`` setting.
* ``alpaca-paper`` — alpaca-py ``TradingClient(paper=True)``; needs ALPACA_API_KEY and
  ALPACA_SECRET_KEY (``definitions.broker_for`` passes them as ``dg.EnvVar``, set by ``PAIRS_BROKER``). Market day orders.
* ``alpaca-live`` — real money. Refused unless the environment also says
  ``PAIRS_ALLOW_LIVE_TRADING=yes``, on top of the mode and the keys: checked when a run sets the
  resource up (before any step does work, whatever the signals turn out to be) and again at
  every order.

**One transaction with the states.** ``submit(..., pending=PendingWrites())`` records nothing
itself: the order rows and the resulting ``positions`` rows collect in ``pending`` and the caller
writes them together with the pair states and signal rows in one transaction
(``MarketDataStore.upsert_tables``), so a crash leaves either all of a run's bookkeeping or none.
The dry-run broker sends nothing, so a run that fails before that transaction leaves no trace. An
Alpaca order already sent cannot be unsent: if the transaction then fails, a re-run computes the same
order with the same ``client_order_id``, which Alpaca's API refuses as a duplicate id (recorded as
rejected); the account then holds what the store does not, and the next run's reconciliation with
the broker's positions reports the difference and freezes the pair (``trading_signals``) — it is
never silently taken over. (The duplicate-id refusal is Alpaca's documented behaviour, not exercised
by the tests' local trading API.)

Every order's ``client_order_id`` is ``pairs-<pair_id>-<leg>-<bar time>`` for the primary strategy
(``garch_gru``) and ``pairs-<strategy>-<pair_id>-<leg>-<bar time>`` for any other (a lowercase
strategy name before the pair's uppercase legs), so the account's orders can be told apart by
strategy at the broker too; the ``orders`` row carries the ``strategy`` column and the recorded
request its ``strategy`` field. Re-running a signal run for the same bar never submits twice (the
id is checked in ``orders`` first, and Alpaca rejects a reused id). A pair's legs go y first; if y
is rejected, x is not sent (no naked leg). Keys are never logged nor recorded; the recorded
``request`` holds only the order's fields.

Credentials by destination, whatever the definitions or a run's config say: Alpaca's keys (the
values of ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY``, however given) go only to Alpaca's own hosts
over https. A ``url_override`` elsewhere (a paper-trading stand-in) gets the keys configured for it,
else the recycler's, else the anonymous placeholder; a run that would send Alpaca's keys there is
refused at setup and again before any client is built (``pairs_assets.market.endpoints``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from pairs_assets.errors import PairsError
from pairs_assets.market.endpoints import ENV_API_KEY, ENV_SECRET_KEY, credentials_for_destination
from pairs_assets.util import to_naive_utc, to_utc
from resources.market_data import PRIMARY_STRATEGY, MarketDataStore, orders_table, positions_table

if TYPE_CHECKING:  # the broker reads intents, it does not compute them
    from pairs_assets.quant.signals import OrderIntent

BROKER_MODES = ("dry-run", "alpaca-paper", "alpaca-live")
ENV_ALLOW_LIVE = "PAIRS_ALLOW_LIVE_TRADING"
#: Order statuses that do not change a position.
DEAD_STATUSES = ("rejected", "canceled", "cancelled", "expired", "skipped", "failed")


@dataclasses.dataclass
class PendingWrites:
    """Order and position rows a ``submit`` collected instead of writing (see the module docstring)."""

    orders: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    positions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def batches(self) -> list[tuple[sa.Table, list[dict[str, Any]]]]:
        """``(table, rows)`` for ``MarketDataStore.upsert_tables``."""
        return [
            (orders_table, list(self.orders)),
            (positions_table, [self.positions[s] for s in sorted(self.positions)]),
        ]


class BrokerError(PairsError, RuntimeError):
    """The broker is misconfigured (mode, keys, live switch) or refused an order; names which."""


def client_order_id(pair_id: str, leg: str, bar_timestamp: pd.Timestamp, strategy: str = PRIMARY_STRATEGY) -> str:
    """The order's id at the broker: ``pairs-[<strategy>-]<pair_id>-<leg>-<bar time>`` (the primary
    strategy's ids unchanged from before strategies existed: a re-run finds its orders recorded)."""
    ts = to_utc(bar_timestamp)
    tag = "" if strategy == PRIMARY_STRATEGY else f"{strategy}-"
    return f"pairs-{tag}{pair_id}-{leg}-{ts.strftime('%Y%m%dT%H%M%S%f')}"[:128]


class BrokerResource(dg.ConfigurableResource):
    """Order execution for the signal job (see the module docstring for the modes)."""

    mode: str = Field(default="dry-run", description="dry-run | alpaca-paper | alpaca-live")
    api_key: str | None = Field(default=None, repr=False, description="ALPACA_API_KEY (dg.EnvVar); alpaca modes only.")
    secret_key: str | None = Field(
        default=None, repr=False, description="ALPACA_SECRET_KEY (dg.EnvVar); alpaca modes only."
    )
    equity: float = Field(default=100_000.0, gt=0, description="Account equity of the dry-run broker.")
    url_override: str | None = Field(default=None, description="Trading API base URL instead of Alpaca's.")

    @property
    def name(self) -> str:
        return self.mode

    def check(self) -> None:
        """Raise ``BrokerError`` unless the mode can trade now (keys present; live switch for live)."""
        if self.mode not in BROKER_MODES:
            raise BrokerError(f"broker mode must be one of {', '.join(BROKER_MODES)}, got {self.mode!r}")
        if self.mode == "dry-run":
            return
        key, secret = self._credentials()
        if not (key and secret):
            raise BrokerError(f"broker mode {self.mode} needs {ENV_API_KEY} and {ENV_SECRET_KEY} in the environment")
        if self.mode == "alpaca-live" and os.environ.get(ENV_ALLOW_LIVE) != "yes":
            raise BrokerError(
                f"broker mode alpaca-live trades real money and is refused unless {ENV_ALLOW_LIVE}=yes is set "
                "in the environment (use alpaca-paper for paper trading)"
            )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a misconfigured broker as soon as a run sets it up, before any work.

        Parameters
        ----------
        context : dagster.InitResourceContext
            Dagster's resource-initialisation context (unused).

        Raises
        ------
        BrokerError
            Unknown mode, missing keys for an Alpaca mode, or ``alpaca-live`` without
            ``PAIRS_ALLOW_LIVE_TRADING=yes`` (see ``check``).
        CredentialsDestinationError
            Alpaca's keys would go to a ``url_override`` that is not Alpaca's over https.
        """
        self.check()

    def _credentials(self) -> tuple[str | None, str | None]:
        """Alpaca's keys only to Alpaca's own hosts over https (``CredentialsDestinationError`` otherwise)."""
        return credentials_for_destination("broker", self.url_override, self.api_key, self.secret_key)

    def _trading_client(self):
        from alpaca.trading.client import TradingClient

        self.check()
        key, secret = self._credentials()
        return TradingClient(
            key, secret, paper=self.mode == "alpaca-paper", raw_data=True, url_override=self.url_override
        )

    def account_equity(self) -> float:
        self.check()
        if self.mode == "dry-run":
            return float(self.equity)
        account = self._trading_client().get_account()
        try:
            return float(account["equity"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BrokerError(f"broker {self.mode}: account has no usable 'equity' field") from exc

    # --- state ---
    def pair_positions(
        self, store: MarketDataStore, pair_ids: Sequence[str], strategy: str = PRIMARY_STRATEGY
    ) -> dict[str, dict[str, float]]:
        """Signed shares held per pair and leg, from this broker's recorded orders of ``strategy``."""
        t = orders_table.c
        orders = store.read_table(
            orders_table, sa.and_(t.broker == self.name, t.strategy == strategy, t.pair_id.in_(list(pair_ids)))
        )
        held: dict[str, dict[str, float]] = {pid: {"y": 0.0, "x": 0.0} for pid in pair_ids}
        for row in orders.itertuples(index=False):
            if str(row.status).lower() in DEAD_STATUSES:
                continue
            held.setdefault(row.pair_id, {"y": 0.0, "x": 0.0})
            held[row.pair_id][row.leg] += row.qty if row.side == "buy" else -row.qty
        return held

    def known_order_ids(self, store: MarketDataStore, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        t = orders_table.c
        return set(store.read_table(orders_table, t.client_order_id.in_(list(ids)))["client_order_id"])

    # --- execution ---
    def submit(
        self,
        store: MarketDataStore,
        intents: Sequence[OrderIntent],
        bar_timestamp: pd.Timestamp,
        extra: dict[str, dict[str, Any]] | None = None,
        pending: PendingWrites | None = None,
        strategy: str = PRIMARY_STRATEGY,
    ) -> list[dict[str, Any]]:
        """Submit (or simulate) ``strategy``'s orders, y leg before x leg per pair; record and return them.

        ``extra`` maps a pair_id to fields added to each recorded request (action, z-score, …).
        Orders whose ``client_order_id`` is already recorded (or pending) are skipped (idempotent
        re-runs). With ``pending`` the order and position rows are collected there, not written.
        """
        self.check()
        ids = {(i.pair_id, i.leg): client_order_id(i.pair_id, i.leg, bar_timestamp, strategy) for i in intents}
        known = self.known_order_ids(store, list(ids.values()))
        if pending is not None:
            known |= {o["client_order_id"] for o in pending.orders}
        client = self._trading_client() if self.mode != "dry-run" else None
        records: list[dict[str, Any]] = []
        failed_pairs: set[str] = set()
        for intent in sorted(intents, key=lambda i: (i.pair_id, 0 if i.leg == "y" else 1)):
            order_id = ids[(intent.pair_id, intent.leg)]
            if order_id in known:
                continue
            request = {
                "symbol": intent.symbol,
                "qty": intent.qty,
                "side": intent.side,
                "type": "market",
                "time_in_force": "day",
                "client_order_id": order_id,
                "target_qty": intent.target_qty,
                "bar_timestamp": pd.Timestamp(bar_timestamp).isoformat(),
                "strategy": strategy,
                **(extra or {}).get(intent.pair_id, {}),
            }
            record = {
                "client_order_id": order_id,
                "submitted_at": to_naive_utc(pd.Timestamp.now(tz="UTC")),
                "broker": self.name,
                "strategy": strategy,
                "pair_id": intent.pair_id,
                "leg": intent.leg,
                "symbol": intent.symbol,
                "side": intent.side,
                "qty": float(intent.qty),
                "reference_price": float(intent.reference_price),
                "fill_price": None,
                "status": "new",
            }
            if intent.pair_id in failed_pairs:
                record["status"] = "skipped"
                request["reason"] = "the pair's y leg was rejected"
            elif client is None:
                record["fill_price"] = float(intent.reference_price)
                record["status"] = "filled"
            else:
                record.update(self._submit_alpaca(client, intent, order_id, request))
                if record["status"] in DEAD_STATUSES:
                    failed_pairs.add(intent.pair_id)
            record["request"] = json.dumps(request, sort_keys=True, default=str)
            if pending is None:
                store.upsert_rows(orders_table, [record])
            else:
                pending.orders.append(record)
            records.append(record)
        if client is None:
            self._apply_dry_run_fills(store, [r for r in records if r["status"] == "filled"], pending)
        elif records:
            self._sync_alpaca_positions(store, client, pending)
        return records

    def _submit_alpaca(self, client, intent: OrderIntent, order_id: str, request: dict) -> dict[str, Any]:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        order = MarketOrderRequest(
            symbol=intent.symbol,
            qty=intent.qty,
            side=OrderSide.BUY if intent.side == "buy" else OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            client_order_id=order_id,
        )
        try:
            response = client.submit_order(order)
        except APIError as exc:
            request["error"] = f"HTTP {exc.status_code}: {exc.message if hasattr(exc, 'message') else exc}"
            return {"status": "rejected"}
        except OSError as exc:
            request["error"] = f"unreachable: {exc}"
            return {"status": "failed"}
        request["broker_order_id"] = response.get("id")
        fill = response.get("filled_avg_price")
        return {"status": str(response.get("status") or "accepted"), "fill_price": float(fill) if fill else None}

    def _apply_dry_run_fills(
        self, store: MarketDataStore, fills: list[dict[str, Any]], pending: PendingWrites | None = None
    ) -> None:
        if not fills:
            return
        t = positions_table.c
        symbols = sorted({f["symbol"] for f in fills})
        current = store.read_table(positions_table, sa.and_(t.broker == self.name, t.symbol.in_(symbols)))
        book = {row.symbol: (float(row.qty), row.avg_price) for row in current.itertuples(index=False)}
        if pending is not None:  # this run's earlier fills, not written yet
            book.update({s: (float(r["qty"]), r["avg_price"]) for s, r in pending.positions.items() if s in symbols})
        for fill in fills:
            qty, avg = book.get(fill["symbol"], (0.0, None))
            signed = fill["qty"] if fill["side"] == "buy" else -fill["qty"]
            new_qty = qty + signed
            price = fill["fill_price"]
            if new_qty == 0:
                new_avg = None
            elif qty == 0 or (qty > 0) != (new_qty > 0):
                new_avg = price  # opened, or crossed through zero
            elif abs(new_qty) > abs(qty):
                new_avg = (abs(qty) * (avg or price) + abs(signed) * price) / abs(new_qty)
            else:
                new_avg = avg  # reduced: the average cost of what is left is unchanged
            book[fill["symbol"]] = (new_qty, new_avg)
        now = to_naive_utc(pd.Timestamp.now(tz="UTC"))
        rows = [
            {"broker": self.name, "symbol": symbol, "qty": qty, "avg_price": avg, "updated_at": now}
            for symbol, (qty, avg) in sorted(book.items())
        ]
        if pending is None:
            store.upsert_rows(positions_table, rows)
        else:
            pending.positions.update({row["symbol"]: row for row in rows})

    def _sync_alpaca_positions(self, store: MarketDataStore, client, pending: PendingWrites | None = None) -> None:
        from alpaca.common.exceptions import APIError

        try:
            positions = client.get_all_positions() or []
        except (APIError, OSError):
            return
        now = to_naive_utc(pd.Timestamp.now(tz="UTC"))
        rows = []
        for position in positions:
            try:
                rows.append(
                    {
                        "broker": self.name,
                        "symbol": str(position["symbol"]),
                        "qty": float(position["qty"])
                        * (-1 if str(position.get("side")) == "short" and float(position["qty"]) > 0 else 1),
                        "avg_price": float(position["avg_entry_price"]) if position.get("avg_entry_price") else None,
                        "updated_at": now,
                    }
                )
            except (KeyError, TypeError, ValueError):
                continue
        if rows and pending is None:
            store.upsert_rows(positions_table, rows)
        elif rows:
            pending.positions.update({row["symbol"]: row for row in rows})

    def positions(self, store: MarketDataStore) -> pd.DataFrame:
        return store.read_table(positions_table, positions_table.c.broker == self.name)

    def broker_positions(self, store: MarketDataStore) -> pd.DataFrame:
        """The account's positions as the broker itself reports them now (columns symbol, qty; signed).

        Alpaca modes ask the broker (``TradingClient.get_all_positions``), never the store's mirror: after a
        restart or on a new machine the mirror may be stale or empty, and the state rebuilt from the store
        must be reconciled with what the account really holds. The dry-run broker's positions are the store's.

        Raises
        ------
        BrokerError
            The broker cannot be asked (HTTP error, unreachable), or reports a position without a usable
            symbol or qty — in one line naming the broker and, where known, the symbol.
        """
        if self.mode == "dry-run":
            frame = self.positions(store)
            return frame[["symbol", "qty"]] if not frame.empty else pd.DataFrame({"symbol": [], "qty": []})
        from alpaca.common.exceptions import APIError

        try:
            raw = self._trading_client().get_all_positions() or []
        except APIError as exc:
            raise BrokerError(
                f"broker {self.mode}: cannot read the account's positions: HTTP {exc.status_code}"
            ) from None
        except OSError as exc:
            raise BrokerError(f"broker {self.mode}: cannot read the account's positions: unreachable ({exc})") from None
        rows = []
        for position in raw:
            symbol = str(position.get("symbol") or "?")
            try:
                qty = float(position["qty"])
            except (KeyError, TypeError, ValueError):
                raise BrokerError(
                    f"broker {self.mode}: position in {symbol} has no usable qty: {position.get('qty')!r}"
                ) from None
            if str(position.get("side")) == "short" and qty > 0:
                qty = -qty
            rows.append((symbol, qty))
        return pd.DataFrame(rows, columns=["symbol", "qty"])
