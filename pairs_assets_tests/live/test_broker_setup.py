"""A misconfigured broker is refused when a run sets it up — before any signal is computed or written."""

from __future__ import annotations

import dagster as dg

from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from pairs_assets_tests.live.test_trading_signals_asset import resources, world  # noqa: F401  (fixture)
from resources.broker import BrokerError, BrokerResource
from resources.market_data import orders_table, trading_signals_table


def _signals_run(instance, store, broker: BrokerResource) -> dg.ExecuteInProcessResult:
    # cutoff before the live bars: the signals come from the as-of close, the same bars every time
    run_config = {"ops": {"trading_signals": {"config": {"bar_cutoff": "2022-12-29T14:00:00Z"}}}}
    return dg.materialize(
        [setup.stand_in_trading_config, trading_signals],
        selection=["trading_signals"],
        partition_key=setup.PARTITION,
        instance=instance,
        resources={**resources(store), "broker": broker},
        run_config=run_config,
        raise_on_error=False,
    )


def _setup_failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type_value in ("RESOURCE_INIT_FAILURE", "STEP_FAILURE")]
    assert failures, "the run did not fail"
    assert failures[0].event_type_value == "RESOURCE_INIT_FAILURE", [e.event_type_value for e in failures]
    error = failures[0].event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.message


def test_alpaca_live_without_the_switch_is_refused_before_any_work(world, monkeypatch):
    store, instance, _ = world
    monkeypatch.delenv("PAIRS_ALLOW_LIVE_TRADING", raising=False)
    live = BrokerResource(mode="alpaca-live", api_key="AK", secret_key="SK", url_override="http://127.0.0.1:9")
    result = _signals_run(instance, store, live)
    assert not result.success
    message = _setup_failure(result)
    assert BrokerError.__name__ in message and "PAIRS_ALLOW_LIVE_TRADING=yes" in message
    assert store.read_table(trading_signals_table).empty  # nothing computed, nothing written
    assert store.read_table(orders_table).empty
    assert not instance.get_latest_materialization_event(dg.AssetKey("trading_signals"))


def test_alpaca_paper_without_keys_is_refused_at_setup(world):
    store, instance, _ = world
    result = _signals_run(instance, store, BrokerResource(mode="alpaca-paper"))
    assert "alpaca-paper needs ALPACA_API_KEY and ALPACA_SECRET_KEY" in _setup_failure(result)
    assert store.read_table(trading_signals_table).empty


def test_dry_run_is_set_up_and_runs(world):
    store, instance, _ = world
    assert _signals_run(instance, store, BrokerResource()).success
    assert not store.read_table(trading_signals_table).empty


def test_a_step_that_does_not_use_the_broker_is_not_refused(monkeypatch):
    """Only steps that need the broker set it up: the daily graph runs with alpaca-live configured."""
    monkeypatch.delenv("PAIRS_ALLOW_LIVE_TRADING", raising=False)

    @dg.asset
    def unrelated() -> int:
        return 1

    live = BrokerResource(mode="alpaca-live", api_key="AK", secret_key="SK")
    with dg.instance_for_test() as instance:
        assert dg.materialize([unrelated], instance=instance, resources={"broker": live}).success


def test_the_switch_lets_alpaca_live_set_up(monkeypatch):
    """With the switch the resource sets up (the endpoint is contacted only when there is an order)."""
    monkeypatch.setenv("PAIRS_ALLOW_LIVE_TRADING", "yes")
    live = BrokerResource(mode="alpaca-live", api_key="AK", secret_key="SK", url_override="http://127.0.0.1:9")
    with dg.build_resources({"broker": live}) as built:
        assert built.broker.mode == "alpaca-live"
