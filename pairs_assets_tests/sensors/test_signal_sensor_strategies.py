"""The signal sensor per strategy (issue 19 items 2 and 6): a run per enabled (strategy, sector), the
enabled strategies and their rule settings read at every tick from an injected ``enabled()`` (no
rebuild of the sensor), recorded in the run's config and tags."""

import json

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.errors import PairsError
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from pairs_assets_tests.sensors.test_signal_sensor import OPEN, SECTORS, instance, materialize_config, store  # noqa: F401
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, orders_table
from sensors.signal_sensor import build_signal_sensor, rule_settings, trading_config_key

DISTANCE_RULE = {"on_drop": "exit", "max_holding": 0}


@dg.asset(name="trading_config", key_prefix=["distance"], partitions_def=EMBEDDED_DAILY, group_name="test_stand_in")
def distance_trading_config(context: dg.AssetExecutionContext, store: MarketDataStore) -> dg.MaterializeResult:
    """The distance strategy's stand-in config asset: the same document, stored as distance's."""
    store.write_trading_config(setup.CONFIGS[str(context.partition_key)].document(), path="d", strategy="distance")
    return dg.MaterializeResult()


def both_configs(store: MarketDataStore, instance) -> None:
    materialize_config(store, instance)
    result = dg.materialize(
        [distance_trading_config], partition_key=setup.PARTITION, instance=instance, resources={"store": store}
    )
    assert result.success


def bar(store: MarketDataStore, ts: str, symbol: str = "KO", close: float = 62.0) -> None:
    store.upsert_bars(pd.DataFrame([setup.live_bar(symbol, ts, close)]), context="live")


class Registry:
    """What the strategies file says now (a test edits it between ticks)."""

    def __init__(self, enabled, fingerprint: str | None = "fp-1") -> None:
        self.enabled, self.fingerprint, self.broken = list(enabled), fingerprint, None

    def read(self):
        if self.broken:
            raise PairsError(self.broken)
        return self.enabled


def sensor_for(registry: Registry):
    return build_signal_sensor(
        sectors=SECTORS,
        replay=True,
        clock=lambda: OPEN,
        enabled=registry.read,
        fingerprint=lambda: registry.fingerprint,
    )


def run_tick(sensor, store: MarketDataStore, instance, cursor: str | None = None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": store}))


def by_strategy(result) -> dict[str, dg.RunRequest]:
    return {request.tags["pairs/strategy"]: request for request in result.run_requests}


def test_a_run_per_enabled_strategy_and_a_change_of_the_file_needs_no_new_sensor(store, instance):
    both_configs(store, instance)
    registry = Registry([("garch_gru", {}), ("distance", DISTANCE_RULE)])
    sensor = sensor_for(registry)  # built once: every tick below reads the registry afresh
    bar(store, "2022-12-29T15:00:00Z")
    first = run_tick(sensor, store, instance)
    requests = by_strategy(first)
    assert sorted(requests) == ["distance", "garch_gru"]
    primary, distance = requests["garch_gru"], requests["distance"]
    # the primary strategy's run is as before strategies existed (run key, config), tagged with its name
    assert primary.run_key == "signals:consumer:2022-12-28:20221229T150000000000"
    assert primary.run_config["ops"]["trading_signals"]["config"] == {
        "bar_cutoff": "2022-12-29T15:00:00+00:00",
        "replay": True,
    }
    assert distance.run_key == "signals:distance:consumer:2022-12-28:20221229T150000000000"
    assert distance.partition_key == "2022-12-28|consumer"
    assert distance.run_config["ops"]["trading_signals"]["config"] == {
        "bar_cutoff": "2022-12-29T15:00:00+00:00",
        "replay": True,
        "strategy": "distance",
        "on_drop": "exit",
        "max_holding": 0,
    }
    assert distance.tags["pairs/strategy_rule"] == json.dumps({"max_holding": 0, "on_drop": "exit"})
    assert distance.tags["pairs/strategies_fingerprint"] == "fp-1" == primary.tags["pairs/strategies_fingerprint"]
    assert json.loads(first.cursor) == {
        "consumer": "2022-12-29T15:00:00+00:00",
        "distance/consumer": "2022-12-29T15:00:00+00:00",
    }

    registry.enabled = [("garch_gru", {})]  # distance disabled in the file
    registry.fingerprint = "fp-2"
    bar(store, "2022-12-29T15:05:00Z", "PEP", 180.0)
    second = run_tick(sensor, store, instance, cursor=first.cursor)
    assert sorted(by_strategy(second)) == ["garch_gru"]  # a disabled strategy's sector gets no run
    assert second.run_requests[0].tags["pairs/strategies_fingerprint"] == "fp-2"

    registry.enabled = [("garch_gru", {}), ("distance", {"on_drop": "keep", "max_holding": 5})]  # re-tuned
    registry.fingerprint = "fp-3"
    third = run_tick(sensor, store, instance, cursor=second.cursor)
    (request,) = third.run_requests  # the primary saw the 15:05 bar already; distance had not
    assert request.tags["pairs/strategy"] == "distance"
    assert request.run_key == "signals:distance:consumer:2022-12-28:20221229T150500000000"
    config = request.run_config["ops"]["trading_signals"]["config"]
    assert (config["on_drop"], config["max_holding"]) == ("keep", 5)
    assert request.tags["pairs/strategies_fingerprint"] == "fp-3"


def test_a_strategy_without_its_config_materialized_is_skipped_naming_its_asset(store, instance):
    materialize_config(store, instance)
    store.write_trading_config(setup.CONFIGS[setup.PARTITION].document(), path="d", strategy="distance")
    bar(store, "2022-12-29T15:00:00Z")
    result = run_tick(sensor_for(Registry([("garch_gru", {}), ("distance", {})])), store, instance)
    assert sorted(by_strategy(result)) == ["garch_gru"]
    assert trading_config_key("distance") == dg.AssetKey(["distance", "trading_config"])


def test_bad_rule_settings_skip_that_strategy_only_and_an_unreadable_file_skips_the_tick(store, instance):
    both_configs(store, instance)
    bar(store, "2022-12-29T15:00:00Z")
    registry = Registry([("garch_gru", {}), ("distance", {"on_drop": "sometimes"})])
    sensor = sensor_for(registry)
    result = run_tick(sensor, store, instance)
    assert sorted(by_strategy(result)) == ["garch_gru"]
    registry.enabled = [("distance", {"stop_z": 4.0})]
    skipped = run_tick(sensor, store, instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "distance/*: strategy distance: rule setting 'stop_z' is not one of the signal job's" in skipped.skip_message
    registry.broken = "strategies.yaml: strategy 'distance': unknown class"
    unreadable = run_tick(sensor, store, instance)
    assert isinstance(unreadable, dg.SkipReason)
    assert unreadable.skip_message == "strategies unreadable: strategies.yaml: strategy 'distance': unknown class"


def test_rule_settings_are_checked_against_the_signal_job(store):
    assert rule_settings("distance", {"on_drop": "exit", "max_holding": 0}) == {"max_holding": 0, "on_drop": "exit"}
    with pytest.raises(PairsError, match=r"^strategy distance: rule setting on_drop: .*on_drop must be one of"):
        rule_settings("distance", {"on_drop": "sometimes"})
    with pytest.raises(PairsError, match=r"^strategy distance: rule setting max_holding: "):
        rule_settings("distance", {"max_holding": -1})


def test_a_strategy_run_the_sensor_requested_executes_under_its_name(store, instance):
    both_configs(store, instance)
    config = setup.CONFIGS[setup.PARTITION]
    pep = 181.0
    store.upsert_bars(
        pd.DataFrame(
            [
                setup.live_bar("PEP", "2022-12-29T15:00:00Z", pep),
                setup.live_bar("KO", "2022-12-29T15:00:00Z", setup.price_for_z(config.pairs[0], pep, -2.4)),
            ]
        ),
        context="live",
    )
    signal_job = dg.define_asset_job("signal_job", selection=["trading_signals"], partitions_def=EMBEDDED_DAILY)
    defs = dg.Definitions(
        assets=[setup.stand_in_trading_config, distance_trading_config, trading_signals],
        jobs=[signal_job],
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": StrategySettings.preset("seed"),
            "model_registry": setup.TinyModels(),
            "broker": BrokerResource(),
        },
    )
    result = run_tick(sensor_for(Registry([("distance", DISTANCE_RULE)])), store, instance)
    (request,) = result.run_requests
    run = defs.get_job_def("signal_job").execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance, tags=request.tags
    )
    assert run.success
    tags = instance.get_run_by_id(run.run_id).tags
    assert tags["pairs/strategy"] == "distance" and tags["pairs/strategy_rule"] == request.tags["pairs/strategy_rule"]
    orders = store.read_table(orders_table)
    assert not orders.empty and set(orders["strategy"]) == {"distance"}
    assert all(json.loads(r)["on_drop"] == "exit" for r in orders["request"])
