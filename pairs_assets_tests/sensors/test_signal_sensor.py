"""The 5-minute signal sensor: ticks against a real test instance with real materializations."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, trading_signals_table
from sensors.signal_sensor import MINIMUM_INTERVAL_SECONDS, build_signal_sensor

OPEN = pd.Timestamp("2022-12-29T15:30:00Z")  # 10:30 in New York, the effective session
CLOSED = pd.Timestamp("2022-12-29T23:00:00Z")
NEXT_DAY_OPEN = pd.Timestamp("2022-12-30T15:30:00Z")
SECTORS = ["consumer", "energy", "financial", "healthcare", "industrial", "technology"]


def tick(
    store: MarketDataStore, instance, *, replay: bool | None = True, now: pd.Timestamp = OPEN, cursor: str | None = None
):
    sensor = build_signal_sensor(sectors=SECTORS, replay=replay, clock=lambda: now)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"store": store})
    return sensor(context)


@pytest.fixture()
def store(sqlite_url) -> MarketDataStore:
    return MarketDataStore(database_url=sqlite_url)


@pytest.fixture()
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def materialize_config(store: MarketDataStore, instance) -> TradingConfig:
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    config = setup.build_config(bars)
    setup.CONFIGS[setup.PARTITION] = config
    result = dg.materialize(
        [setup.stand_in_trading_config], partition_key=setup.PARTITION, instance=instance, resources={"store": store}
    )
    assert result.success
    return config


def test_the_sensor_is_a_five_minute_sensor_on_the_signal_job():
    sensor = build_signal_sensor(sectors=SECTORS)
    assert sensor.minimum_interval_seconds == MINIMUM_INTERVAL_SECONDS == 300
    assert sensor.job_name == "signal_job"


def test_no_trading_config_skips_with_a_reason(store, instance):
    result = tick(store, instance)
    assert isinstance(result, dg.SkipReason)
    assert "consumer: no trading config in the store" in result.skip_message
    assert "technology: no trading config" in result.skip_message


def test_a_config_in_the_store_but_not_materialized_is_skipped(store, instance):
    bars = setup.load_history(store, ["KO", "PEP"], sessions=70)
    store.write_trading_config(setup.build_config(bars, pairs=[("KO", "PEP")]).document(), path="elsewhere")
    result = tick(store, instance)
    assert isinstance(result, dg.SkipReason)
    assert (
        "trading_config 2022-12-28|consumer is in the store but not materialized in this instance"
        in result.skip_message
    )


def test_a_config_of_an_unknown_schema_version_is_skipped_naming_it(store, instance):
    config = materialize_config(store, instance)
    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0)]), context="live")
    assert len(tick(store, instance).run_requests) == 1
    document = config.document()
    document["schema_version"] = 2
    store.write_trading_config(document, path="test")
    result = tick(store, instance)
    assert isinstance(result, dg.SkipReason)  # a run would fail on it: no run is requested
    assert (
        "consumer: trading config 2022-12-28|consumer: unknown schema_version 2; this version of pairs_assets reads 1"
        in result.skip_message
    )
    document = config.document()
    del document["pairs"][0]["y"]
    store.write_trading_config(document, path="test")
    malformed = tick(store, instance)
    assert isinstance(malformed, dg.SkipReason)
    assert (
        "consumer: trading config 2022-12-28|consumer: field pairs[0] (KO-PEP).y: Field required"
        in malformed.skip_message
    )


def test_new_bars_request_one_run_per_sector_once(store, instance):
    materialize_config(store, instance)
    quiet = tick(store, instance)
    assert isinstance(quiet, dg.SkipReason) and "consumer: no new bars of KO, PEP, PG, WMT" in quiet.skip_message

    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0)]), context="live")
    first = tick(store, instance)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.partition_key == "2022-12-28|consumer"
    assert request.run_key == "signals:consumer:2022-12-28:20221229T150000000000"
    # replay mode (tick's default here) travels in the run config: the run's process needs no PAIRS_SIGNAL_REPLAY
    assert request.run_config == {
        "ops": {"trading_signals": {"config": {"bar_cutoff": "2022-12-29T15:00:00+00:00", "replay": True}}}
    }
    assert request.tags["pairs/replay"] == "true"
    assert json.loads(first.cursor) == {"consumer": "2022-12-29T15:00:00+00:00"}

    same = tick(store, instance, cursor=first.cursor)
    assert isinstance(same, dg.SkipReason) and "no new bars" in same.skip_message

    store.upsert_bars(pd.DataFrame([setup.live_bar("PEP", "2022-12-29T15:05:00Z", 180.0)]), context="live")
    second = tick(store, instance, cursor=first.cursor)
    assert second.run_requests[0].run_key == "signals:consumer:2022-12-28:20221229T150500000000"


def test_market_hours_outside_replay(store, instance, monkeypatch):
    materialize_config(store, instance)
    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0)]), context="live")
    assert len(tick(store, instance, replay=False, now=OPEN).run_requests) == 1
    closed = tick(store, instance, replay=False, now=CLOSED)
    assert isinstance(closed, dg.SkipReason) and "NYSE is closed" in closed.skip_message
    stale = tick(store, instance, replay=False, now=NEXT_DAY_OPEN)
    assert "latest trading config is for session 2022-12-29, not today's session 2022-12-30" in stale.skip_message
    monkeypatch.setenv("PAIRS_SIGNAL_REPLAY", "1")  # replay mode from the environment: hours ignored
    assert len(tick(store, instance, replay=None, now=CLOSED).run_requests) == 1
    monkeypatch.setenv("PAIRS_SIGNAL_REPLAY", "0")
    assert isinstance(tick(store, instance, replay=None, now=CLOSED), dg.SkipReason)


def test_replayed_bars_trigger_no_run_outside_replay_mode(store, instance, monkeypatch):
    """A recycler in loop mode streams re-stamped bars during market hours: replay off → no run, a reason."""
    monkeypatch.delenv("PAIRS_LIVE_SOURCE", raising=False)
    materialize_config(store, instance)
    store.upsert_bars(
        pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0, source="recycler:iex")]), context="live"
    )
    skipped = tick(store, instance, replay=False, now=OPEN)
    assert isinstance(skipped, dg.SkipReason)
    assert (
        "consumer: no new bars of KO, PEP, PG, WMT from the live source 'alpaca:iex-stream' since 2022-12-28T21:00:00+00:00 "
        "(bars of other sources up to 2022-12-29T15:00:00+00:00 ignored: replay mode is off; "
        "set PAIRS_SIGNAL_REPLAY=1 for the daemon to trade on replayed bars)"
    ) in skipped.skip_message
    replayed = tick(store, instance, replay=True, now=OPEN)
    assert replayed.run_requests[0].run_config["ops"]["trading_signals"]["config"]["replay"] is True
    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:01:00Z", 62.0)]), context="live")  # a live bar
    live = tick(store, instance, replay=False, now=OPEN).run_requests[0]
    assert live.run_config["ops"]["trading_signals"]["config"] == {
        "bar_cutoff": "2022-12-29T15:01:00+00:00",
        "replay": False,
        "live_source": "alpaca:iex-stream",
    }
    assert live.tags["pairs/replay"] == "false"


def test_a_requested_run_executes_the_signal_job(store, instance):
    """Sensor → RunRequest → signal_job (as jobs.py defines it) on the same instance."""
    config = materialize_config(store, instance)
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
        assets=[setup.stand_in_trading_config, trading_signals],
        jobs=[signal_job],
        sensors=[build_signal_sensor(sectors=SECTORS, replay=True, clock=lambda: OPEN)],
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": StrategySettings.preset("seed"),
            "model_registry": setup.TinyModels(),
            "broker": BrokerResource(),
        },
    )
    dg.Definitions.validate_loadable(defs)
    sensor = defs.get_sensor_def("signal_sensor")
    result = sensor(dg.build_sensor_context(instance=instance, resources={"store": store}, definitions=defs))
    (request,) = result.run_requests
    run = defs.get_job_def("signal_job").execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance, tags=request.tags
    )
    assert run.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows.loc["KO-PEP", "action"] == "long_spread" and rows.loc["KO-PEP", "zscore"] == pytest.approx(
        -2.4, abs=1e-6
    )
    assert "no_bar_after_as_of" in rows.loc["PG-WMT", "flags"]
    assert instance.get_latest_materialization_event(dg.AssetKey("trading_signals")) is not None


# --- an unreadable trading config skips its sector only (issue 21 item 5) -------------------------

CONFIG_FILE = "/pairs-home/outputs/trading_config/2022-12-28/consumer.json"


def corrupt_stored_config(store: MarketDataStore, sector: str, text: str) -> None:
    """Overwrite the sector's stored document with ``text`` (what a truncated or hand-edited file gives)."""
    import sqlalchemy as sa

    from resources.market_data import trading_configs_table

    with store.engine.begin() as conn:
        conn.execute(
            sa.update(trading_configs_table)
            .where(trading_configs_table.c.sector == sector)
            .values(document=text, path=CONFIG_FILE)
        )


def bad_documents(config: TradingConfig) -> dict[str, str]:
    text = json.dumps(config.document(), sort_keys=True)
    return {"truncated": text[: len(text) // 2], "empty": "", "array": f"[{text}]"}


@pytest.mark.parametrize(
    "kind, what",
    [
        ("truncated", "not valid JSON"),
        ("empty", "not valid JSON"),
        ("array", "a trading config is a JSON object, got list"),
    ],
)
def test_an_unreadable_config_skips_only_its_sector(store, instance, kind, what):
    from pairs_assets_tests import trading_configs as configs
    from sensors.signal_sensor import evaluate_tick

    config = materialize_config(store, instance)
    other = "2022-12-28|technology"  # a second sector, readable: it still gets its run
    setup.CONFIGS[other] = configs.trading_config(
        list(config.pairs), as_of=setup.AS_OF, effective=setup.EFFECTIVE, sector="technology"
    )
    assert dg.materialize(
        [setup.stand_in_trading_config], partition_key=other, instance=instance, resources={"store": store}
    ).success
    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0)]), context="live")
    corrupt_stored_config(store, "consumer", bad_documents(config)[kind])

    result = tick(store, instance)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == [other]
    assert set(json.loads(result.cursor)) == {"technology"}  # the bad sector's cursor does not move

    decided = evaluate_tick(store=store, instance=instance, cursor={}, now=OPEN, replay=True, sectors=SECTORS)
    reason = decided.skipped["consumer"]
    assert reason.startswith("trading config 2022-12-28|consumer: ")
    assert what in reason and f"(file {CONFIG_FILE})" in reason and "\n" not in reason


def test_a_held_pair_missing_from_an_empty_config_still_triggers_its_run(store, instance):
    """A sector whose latest config selects no pair but which still holds one: its bars must reach
    the signal job (on_drop, max_holding and stops manage the held pair)."""
    from pairs_assets.assets.trading_signals import state_row
    from resources.market_data import pair_states_table

    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    listed = setup.build_config(bars)
    setup.CONFIGS[setup.PARTITION] = setup.build_config(bars, pairs=[])
    assert setup.CONFIGS[setup.PARTITION].pairs == []
    assert dg.materialize(
        [setup.stand_in_trading_config], partition_key=setup.PARTITION, instance=instance, resources={"store": store}
    ).success
    store.upsert_bars(pd.DataFrame([setup.live_bar("KO", "2022-12-29T15:00:00Z", 62.0)]), context="live")
    nothing_held = tick(store, instance)
    assert isinstance(nothing_held, dg.SkipReason)
    assert "consumer: trading config 2022-12-28|consumer selects no pairs and none is held" in nothing_held.skip_message

    held = setup.held_state(listed)
    store.upsert_rows(pair_states_table, [state_row(held, sector="consumer", as_of="2022-12-27", run_id="earlier")])
    result = tick(store, instance)
    assert isinstance(result, dg.SensorResult) and [r.partition_key for r in result.run_requests] == [
        "2022-12-28|consumer"
    ]
