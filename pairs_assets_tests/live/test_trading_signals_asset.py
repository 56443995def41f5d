"""The trading_signals asset: dg.materialize on a test instance with a real SQLite store and real closes."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.assets.trading_signals import MissingTradingConfigError
from pairs_assets.quant.config_model import TradingConfigError
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.live import signal_setup as setup
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, orders_table, pair_states_table, trading_signals_table


def resources(store: MarketDataStore, registry=None) -> dict:
    return {
        "store": store,
        "bar_source": EmbeddedBarSource(),
        "strategy": StrategySettings.preset("seed"),
        "model_registry": registry if registry is not None else setup.TinyModels(),
        "broker": BrokerResource(),
    }


def materialize(instance, store, registry=None, cutoff: str | None = None, **config) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"trading_signals": {"config": {"bar_cutoff": cutoff, **config}}}}
    return dg.materialize(
        [setup.stand_in_trading_config, trading_signals],
        selection=["trading_signals"],
        partition_key=setup.PARTITION,
        instance=instance,
        resources=resources(store, registry),
        run_config=run_config,
    )


@pytest.fixture()
def world(sqlite_url):
    """A store with 160 sessions of real consumer closes, the config materialized, live bars after the close."""
    store = MarketDataStore(database_url=sqlite_url)
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    config = setup.build_config(bars)
    setup.CONFIGS[setup.PARTITION] = config
    with dg.instance_for_test() as instance:
        dg.materialize(
            [setup.stand_in_trading_config],
            partition_key=setup.PARTITION,
            instance=instance,
            resources={"store": store},
        )
        ko_pep, pg_wmt = config.pairs
        pep, wmt = 181.0, 145.0
        store.upsert_bars(
            pd.DataFrame(
                [
                    setup.live_bar("PEP", "2022-12-29T15:00:00Z", pep),
                    setup.live_bar(
                        "KO", "2022-12-29T15:00:00Z", setup.price_for_z(ko_pep, pep, 2.6)
                    ),  # short the spread
                    setup.live_bar("WMT", "2022-12-29T15:01:00Z", wmt),
                    setup.live_bar("PG", "2022-12-29T15:00:00Z", setup.price_for_z(pg_wmt, wmt, 0.1)),  # near the mean
                ]
            ),
            context="live",
        )
        yield store, instance, config


def test_signals_rows_orders_and_metadata(world):
    store, instance, config = world
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    every = store.read_table(trading_signals_table).sort_values(["pair_id", "bar_timestamp"])
    # each pair's bars in order: KO-PEP one (15:00), PG-WMT two (PG at 15:00 with WMT's as-of close, WMT at 15:01)
    assert every["pair_id"].tolist() == ["KO-PEP", "PG-WMT", "PG-WMT"]
    assert "one_leg_stale" in every["flags"].iloc[1] and "one_leg_stale" not in every["flags"].iloc[2]
    rows = every.drop_duplicates("pair_id", keep="last").set_index("pair_id")
    ko = rows.loc["KO-PEP"]
    assert ko["action"] == "short_spread" and ko["zscore"] == pytest.approx(2.6, abs=1e-6)
    assert 0.0 <= ko["gru_probability"] <= 1.0 and ko["confidence"] == pytest.approx(ko["gru_probability"])
    assert ko["position_y"] < 0 < ko["position_x"] and ko["as_of_session"] == "2022-12-28"
    hedge = config.pairs[0].hedge_ratio
    from pairs_assets.quant.sizing import pair_sizing
    from pairs_assets_tests.strategies import SEED as S

    # volatility targeting within the limits, on the config's GARCH σ forecast, two pairs in the config
    sizing = pair_sizing(
        sigma_forecast=config.pairs[0].garch.sigma_forecast,
        hedge_ratio=hedge,
        target_daily_vol=S.target_daily_vol,
        max_position=S.max_position,
        max_portfolio_risk=S.max_portfolio_risk,
        n_pairs=2,
    )
    assert abs(ko["position_y"]) == pytest.approx(sizing["y_fraction"])
    assert ko["position_x"] == pytest.approx(-ko["position_y"] * abs(hedge))
    assert pd.Timestamp(ko["bar_timestamp"]) == pd.Timestamp("2022-12-29 15:00:00")
    pg = rows.loc["PG-WMT"]
    # flat near the mean: nothing to exit (the trading rule keeps state; quant.rule)
    assert pg["action"] == "hold" and pg["zscore"] == pytest.approx(0.1, abs=1e-6)
    assert pd.Timestamp(pg["bar_timestamp"]) == pd.Timestamp("2022-12-29 15:01:00")  # the later leg's bar
    orders = store.read_table(orders_table).set_index("leg")
    assert (
        set(orders["pair_id"]) == {"KO-PEP"} and orders.loc["y", "side"] == "sell" and orders.loc["x", "side"] == "buy"
    )
    assert orders.loc["y", "client_order_id"].startswith("pairs-KO-PEP-y-20221229T150000")
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    assert (
        metadata["signals"].value == 3
        and metadata["pairs_signalled"].value == 2
        and metadata["orders"].value == 2
        and metadata["broker"].value == "dry-run"
    )
    assert metadata["actions"].value["short_spread"] == 1 and metadata["gru_gated"].value == 2
    assert "KO-PEP" in metadata["signals_table"].value

    states = store.read_table(pair_states_table).set_index("pair_id")
    assert states.loc["KO-PEP", "side"] == -1 and states.loc["PG-WMT", "side"] == 0
    assert (
        states.loc["KO-PEP", "shares_y"] == orders.loc["y", "qty"]
        and states.loc["KO-PEP", "shares_x"] == orders.loc["x", "qty"]
    )
    assert states.loc["KO-PEP", "entry_session"] == "2022-12-29"

    again = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")  # same bars: nothing changes
    assert again.success
    assert len(store.read_table(trading_signals_table)) == 3 and len(store.read_table(orders_table)) == 2
    assert store.read_table(trading_signals_table).set_index("pair_id").loc["KO-PEP", "action"] == "short_spread"
    assert again.asset_materializations_for_node("trading_signals")[0].metadata["bars_already_applied"].value == 2
    pd.testing.assert_frame_equal(
        store.read_table(pair_states_table).set_index("pair_id").drop(columns="run_id"), states.drop(columns="run_id")
    )


def test_cutoff_before_the_live_bars_uses_the_as_of_close(world):
    store, instance, _ = world
    assert materialize(instance, store, cutoff="2022-12-29T14:00:00Z", execute=False).success
    rows = store.read_table(trading_signals_table)
    assert (rows["flags"].str.contains("no_bar_after_as_of")).all()
    assert (pd.to_datetime(rows["bar_timestamp"]) == pd.Timestamp("2022-12-28 21:00:00")).all()
    assert store.read_table(orders_table).empty


def test_a_model_that_cannot_be_loaded_gives_ungated_flagged_signals(world):
    store, instance, _ = world
    from resources.model_registry import ModelRegistry

    unreachable = ModelRegistry(tracking_uri="http://127.0.0.1:9", probe_timeout_s=1)
    result = materialize(instance, store, registry=unreachable, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows["gru_probability"].isna().all()
    assert "model_unavailable" in rows.loc["KO-PEP", "flags"] and "no_gru_gating" in rows.loc["KO-PEP", "flags"]
    assert rows.loc["KO-PEP", "action"] == "short_spread" and rows.loc["KO-PEP", "confidence"] == 0.5
    failures = result.asset_materializations_for_node("trading_signals")[0].metadata["model_failures"].value
    assert f"{setup.MODEL_NAME}/1" in failures and "unreachable" in failures


def test_gru_veto_and_missing_legs(world, sqlite_url):
    store, instance, _ = world
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    no_closes = setup.pair_entry(bars, "KO", "PEP", gated=False).model_copy(
        update={"pair_id": "HD-BBY", "y": "HD", "x": "BBY"}
    )
    # an untrained model never reaches a threshold of 1.0
    vetoed = setup.build_config(bars, probability_threshold=1.0, extra=[no_closes])
    store.write_trading_config(vetoed.document(), path="test")
    result = materialize(instance, store, registry=setup.TinyModels(missing=[]), cutoff="2022-12-29T15:01:00Z")
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows.loc["KO-PEP", "action"] == "hold" and "gru_veto" in rows.loc["KO-PEP", "flags"]
    assert "HD-BBY" not in rows.index
    skipped = result.asset_materializations_for_node("trading_signals")[0].metadata["skipped_pairs"].value
    assert "HD-BBY" in skipped and "HD, BBY" in skipped


def test_a_config_with_the_gru_gate_off_trades_ungated_without_loading_a_model(world):
    """Issue 8 item 6: the config says whether the GRU gates; off, the veto above does not apply."""
    store, instance, _ = world
    bars = setup.load_history(store, ["KO", "PEP", "PG", "WMT"])
    vetoed = setup.build_config(bars, probability_threshold=1.0)
    ungated = vetoed.model_copy(update={"gru_gate": False})
    store.write_trading_config(ungated.document(), path="test")
    unreachable = setup.TinyModels(missing=[setup.MODEL_NAME])  # loading any model would flag it unavailable
    result = materialize(instance, store, registry=unreachable, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows.loc["KO-PEP", "action"] == "short_spread" and rows["gru_probability"].isna().all()
    assert "gru_gate_off" in rows.loc["KO-PEP", "flags"] and "model_unavailable" not in rows.loc["KO-PEP", "flags"]
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    assert metadata["gru_gated"].value == 0 and metadata["model_failures"].value == "_(none)_"


def test_no_trading_config_for_the_partition_fails_naming_it(sqlite_url):
    store = MarketDataStore(database_url=sqlite_url)
    with dg.instance_for_test() as instance:
        with pytest.raises(MissingTradingConfigError, match="partition 2022-12-28\\|consumer: no trading config"):
            materialize(instance, store)


def _assert_fails_writing_nothing(instance, store, error: str) -> None:
    with pytest.raises(TradingConfigError) as raised:
        materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert str(raised.value).startswith("trading config 2022-12-28|consumer: ")
    assert error in str(raised.value)
    assert store.read_table(trading_signals_table).empty and store.read_table(orders_table).empty
    assert not instance.get_latest_materialization_event(dg.AssetKey("trading_signals"))


@pytest.mark.parametrize("version", [2, 0, "1"])
def test_an_unknown_schema_version_fails_the_run_naming_it(world, version):
    store, instance, config = world
    document = config.document()
    document["schema_version"] = version
    store.write_trading_config(document, path="test")
    _assert_fails_writing_nothing(
        instance, store, f"unknown schema_version {version!r}; this version of pairs_assets reads 1"
    )


def test_a_malformed_field_fails_the_run_naming_pair_and_field(world):
    store, instance, config = world
    document = config.document()
    del document["pairs"][1]["garch"]["omega"]
    store.write_trading_config(document, path="test")
    _assert_fails_writing_nothing(instance, store, "field pairs[1] (PG-WMT).garch.omega: Field required")

    document = config.document()
    document["pairs"][0]["sizing"]["max_position"] = 0.1  # a key the model does not know
    store.write_trading_config(document, path="test")
    _assert_fails_writing_nothing(
        instance, store, "field pairs[0] (KO-PEP).sizing.max_position: Extra inputs are not permitted"
    )


def test_a_pair_with_a_failed_garch_fit_is_skipped_naming_the_field(world):
    store, instance, config = world
    ko_pep, pg_wmt = config.pairs
    failed = ko_pep.model_copy(update={"garch": ko_pep.garch.model_copy(update={"omega": None})})
    store.write_trading_config(config.model_copy(update={"pairs": [failed, pg_wmt]}).document(), path="test")
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    rows = store.read_table(trading_signals_table)
    assert set(rows["pair_id"]) == {"PG-WMT"}  # its two bars (15:00, 15:01)
    skipped = result.asset_materializations_for_node("trading_signals")[0].metadata["skipped_pairs"].value
    assert "KO-PEP" in skipped and "trading config lacks garch.omega (null)" in skipped


@pytest.mark.parametrize(
    "kind, what",
    [
        ("truncated", "not valid JSON"),
        ("empty", "not valid JSON"),
        ("array", "a trading config is a JSON object, got list"),
    ],
)
def test_an_unreadable_config_fails_the_run_in_one_line_naming_partition_and_file(world, kind, what):
    """Issue 21 item 5: not a bare JSONDecodeError or "'list' object has no attribute 'get'"."""
    from pairs_assets_tests.sensors.test_signal_sensor import CONFIG_FILE, bad_documents, corrupt_stored_config

    store, instance, config = world
    corrupt_stored_config(store, setup.SECTOR, bad_documents(config)[kind])
    _assert_fails_writing_nothing(instance, store, what)
    with pytest.raises(TradingConfigError) as raised:
        materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert str(raised.value).endswith(f"(file {CONFIG_FILE})") and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("hedge_ratio", True, "field pairs[0] (KO-PEP).hedge_ratio: a boolean (true) is not a number"),
        ("hedge_ratio", 1e300, "field pairs[0] (KO-PEP).hedge_ratio: hedge_ratio=1e+300 is not plausible"),
        ("spread_std", 1e-300, "field pairs[0] (KO-PEP).spread_std: spread_std=1e-300 is not plausible"),
        ("x", "KO", "field pairs[0] (KO-PEP).x: x is KO, the same symbol as y"),
    ],
    ids=["hedge_ratio-true", "hedge_ratio-1e300", "spread_std-1e-300", "y-equals-x"],
)
def test_a_config_number_that_makes_no_sense_sends_no_signal(world, field, value, error):
    """Issue 21 item 9, through the signal job: each of these stored configs once produced a STOP with
    no flag; now the run fails naming partition, pair and field, and writes no signal and no order."""
    from pairs_assets_tests.sensors.test_signal_sensor import corrupt_stored_config

    store, instance, config = world
    document = config.document()
    document["pairs"][0][field] = value
    corrupt_stored_config(store, setup.SECTOR, json.dumps(document))
    _assert_fails_writing_nothing(instance, store, error)


# --- no order follows a bar failing the jump rule against the last close (issue 21 item 7) --------


def _replayed(store, symbol: str, ts: str, factor: float) -> None:
    """A bar of ``symbol`` at ``factor`` × its as-of close (the recycler re-stamping a 2017 close to now)."""
    last = store.read_bars([symbol], pd.Timestamp("2022-12-28T00:00:00Z"), pd.Timestamp("2022-12-28T23:59:00Z"))
    close = float(last.sort_values("timestamp")["close"].iloc[-1]) * factor
    store.upsert_bars(pd.DataFrame([setup.live_bar(symbol, ts, close)]), context="live")


def test_a_pair_whose_bars_all_fail_the_jump_rule_sends_no_order(world):
    store, instance, config = world
    _replayed(store, "KO", "2022-12-29T15:00:00Z", 0.55)  # replaces the live bars the fixture wrote
    _replayed(store, "PEP", "2022-12-29T15:00:00Z", 1.9)
    # trade_on_drift: the replayed prices' drift flag would not stop the order they decide (before: it was sent)
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z", trade_on_drift=True)
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    ko = rows.loc["KO-PEP"]
    assert ko["action"] == "hold" and "rejected_bar:KO" in ko["flags"] and "rejected_bar:PEP" in ko["flags"]
    orders = store.read_table(orders_table)
    assert "KO-PEP" not in set(orders["pair_id"])  # before: the replayed prices' z decided an order
    states = store.read_table(pair_states_table).set_index("pair_id")
    assert "KO-PEP" not in states.index or states.loc["KO-PEP", "side"] == 0
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    rejected = metadata["rejected_bars"].value
    assert "KO bar 2022-12-29T15:00:00+00:00" in rejected and "jump" in rejected and "vs last close" in rejected
    assert "every new bar rejected by the jump rule" in metadata["not_traded"].value


def test_a_rejected_bar_is_never_applied_the_good_ones_are(world):
    store, instance, config = world
    _replayed(store, "KO", "2022-12-29T15:01:00Z", 0.55)  # after the fixture's good 15:00 bar
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    every = store.read_table(trading_signals_table)
    ko = every[every["pair_id"] == "KO-PEP"]
    assert [pd.Timestamp(t) for t in ko["bar_timestamp"]] == [pd.Timestamp("2022-12-29 15:00:00")]  # not 15:01
    assert ko["action"].iloc[0] == "short_spread" and "rejected_bar:KO" in ko["flags"].iloc[0]
    states = store.read_table(pair_states_table).set_index("pair_id")
    assert pd.Timestamp(states.loc["KO-PEP", "last_bar"]) == pd.Timestamp("2022-12-29 15:00:00")


def test_a_held_pair_is_not_stopped_by_replayed_bars(world):
    """The issue's case: a held pair, then replayed closes re-stamped to now (before: z far out, a stop order)."""
    store, instance, config = world
    assert materialize(instance, store, cutoff="2022-12-29T15:01:00Z").success  # KO-PEP short at 15:00
    sent = len(store.read_table(orders_table))
    _replayed(store, "KO", "2022-12-29T15:02:00Z", 0.55)
    _replayed(store, "PEP", "2022-12-29T15:02:00Z", 1.9)
    result = materialize(instance, store, cutoff="2022-12-29T15:02:00Z")
    assert result.success
    assert len(store.read_table(orders_table)) == sent  # no order follows the rejected bars
    states = store.read_table(pair_states_table).set_index("pair_id")
    assert states.loc["KO-PEP", "side"] == -1
    assert pd.Timestamp(states.loc["KO-PEP", "last_bar"]) == pd.Timestamp("2022-12-29 15:00:00")
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    assert "KO bar 2022-12-29T15:02:00+00:00" in metadata["rejected_bars"].value


def _as_the_recycler_streamed_them(store) -> str:
    """The fixture's live bars replaced by the same prices as ``pairs stream`` stores a recycler's
    (loop mode: stored bars re-stamped to now, source ``recycler:<feed>``); returns that source."""
    from pairs_assets.live.stream import StreamSettings
    from resources.market_data import bars_table

    source = StreamSettings(symbols=("KO",), url="ws://127.0.0.1:8765/v2/iex", backfill=False).source_label
    live = store.read_bars(
        ["KO", "PEP", "PG", "WMT"], pd.Timestamp("2022-12-29T00:00:00Z"), pd.Timestamp("2022-12-30T00:00:00Z")
    )
    with store.engine.begin() as conn:
        conn.execute(bars_table.delete().where(bars_table.c.source == "alpaca:iex-stream"))
    store.upsert_bars(live.assign(source=source), context="recycler")
    return source


def test_replayed_bars_are_not_traded_outside_replay_mode(world, monkeypatch):
    """The issue's case: the recycler's re-stamped bars in the store, replay mode off → no signal from them."""
    monkeypatch.delenv("PAIRS_SIGNAL_REPLAY", raising=False)
    monkeypatch.delenv("PAIRS_LIVE_SOURCE", raising=False)
    store, instance, _ = world
    source = _as_the_recycler_streamed_them(store)
    assert source == "recycler:iex"
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")  # before: KO-PEP short_spread, 2 orders
    assert result.success
    rows = store.read_table(trading_signals_table)
    assert rows["flags"].str.contains("no_bar_after_as_of").all() and not rows["flags"].str.contains("replay").any()
    assert (pd.to_datetime(rows["bar_timestamp"]) == pd.Timestamp("2022-12-28 21:00:00")).all()  # the as-of close
    # nothing computed from the replayed prices: each pair's row is its as-of close's (as with no bar at all)
    assert rows.set_index("pair_id").loc["KO-PEP", "zscore"] != pytest.approx(2.6, abs=0.1)  # the replayed bar's z
    orders = store.read_table(orders_table)
    assert orders.empty or not orders["client_order_id"].str.contains("20221229T15").any()  # none on a replayed bar
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    assert metadata["ignored_bars"].value == (
        "4 bar(s) ignored, not from the live source 'alpaca:iex-stream': 4 of recycler:iex "
        "(replay mode is off: set PAIRS_SIGNAL_REPLAY=1 to trade on replayed bars)"
    )
    assert metadata["replay"].value is False and metadata["live_source"].value == "alpaca:iex-stream"
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["pairs/replay"] == "false" and tags["pairs/live_source"] == "alpaca:iex-stream"


@pytest.mark.parametrize("how", ["run_config", "environment"])
def test_replay_mode_trades_on_them_and_says_so(world, monkeypatch, how):
    monkeypatch.delenv("PAIRS_LIVE_SOURCE", raising=False)
    store, instance, _ = world
    _as_the_recycler_streamed_them(store)
    if how == "environment":  # a run launched by hand: the step process's PAIRS_SIGNAL_REPLAY
        monkeypatch.setenv("PAIRS_SIGNAL_REPLAY", "1")
        result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    else:
        monkeypatch.setenv("PAIRS_SIGNAL_REPLAY", "0")  # run config wins (the sensor sets it from the daemon's)
        result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z", replay=True)
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows.loc["KO-PEP", "action"] == "short_spread"
    assert rows["flags"].str.split(",").map(lambda flags: "replay" in flags).all()
    assert len(store.read_table(orders_table)) == 2
    metadata = result.asset_materializations_for_node("trading_signals")[0].metadata
    assert metadata["replay"].value is True and metadata["ignored_bars"].value == "none"
    assert instance.get_run_by_id(result.run_id).tags["pairs/replay"] == "true"


def test_a_configured_live_source_and_its_proxies_are_traded(world, monkeypatch):
    monkeypatch.delenv("PAIRS_SIGNAL_REPLAY", raising=False)
    monkeypatch.setenv("PAIRS_LIVE_SOURCE", "recycler:iex")  # e.g. a paper desk that calls its own feed live
    store, instance, _ = world
    _as_the_recycler_streamed_them(store)
    from resources.market_data import bars_table

    with store.engine.begin() as conn:  # KO's bar as a proxy stand-in of the live source
        conn.execute(
            bars_table.update()
            .where(bars_table.c.symbol == "KO", bars_table.c.source == "recycler:iex")
            .values(source="recycler:iex+proxy:AAPL")
        )
    result = materialize(instance, store, cutoff="2022-12-29T15:01:00Z")
    assert result.success
    rows = store.read_table(trading_signals_table).set_index("pair_id")
    assert rows.loc["KO-PEP", "action"] == "short_spread" and "proxy_bars:KO" in rows.loc["KO-PEP", "flags"]
    assert result.asset_materializations_for_node("trading_signals")[0].metadata["ignored_bars"].value == "none"
