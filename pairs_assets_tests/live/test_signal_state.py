"""The signal job with the one trading rule's state (quant.rule): no re-entry after a stop, drops,
max holding, point in time for past partitions, and bad state rows — dg.materialize on a real SQLite store."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.assets.trading_signals import read_pair_states, state_row
from pairs_assets.quant import rule
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, orders_table, pair_states_table, trading_signals_table


def materialize(instance, store, cutoff: str | None = None, partition: str = setup.PARTITION, **config):
    return dg.materialize(
        [setup.stand_in_trading_config, trading_signals],
        selection=["trading_signals"],
        partition_key=partition,
        instance=instance,
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": StrategySettings.preset("seed"),
            "model_registry": setup.TinyModels(),
            "broker": BrokerResource(),
        },
        run_config={"ops": {"trading_signals": {"config": {"bar_cutoff": cutoff, **config}}}},
    )


@pytest.fixture()
def world(sqlite_url):
    """160 sessions of real consumer closes to 2022-12-28, KO-PEP and PG-WMT in the config (ungated)."""
    store = MarketDataStore(database_url=sqlite_url)
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    config = setup.build_config(bars, gated=False)
    setup.CONFIGS[setup.PARTITION] = config
    with dg.instance_for_test() as instance:
        dg.materialize(
            [setup.stand_in_trading_config],
            partition_key=setup.PARTITION,
            instance=instance,
            resources={"store": store},
        )
        yield store, instance, config, bars


PEP = 181.0


def ko_bar(store, config, ts: str, z: float) -> None:
    """A bar of both KO-PEP legs at ``ts`` that puts its spread at ``z``."""
    ko_pep = config.pairs[0]
    store.upsert_bars(
        pd.DataFrame(
            [
                setup.live_bar("PEP", ts, PEP),
                setup.live_bar("KO", ts, setup.price_for_z(ko_pep, PEP, z)),
            ]
        ),
        context="live",
    )


def ko_signal(store, ts: str) -> pd.Series:
    rows = store.read_table(trading_signals_table)
    rows = rows[
        (rows["pair_id"] == "KO-PEP") & (pd.to_datetime(rows["bar_timestamp"]) == pd.Timestamp(ts).tz_localize(None))
    ]
    assert len(rows) == 1, f"no KO-PEP signal at {ts}"
    return rows.iloc[0]


def test_no_reentry_on_the_next_bar_after_a_stop(world):
    """Issue 17: the stateless job re-entered a stopped pair as soon as |z| was back in the band."""
    store, instance, config, _ = world
    path = [
        ("15:00", 2.6, "short_spread"),
        ("15:05", 3.7, "stop"),
        ("15:10", 2.6, "hold"),
        ("15:15", 2.9, "hold"),
        ("15:20", 1.5, "hold"),
        ("15:25", 2.6, "short_spread"),
    ]
    for hhmm, z, action in path:
        ts = f"2022-12-29T{hhmm}:00Z"
        ko_bar(store, config, ts, z)
        assert materialize(instance, store, cutoff=ts).success
        row = ko_signal(store, ts)
        assert row["action"] == action, (hhmm, z, row["action"], row["flags"])
        if hhmm in ("15:10", "15:15"):
            assert "stopped" in row["flags"]
    orders = store.read_table(orders_table)
    assert len(orders[orders["pair_id"] == "KO-PEP"]) == 6  # entry, stop, entry: two legs each
    state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
    assert state.side == -1 and not state.stopped and state.last_bar == pd.Timestamp("2022-12-29T15:25Z")


def test_exit_when_held_and_the_spread_reverts(world):
    store, instance, config, _ = world
    ko_bar(store, config, "2022-12-29T15:00:00Z", -2.6)  # a jump down that also drifts the legs' correlation
    assert materialize(instance, store, cutoff="2022-12-29T15:00:00Z").success
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == 0  # entry not traded on drift: still flat
    ko_bar(store, config, "2022-12-29T15:01:00Z", -2.6)
    assert materialize(instance, store, cutoff="2022-12-29T15:01:00Z", trade_on_drift=True).success
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == 1
    ko_bar(store, config, "2022-12-29T15:05:00Z", 0.3)
    assert materialize(instance, store, cutoff="2022-12-29T15:05:00Z").success
    row = ko_signal(store, "2022-12-29T15:05:00Z")
    assert row["action"] == "exit" and row["position_y"] == 0.0
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == 0


_held_state = setup.held_state


def _write_state(store, state: rule.PairState, **raw) -> None:
    row = state_row(state, sector=setup.SECTOR, as_of="2022-12-27", run_id="earlier")
    row.update(raw)
    store.upsert_rows(pair_states_table, [row])


def test_max_holding_counts_exchange_sessions(world):
    store, instance, config, _ = world
    # entered 2022-12-20: 2022-12-29 is the 6th session after it (12-26 is a holiday)
    _write_state(store, _held_state(config))
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    assert materialize(instance, store, cutoff="2022-12-29T15:00:00Z", max_holding=7).success
    assert ko_signal(store, "2022-12-29T15:00:00Z")["action"] == "hold"
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].sessions_held == 6
    ko_bar(store, config, "2022-12-29T15:05:00Z", 1.5)
    assert materialize(instance, store, cutoff="2022-12-29T15:05:00Z", max_holding=6).success
    row = ko_signal(store, "2022-12-29T15:05:00Z")
    assert row["action"] == "exit" and "max_holding" in row["flags"]


@pytest.mark.parametrize("on_drop, action", [("keep", "hold"), ("exit", "exit")])
def test_a_held_pair_dropped_from_the_config_follows_on_drop(world, on_drop, action):
    store, instance, config, _ = world
    _write_state(store, _held_state(config))
    store.write_trading_config(config.model_copy(update={"pairs": [config.pairs[1]]}).document(), path="test")
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    assert materialize(instance, store, cutoff="2022-12-29T15:00:00Z", on_drop=on_drop).success
    row = ko_signal(store, "2022-12-29T15:00:00Z")
    assert row["action"] == action and "not_in_config" in row["flags"]
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == (-1 if on_drop == "keep" else 0)
    if on_drop == "keep":  # kept with the last config's terms: it exits when its spread reverts
        ko_bar(store, config, "2022-12-29T15:05:00Z", 0.2)
        assert materialize(instance, store, cutoff="2022-12-29T15:05:00Z", on_drop=on_drop).success
        assert ko_signal(store, "2022-12-29T15:05:00Z")["action"] == "exit"


def test_a_flipped_ordering_maps_onto_the_held_position(world):
    """Issue 18: held short KO-PEP, the next config lists PEP-KO (the same legs, other ordering): no
    second position on the same bet; KO-PEP is managed with its own terms until it exits, then PEP-KO
    trades as itself."""
    store, instance, config, bars = world
    _write_state(store, _held_state(config))
    pep_ko = setup.pair_entry(bars, "PEP", "KO", gated=False)
    store.write_trading_config(config.model_copy(update={"pairs": [pep_ko, config.pairs[1]]}).document(), path="test")
    ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)  # PEP-KO's own z is about −2.6: an entry, were it a new pair
    assert materialize(instance, store, cutoff="2022-12-29T15:00:00Z").success
    assert ko_signal(store, "2022-12-29T15:00:00Z")["action"] == "hold"
    signals = store.read_table(trading_signals_table)
    assert "PEP-KO" not in set(signals["pair_id"])
    states = read_pair_states(store, setup.SECTOR)
    assert states["KO-PEP"].side == -1 and "PEP-KO" not in states
    orders = store.read_table(orders_table)
    assert orders.empty or not set(orders["pair_id"]) & {"PEP-KO"}
    ko_bar(store, config, "2022-12-29T15:05:00Z", 0.2)  # reverts: KO-PEP exits on its own terms
    assert materialize(instance, store, cutoff="2022-12-29T15:05:00Z").success
    assert ko_signal(store, "2022-12-29T15:05:00Z")["action"] == "exit"
    assert read_pair_states(store, setup.SECTOR)["KO-PEP"].side == 0
    ts = "2022-12-29T15:10:00Z"  # flat now: PEP-KO may enter (long PEP-KO at its own z −2.6)
    store.upsert_bars(
        pd.DataFrame(
            [setup.live_bar("KO", ts, 60.0), setup.live_bar("PEP", ts, setup.price_for_z(pep_ko, 60.0, -2.6))]
        ),
        context="live",
    )
    assert materialize(instance, store, cutoff=ts, trade_on_drift=True).success
    rows = store.read_table(trading_signals_table)
    assert list(rows.loc[rows["pair_id"] == "PEP-KO", "action"]) == ["long_spread"]
    states = read_pair_states(store, setup.SECTOR)
    assert states["PEP-KO"].side == 1
    held = [st for st in rule.align_orderings({}, states)[1].values() if {st.y, st.x} == {"KO", "PEP"}]
    assert [(st.pair_id, st.side) for st in held] == [("PEP-KO", 1)]  # one state per unordered pair


def test_a_past_partition_never_reads_a_later_sessions_bar(sqlite_url):
    """Issue 17: `signal_job` for 2022-12-14|consumer on a store loaded to 2022-12-28 used a 2022-12-27 bar."""
    store = MarketDataStore(database_url=sqlite_url)
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])  # daily bars to 2022-12-28
    partition = "2022-12-14|consumer"
    past = bars[bars["timestamp"] <= pd.Timestamp("2022-12-15", tz="UTC")]
    setup.CONFIGS[partition] = setup.build_config(past, gated=False, as_of="2022-12-14", effective="2022-12-15")
    with dg.instance_for_test() as instance:
        dg.materialize(
            [setup.stand_in_trading_config], partition_key=partition, instance=instance, resources={"store": store}
        )
        # the session's bars here are the daily source's (not the live source): replay mode trades on them
        for cutoff in (None, "2022-12-28T21:00:00Z"):  # now, and an explicit later cutoff
            assert materialize(instance, store, cutoff=cutoff, partition=partition, execute=False, replay=True).success
            stamps = pd.to_datetime(store.read_table(trading_signals_table)["bar_timestamp"])
            # the effective session's (2022-12-15) close bar, never 2022-12-16 … 2022-12-28
            assert (stamps == pd.Timestamp("2022-12-15 21:00:00")).all(), stamps.tolist()
        # a cutoff inside the effective session: only bars at or before it
        with store.engine.begin() as conn:
            conn.execute(pair_states_table.delete())
            conn.execute(trading_signals_table.delete())
        assert materialize(
            instance, store, cutoff="2022-12-15T18:00:00Z", partition=partition, execute=False, replay=True
        ).success
        stamps = pd.to_datetime(store.read_table(trading_signals_table)["bar_timestamp"])
        assert (stamps == pd.Timestamp("2022-12-14 21:00:00")).all()  # no bar yet: the as-of close


# --- bad state rows: a one-line error naming the pair and field, nothing written ------------------


def _fails_writing_nothing(instance, store, match: str) -> None:
    before = store.read_table(pair_states_table)
    with pytest.raises(rule.RuleInputError, match=match) as raised:
        materialize(instance, store, cutoff="2022-12-29T15:00:00Z")
    assert "\n" not in str(raised.value)
    assert store.read_table(trading_signals_table).empty and store.read_table(orders_table).empty
    pd.testing.assert_frame_equal(store.read_table(pair_states_table), before)


def test_a_state_whose_legs_disagree_with_the_config_fails(world):
    store, instance, config, _ = world
    _write_state(store, _held_state(config), x="PG")
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    _fails_writing_nothing(
        instance, store, r"pair KO-PEP: the state's legs \(KO, PG\) disagree with the config's \(KO, PEP\)"
    )


@pytest.mark.parametrize("field, value", [("shares_y", -3.0), ("shares_x", float("nan"))])
def test_a_negative_or_nan_share_count_in_the_state_fails(world, field, value):
    store, instance, config, _ = world
    _write_state(store, _held_state(config))
    with store.engine.begin() as conn:  # NaN straight into the row (the store's upsert writes NaN as NULL)
        conn.execute(pair_states_table.update().values({field: value}))
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    _fails_writing_nothing(instance, store, rf"pair KO-PEP: state {field}=.* must be a share count >= 0")


def test_a_bar_older_than_the_last_applied_fails(world):
    store, instance, config, _ = world
    _write_state(store, _held_state(config, last_bar=pd.Timestamp("2022-12-29T16:00Z")))
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    _fails_writing_nothing(
        instance, store, r"pair KO-PEP: bar 2022-12-29 15:00:00\+00:00 is older than the last one applied"
    )


def test_every_new_bar_is_applied_in_order_and_orders_net_out(world):
    """Bars that arrive between two runs all pass through the rule; the book moves once, to the final state."""
    store, instance, config, _ = world
    for hhmm, z in (("15:00", 2.6), ("15:01", 3.7), ("15:02", 2.6)):  # entry, stop, still stopped
        ko_bar(store, config, f"2022-12-29T{hhmm}:00Z", z)
    assert materialize(instance, store, cutoff="2022-12-29T15:02:00Z").success
    actions = [ko_signal(store, f"2022-12-29T{hhmm}:00Z")["action"] for hhmm in ("15:00", "15:01", "15:02")]
    assert actions == ["short_spread", "stop", "hold"]
    ko_orders = lambda: store.read_table(orders_table).query("pair_id == 'KO-PEP'")  # noqa: E731
    assert ko_orders().empty  # entered and stopped between two runs: nothing to send
    state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
    assert state.side == 0 and state.stopped and state.last_bar == pd.Timestamp("2022-12-29T15:02Z")

    for hhmm, z in (("15:03", 2.6), ("15:04", 1.0), ("15:05", 2.5), ("15:06", 2.3)):  # stopped, re-armed, entry, held
        ko_bar(store, config, f"2022-12-29T{hhmm}:00Z", z)
    assert materialize(instance, store, cutoff="2022-12-29T15:06:00Z").success
    actions = [ko_signal(store, f"2022-12-29T{hhmm}:00Z")["action"] for hhmm in ("15:03", "15:04", "15:05", "15:06")]
    assert actions == ["hold", "hold", "short_spread", "hold"]
    orders = ko_orders().set_index("leg")
    assert len(orders) == 2 and orders.loc["y", "side"] == "sell" and orders.loc["x", "side"] == "buy"
    assert orders.loc["y", "client_order_id"].startswith("pairs-KO-PEP-y-20221229T150600")  # at the last bar's prices
    state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
    assert (
        state.side == -1
        and state.entry_bar == pd.Timestamp("2022-12-29T15:05Z")
        and state.shares_y == orders.loc["y", "qty"]
    )


def test_a_state_that_disagrees_with_the_book_is_reported_not_overwritten(world):
    store, instance, config, _ = world
    _write_state(store, _held_state(config))  # 10 / 12 shares, but no order ever recorded them
    ko_bar(store, config, "2022-12-29T15:00:00Z", 1.5)
    result = materialize(instance, store, cutoff="2022-12-29T15:00:00Z")
    assert result.success
    report = result.asset_materializations_for_node("trading_signals")[0].metadata["state_vs_book"].value
    assert "KO-PEP" in report and "y: state 10 shares, book 0" in report and "x: state 12 shares, book 0" in report
    state = read_pair_states(store, setup.SECTOR)["KO-PEP"]
    assert (state.side, state.shares_y, state.shares_x) == (-1, 10.0, 12.0)  # not overwritten


def test_signal_rows_and_states_are_written_all_or_nothing(sqlite_url):
    import sqlalchemy as sa

    store = MarketDataStore(database_url=sqlite_url)
    signal = {
        "bar_timestamp": pd.Timestamp("2022-12-29 15:00"),
        "sector": "consumer",
        "pair_id": "KO-PEP",
        "as_of_session": "2022-12-28",
        "action": "hold",
    }
    broken_state = {"sector": "consumer", "pair_id": "KO-PEP", "y": "KO", "x": "PEP"}  # no side: NOT NULL fails
    with pytest.raises(sa.exc.IntegrityError):
        store.upsert_tables([(trading_signals_table, [signal]), (pair_states_table, [broken_state])])
    assert store.read_table(trading_signals_table).empty and store.read_table(pair_states_table).empty


def test_a_broker_position_no_held_state_accounts_for_fails_naming_the_symbol(world):
    from pairs_assets.assets.trading_signals import UnheldPositionError
    from resources.market_data import positions_table

    store, instance, config, _ = world
    store.upsert_rows(
        positions_table,
        [
            {
                "broker": "dry-run",
                "symbol": "KO",
                "qty": 30.0,
                "avg_price": 60.0,
                "updated_at": pd.Timestamp("2022-12-28 21:00"),
            }
        ],
    )
    ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)
    with pytest.raises(
        UnheldPositionError,
        match=r"^partition 2022-12-28\|consumer: broker dry-run holds 30 shares of KO but no held pair state names KO",
    ):
        materialize(instance, store, cutoff="2022-12-29T15:00:00Z")
    assert store.read_table(trading_signals_table).empty and store.read_table(pair_states_table).empty
    assert store.read_table(orders_table).empty


def test_a_rerun_of_the_same_bars_changes_nothing_and_sends_no_order_twice(world):
    """Idempotent per bar: the second run of the same bars writes no row, changes no state, sends no order."""
    from resources.market_data import positions_table

    store, instance, config, _ = world
    ko_bar(store, config, "2022-12-29T15:00:00Z", 2.6)  # KO-PEP enters
    first = materialize(instance, store, cutoff="2022-12-29T15:00:00Z")
    assert first.success

    def snapshot():
        return {
            name: store.read_table(table).drop(
                columns=[c for c in ("run_id", "updated_at") if c in store.read_table(table)]
            )
            for name, table in (
                ("signals", trading_signals_table),
                ("states", pair_states_table),
                ("orders", orders_table),
                ("positions", positions_table),
            )
        }

    before = snapshot()
    assert len(before["orders"]) == 4 and before["orders"]["status"].eq("filled").all()
    again = materialize(instance, store, cutoff="2022-12-29T15:00:00Z")
    assert again.success
    meta = again.asset_materializations_for_node("trading_signals")[0].metadata
    assert meta["orders"].value == 0 and meta["signals"].value == 0 and meta["bars_already_applied"].value == 2
    after = snapshot()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    assert set(store.read_table(pair_states_table)["run_id"]) == {first.run_id}  # the states were not rewritten


def test_orders_positions_states_and_signals_are_written_in_one_transaction(sqlite_url):
    """A run's bookkeeping is one upsert_tables call: a failing state row rolls the orders back too."""
    import sqlalchemy as sa

    from pairs_assets.quant.signals import OrderIntent
    from resources.broker import PendingWrites
    from resources.market_data import positions_table

    store = MarketDataStore(database_url=sqlite_url)
    pending = PendingWrites()
    records = BrokerResource().submit(
        store,
        [OrderIntent("KO-PEP", "y", "KO", "sell", 10.0, 60.0, -10.0)],
        pd.Timestamp("2022-12-29T15:00Z"),
        pending=pending,
    )
    assert [r["status"] for r in records] == ["filled"]
    assert store.read_table(orders_table).empty and store.read_table(positions_table).empty  # nothing written yet
    broken_state = {"sector": "consumer", "pair_id": "KO-PEP", "y": "KO", "x": "PEP"}  # no side: NOT NULL fails
    with pytest.raises(sa.exc.IntegrityError):
        store.upsert_tables([(pair_states_table, [broken_state]), *pending.batches()])
    assert store.read_table(orders_table).empty and store.read_table(positions_table).empty
    store.upsert_tables(pending.batches())
    assert store.read_table(positions_table).set_index("symbol").loc["KO", "qty"] == -10.0
