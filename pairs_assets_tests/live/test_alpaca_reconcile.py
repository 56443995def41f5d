"""alpaca-paper after a restart / on a new machine: the pair states are rebuilt from the store and reconciled
with the positions the broker reports — the real alpaca-py TradingClient against the local trading API of
the broker tests (pairs_assets_tests.resources.test_broker.local_trading_api). A mismatch is reported and
freezes the pair (no order, state kept), never overwritten; a position no state accounts for fails the run."""

from __future__ import annotations

import dagster as dg
import pytest

from pairs_assets.assets.trading_signals import UnheldPositionError, read_pair_states
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from pairs_assets_tests.live.test_signal_state import ko_bar, world  # noqa: F401  (fixture)
from pairs_assets_tests.resources.test_broker import _LocalTradingHandler, local_trading_api
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import orders_table, positions_table


def run(instance, store, url: str, cutoff: str) -> dg.ExecuteInProcessResult:
    """One signal run in a fresh resource set (nothing carried in memory from an earlier run: a restart)."""
    return dg.materialize(
        [setup.stand_in_trading_config, trading_signals],
        selection=["trading_signals"],
        partition_key=setup.PARTITION,
        instance=instance,
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": StrategySettings.preset("seed"),
            "model_registry": setup.TinyModels(),
            "broker": BrokerResource(mode="alpaca-paper", api_key="AKPAPER", secret_key="SKPAPER", url_override=url),
        },
        run_config={"ops": {"trading_signals": {"config": {"bar_cutoff": cutoff}}}},
    )


def posted() -> list[dict]:
    return [s["order"] for s in _LocalTradingHandler.seen if "order" in s]


def fill_everything_posted() -> None:
    """The broker fills what it was sent: its positions become the signed sum of the posted orders."""
    book: dict[str, float] = {}
    for order in posted():
        book[order["symbol"]] = book.get(order["symbol"], 0.0) + (1 if order["side"] == "buy" else -1) * float(
            order["qty"]
        )
    _LocalTradingHandler.positions = [
        {"symbol": s, "qty": str(abs(q)), "side": "long" if q > 0 else "short", "avg_entry_price": "1"}
        for s, q in sorted(book.items())
        if q
    ]


def new_machine(store) -> None:
    """A new machine on the same store: the local mirror of the broker's positions is gone."""
    with store.engine.begin() as conn:
        conn.execute(positions_table.delete())


def test_after_a_restart_the_state_reconciles_with_the_brokers_positions(world):
    store, instance, config, _ = world
    with local_trading_api(positions=[]) as url:
        ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)
        assert run(instance, store, url, "2022-12-29T15:00:00Z").success
        assert {o["symbol"] for o in posted()} == {"KO", "PEP", "PG", "WMT"}
        fill_everything_posted()
        new_machine(store)
        ko_bar(store, config, "2022-12-29T15:05:00Z", 2.4)  # still held
        result = run(instance, store, url, "2022-12-29T15:05:00Z")
        meta = result.asset_materializations_for_node("trading_signals")[0].metadata
        assert meta["state_vs_book"].value == "_(none)_" and meta["not_traded"].value == "_(none)_"
        assert any(s["path"] == "/v2/positions" for s in _LocalTradingHandler.seen)  # asked the broker, not the mirror


def test_a_broker_position_that_differs_from_the_state_is_reported_and_freezes_the_pair(world):
    store, instance, config, _ = world
    with local_trading_api(positions=[]) as url:
        ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)
        assert run(instance, store, url, "2022-12-29T15:00:00Z").success
        fill_everything_posted()
        state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
        # someone closed part of KO by hand at the broker
        _LocalTradingHandler.positions = [
            p if p["symbol"] != "KO" else {**p, "qty": str(state.shares_y - 3)} for p in _LocalTradingHandler.positions
        ]
        new_machine(store)
        n_posted = len(posted())
        ko_bar(store, config, "2022-12-29T15:05:00Z", 0.2)  # the rule says exit ...
        result = run(instance, store, url, "2022-12-29T15:05:00Z")
        assert result.success
        meta = result.asset_materializations_for_node("trading_signals")[0].metadata
        report = meta["state_vs_book"].value
        assert (
            "symbol KO" in report
            and f"book {-(state.shares_y - 3):g} shares, held pair states {-state.shares_y:g}" in report
        )
        assert "KO-PEP" in meta["not_traded"].value and "state and book disagree" in meta["not_traded"].value
        assert len(posted()) == n_posted  # ... but nothing is sent for the frozen pair
        after = read_pair_states(store, setup.SECTOR)["KO-PEP"]
        assert (after.side, after.shares_y, after.shares_x) == (
            state.side,
            state.shares_y,
            state.shares_x,
        )  # not overwritten


def test_a_broker_position_with_no_state_row_fails_naming_the_symbol(world):
    store, instance, config, _ = world
    with local_trading_api(
        positions=[{"symbol": "KO", "qty": "160", "side": "short", "avg_entry_price": "62.5"}]
    ) as url:
        ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)
        with pytest.raises(
            UnheldPositionError,
            match=r"^partition 2022-12-28\|consumer: broker alpaca-paper holds -160 shares of KO but no held pair state names KO",
        ):
            run(instance, store, url, "2022-12-29T15:00:00Z")
        assert posted() == [] and store.read_table(orders_table).empty
