"""The store per strategy (issue 19): the strategy column in the keys, its API defaults, the in-place
migration of a store made before it (SQLite and PostgreSQL), and orders told apart by strategy."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from pairs_assets_tests import trading_configs as configs
from resources import market_data
from resources.broker import BrokerResource, client_order_id
from resources.market_data import (
    PRIMARY_STRATEGY,
    STRATEGY_TABLES,
    MarketDataStore,
    migrate_strategy_column,
    orders_table,
    pair_states_table,
    trading_configs_table,
    trading_signals_table,
)

BAR = pd.Timestamp("2022-12-29T15:00:00Z")


def _pair(y: str, x: str):
    garch = configs.garch_block(omega=2e-5, alpha=0.05, beta=0.9, sigma_forecast=0.02, unconditional_sigma=0.02)
    return configs.pair_config(y, x, hedge_ratio=1.0, intercept=0.0, spread_mean=0.0, spread_std=0.1, garch=garch)


def _document(as_of: str = "2022-12-28", n_pairs: int = 1) -> dict:
    pairs = [_pair("KO", "PEP"), _pair("PG", "WMT")][:n_pairs]
    config = configs.trading_config(pairs, as_of=as_of, effective="2022-12-29", sector="consumer")
    return config.document()


def _old_schema(url: str) -> None:
    """The four tables as they were before the strategy column (same names, types and keys, no column),
    with one row each."""
    old = sa.MetaData()
    for table in STRATEGY_TABLES:
        sa.Table(
            table.name,
            old,
            *[
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in table.columns
                if c.name != "strategy"
            ],
        )
    engine = sa.create_engine(url)
    try:
        old.create_all(engine)
        document = _document()
        with engine.begin() as conn:
            conn.execute(
                old.tables["trading_configs"].insert(),
                {
                    "as_of_session": "2022-12-28",
                    "sector": "consumer",
                    "effective_session": "2022-12-29",
                    "schema_version": 1,
                    "n_pairs": 1,
                    "input_fingerprint": document["input_fingerprint"],
                    "path": "old.json",
                    "document": json.dumps(document, sort_keys=True),
                },
            )
            conn.execute(
                old.tables["trading_signals"].insert(),
                {
                    "bar_timestamp": BAR.tz_localize(None).to_pydatetime(),
                    "sector": "consumer",
                    "pair_id": "KO-PEP",
                    "as_of_session": "2022-12-28",
                    "action": "hold",
                },
            )
            conn.execute(
                old.tables["orders"].insert(),
                {
                    "client_order_id": client_order_id("KO-PEP", "y", BAR),
                    "submitted_at": BAR.tz_localize(None).to_pydatetime(),
                    "broker": "dry-run",
                    "pair_id": "KO-PEP",
                    "leg": "y",
                    "symbol": "KO",
                    "side": "sell",
                    "qty": 10.0,
                    "status": "filled",
                },
            )
            conn.execute(
                old.tables["pair_states"].insert(),
                {
                    "sector": "consumer",
                    "pair_id": "KO-PEP",
                    "y": "KO",
                    "x": "PEP",
                    "side": -1,
                    "weight_y": -0.05,
                    "weight_x": 0.04,
                    "entry_ordinal": 0,
                    "sessions_held": 1,
                    "stopped": False,
                },
            )
    finally:
        engine.dispose()


def _migrates_in_place(url: str) -> None:
    _old_schema(url)
    store = MarketDataStore(database_url=url)  # opening it migrates
    inspector = sa.inspect(store.engine)
    for table in STRATEGY_TABLES:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert "strategy" in columns and not columns["strategy"]["nullable"], table.name
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert ("strategy" in key) == (table.name != "orders"), (table.name, key)
        # every row written before the column existed is the primary strategy's
        assert set(store.read_table(table)["strategy"]) == {PRIMARY_STRATEGY}, table.name
    assert store.latest_trading_config_record("consumer").path == "old.json"
    # the rebuilt key lets a second strategy keep its own row beside the migrated one, and upserts still work
    store.write_trading_config(_document(n_pairs=2), path="distance.json", strategy="distance")
    store.write_trading_config(_document(), path="again.json")
    rows = store.read_table(trading_configs_table).set_index("strategy")
    assert rows.loc[PRIMARY_STRATEGY, "path"] == "again.json" and rows.loc["distance", "n_pairs"] == 2
    store.upsert_rows(
        pair_states_table,
        [
            {
                "sector": "consumer",
                "pair_id": "KO-PEP",
                "strategy": "distance",
                "y": "KO",
                "x": "PEP",
                "side": 1,
                "weight_y": 0.05,
                "weight_x": -0.04,
                "entry_ordinal": 0,
                "sessions_held": 0,
                "stopped": False,
            }
        ],
    )
    assert sorted(store.read_table(pair_states_table)["side"]) == [-1, 1]
    # idempotent: nothing left to migrate, and a fresh engine on the same store finds nothing either
    assert migrate_strategy_column(store.engine) == []
    market_data._ENGINES.pop(url).dispose()
    reopened = MarketDataStore(database_url=url)
    assert len(reopened.read_table(trading_configs_table)) == 2
    assert len(reopened.read_table(trading_signals_table)) == 1 and len(reopened.read_table(orders_table)) == 1


def test_a_sqlite_store_made_before_the_strategy_column_is_migrated_in_place(sqlite_url):
    _migrates_in_place(sqlite_url)


@pytest.mark.postgres
def test_a_postgres_store_made_before_the_strategy_column_is_migrated_in_place(postgres_url):
    _migrates_in_place(postgres_url)


def test_migration_reports_the_tables_it_changed(sqlite_url):
    _old_schema(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        assert migrate_strategy_column(engine) == [t.name for t in STRATEGY_TABLES]
        assert migrate_strategy_column(engine) == []
    finally:
        engine.dispose()


def test_trading_configs_are_per_strategy_and_the_default_is_the_primary(sqlite_url):
    store = MarketDataStore(database_url=sqlite_url)
    store.write_trading_config(_document("2022-12-27"), path="garch.json")
    store.write_trading_config(_document("2022-12-28", n_pairs=2), path="distance.json", strategy="distance")
    primary = store.latest_trading_config_record("consumer")
    assert (primary.as_of_session, primary.path, primary.strategy) == ("2022-12-27", "garch.json", PRIMARY_STRATEGY)
    other = store.latest_trading_config_record("consumer", strategy="distance")
    assert (other.as_of_session, other.path, other.strategy) == ("2022-12-28", "distance.json", "distance")
    assert store.latest_trading_config_record("consumer", on_or_before="2022-12-27", strategy="distance") is None
    assert len(store.latest_trading_config("consumer", strategy="distance")["pairs"]) == 2
    assert store.latest_trading_config_record("consumer", strategy="absent") is None


def test_orders_carry_their_strategy_in_the_row_the_request_and_the_client_order_id(sqlite_url):
    from pairs_assets.quant.signals import OrderIntent

    store = MarketDataStore(database_url=sqlite_url)
    broker = BrokerResource()
    intents = [
        OrderIntent("KO-PEP", "y", "KO", "sell", 10.0, 60.0, -10.0),
        OrderIntent("KO-PEP", "x", "PEP", "buy", 12.0, 180.0, 12.0),
    ]
    broker.submit(store, intents, BAR)
    broker.submit(store, [OrderIntent("KO-PEP", "y", "KO", "sell", 5.0, 60.0, -5.0)], BAR, strategy="distance")
    orders = store.read_table(orders_table).set_index("client_order_id")
    assert orders.loc[client_order_id("KO-PEP", "y", BAR), "strategy"] == PRIMARY_STRATEGY
    assert client_order_id("KO-PEP", "y", BAR) == "pairs-KO-PEP-y-20221229T150000000000"  # unchanged ids
    distance_id = client_order_id("KO-PEP", "y", BAR, "distance")
    assert distance_id == "pairs-distance-KO-PEP-y-20221229T150000000000"
    assert orders.loc[distance_id, "strategy"] == "distance"
    assert json.loads(orders.loc[distance_id, "request"])["strategy"] == "distance"
    # each strategy's pair positions are its own orders'
    assert broker.pair_positions(store, ["KO-PEP"]) == {"KO-PEP": {"y": -10.0, "x": 12.0}}
    assert broker.pair_positions(store, ["KO-PEP"], "distance") == {"KO-PEP": {"y": -5.0, "x": 0.0}}
    # the account's position is one per symbol: both strategies' fills
    positions = broker.positions(store).set_index("symbol")["qty"].to_dict()
    assert positions == {"KO": -15.0, "PEP": 12.0}
