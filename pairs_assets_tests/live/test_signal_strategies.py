"""The signal job per strategy (issue 19): a strategy's config, states, signals and orders are its own;
the account's risk limits and the broker's book are shared by every strategy — dg.materialize on a
real SQLite store."""

from __future__ import annotations

import pandas as pd
import pytest

from pairs_assets.assets.trading_signals import MissingTradingConfigError, read_pair_states, state_row
from pairs_assets_tests.live import signal_setup as setup
from pairs_assets_tests.live.test_signal_state import PEP, ko_bar, materialize, world  # noqa: F401 (the fixture)
from resources.market_data import (
    PRIMARY_STRATEGY,
    orders_table,
    pair_states_table,
    positions_table,
    trading_signals_table,
)

BAR = "2022-12-29T15:00:00Z"


def _hold(store, config, strategy: str, shares_y: float, shares_x: float) -> None:
    """``strategy`` holds KO-PEP short (KO sold, PEP bought) with these shares."""
    state = setup.held_state(config, shares_y=shares_y, shares_x=shares_x)
    store.upsert_rows(
        pair_states_table,
        [state_row(state, sector=setup.SECTOR, as_of=setup.AS_OF, run_id="earlier", strategy=strategy)],
    )


def _book(store, ko: float, pep: float) -> None:
    now = pd.Timestamp("2022-12-28 21:00")
    store.upsert_rows(
        positions_table,
        [
            {"broker": "dry-run", "symbol": "KO", "qty": ko, "avg_price": 60.0, "updated_at": now},
            {"broker": "dry-run", "symbol": "PEP", "qty": pep, "avg_price": PEP, "updated_at": now},
        ],
    )


def _metadata(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("trading_signals")
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.mark.parametrize("other_strategy_holds", [True, False])
def test_two_strategies_holding_the_same_symbols_reconcile_with_the_broker(world, other_strategy_holds):
    """The broker holds one net position per symbol: it is compared with the SUM of every strategy's
    held states (the primary's 10/12 shares plus distance's 5/6), not with the running strategy's alone."""
    store, instance, config, _ = world
    _hold(store, config, PRIMARY_STRATEGY, 10.0, 12.0)
    if other_strategy_holds:
        _hold(store, config, "distance", 5.0, 6.0)
    _book(store, -15.0, 18.0)
    store.upsert_rows(
        orders_table,
        [
            {
                "client_order_id": f"pairs-KO-PEP-{leg}-20221220T150000000000",
                "submitted_at": pd.Timestamp("2022-12-20 15:00"),
                "broker": "dry-run",
                "strategy": PRIMARY_STRATEGY,
                "pair_id": "KO-PEP",
                "leg": leg,
                "symbol": symbol,
                "side": side,
                "qty": qty,
                "status": "filled",
            }
            for leg, symbol, side, qty in (("y", "KO", "sell", 10.0), ("x", "PEP", "buy", 12.0))
        ],
    )
    ko_bar(store, config, BAR, 2.0)  # inside the band: the held position is kept
    result = materialize(instance, store, cutoff=BAR)
    assert result.success
    state_vs_book = str(_metadata(result)["state_vs_book"])
    if other_strategy_holds:
        assert "KO" not in state_vs_book and "PEP" not in state_vs_book, state_vs_book
    else:  # the same book without distance's state: 5 KO and 6 PEP no state accounts for
        assert "book -15 shares, held pair states -10" in state_vs_book, state_vs_book
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == -1
    distance = read_pair_states(store, setup.SECTOR, "distance")
    assert (distance["KO-PEP"].shares_y if other_strategy_holds else distance) == (5.0 if other_strategy_holds else {})


@pytest.mark.parametrize("other_strategy_holds", [True, False])
def test_an_entry_past_the_account_limit_because_of_another_strategy_is_refused(world, other_strategy_holds):
    """One set of limits for the account: distance's short KO position (about 9 % of the dry-run equity)
    plus the primary's new short KO leg would pass max_position (10 %): the primary's entry is refused.
    Without distance's position the same entry goes out."""
    store, instance, config, _ = world
    if other_strategy_holds:
        _hold(store, config, "distance", 150.0, 50.0)
        _book(store, -150.0, 50.0)
    ko_bar(store, config, BAR, 2.6)  # the primary's entry: short the spread (sell KO)
    result = materialize(instance, store, cutoff=BAR)
    assert result.success
    orders = store.read_table(orders_table).query("pair_id == 'KO-PEP'")
    state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
    not_traded = str(_metadata(result)["not_traded"])
    if other_strategy_holds:
        assert orders.empty and state.side == 0
        assert "entry not traded: account limit: KO: other strategies -150" in not_traded, not_traded
        assert "max_position 10%" in not_traded
    else:
        assert set(orders["symbol"]) == {"KO", "PEP"} and state.side == -1
        assert "account limit" not in not_traded
    signal = store.read_table(trading_signals_table).set_index("pair_id").loc["KO-PEP"]
    assert signal["action"] == "short_spread" and signal["strategy"] == PRIMARY_STRATEGY


def test_a_strategy_trades_its_own_config_states_signals_and_orders(world):
    store, instance, config, _ = world
    with pytest.raises(MissingTradingConfigError, match=r"^strategy distance, partition 2022-12-28\|consumer: no"):
        materialize(instance, store, cutoff=BAR, strategy="distance")
    store.write_trading_config(config.document(), path="distance.json", strategy="distance")
    ko_bar(store, config, BAR, 2.6)
    result = materialize(instance, store, cutoff=BAR, strategy="distance", on_drop="exit", max_holding=0)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags["pairs/strategy"] == "distance"
    assert _metadata(result)["strategy"] == "distance"
    orders = store.read_table(orders_table)
    assert set(orders["strategy"]) == {"distance"} and set(orders["pair_id"]) == {"KO-PEP", "PG-WMT"}
    assert all(cid.startswith("pairs-distance-") for cid in orders["client_order_id"])
    assert len(orders.query("pair_id == 'KO-PEP'")) == 2
    assert read_pair_states(store, setup.SECTOR, "distance")["KO-PEP"].side == -1
    assert read_pair_states(store, setup.SECTOR) == {}  # the primary strategy holds nothing
    assert set(store.read_table(trading_signals_table)["strategy"]) == {"distance"}
    # the primary strategy's run on the same bar keeps its own state: its entry is its own
    assert materialize(instance, store, cutoff=BAR).success
    rows = store.read_table(trading_signals_table)
    assert rows.groupby("strategy")["pair_id"].apply(sorted).to_dict() == {
        PRIMARY_STRATEGY: ["KO-PEP", "PG-WMT"],
        "distance": ["KO-PEP", "PG-WMT"],
    }
    assert set(store.read_table(pair_states_table)["strategy"]) == {PRIMARY_STRATEGY, "distance"}
