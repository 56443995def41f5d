"""Training and trading feed the GRU the same thing (issue 8 item 5).

One real partition (2022-12-14|consumer, where KO-PG is selected) goes through the real pieces: the
daily graph's gru_models trains and registers the pair's GRU and trading_config writes its model
block; the trading_signals asset then reads that config from the store, the closes and a live bar of
the next session, and loads the model through the real ModelRegistry. The sequence the model sees
in the signal job must equal the last sequence of the training features (same sessions, same
feature-GARCH), and so must the probability — whatever the intraday price. Today's code appended the
intraday price as an extra session row, which this test refuses.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from pairs_assets import partitions
from pairs_assets.assets.common import read_window
from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.features import build_features, entry_event_labels, formation_statistics
from pairs_assets.quant.stages import gru_config, gru_stage_fit
from pairs_assets.quant.walkforward.gru_gate import GRUGate
from pairs_assets.settings import EMBEDDED_HISTORY_START, StrategySettings
from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS as trading_signals
from pairs_assets_tests.assets.graph_harness import materialize, preload_history, resources_for
from pairs_assets_tests.live.signal_setup import live_bar
from resources.bar_sources import EmbeddedBarSource
from resources.broker import BrokerResource
from resources.market_data import MarketDataStore, trading_signals_table
from resources.model_registry import ModelRegistry

AS_OF, SECTOR, PAIR = "2022-12-14", "consumer", "KO-PG"
CONSUMER = ("BBY", "HD", "KO", "PEP", "PG", "WMT")
FAST = {"gru_max_epochs": 3, "gru_hidden": 16}


class RecordingModel:
    """The registered model, unchanged; remembers the inputs the signal job gives it."""

    def __init__(self, model):
        self.model = model
        self.inputs: list[np.ndarray] = []

    def eval(self):
        self.model.eval()  # a torch.export module raises NotImplementedError here, as the job expects
        return self

    def __call__(self, x):
        self.inputs.append(x.detach().cpu().numpy().copy())
        return self.model(x)


class RecordingRegistry:
    """The real ModelRegistry; each model it loads is wrapped in a :class:`RecordingModel`."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry
        self.loaded: dict[tuple[str, str], RecordingModel] = {}

    def load_model(self, name, version):
        model = RecordingModel(self.registry.load_model(name, version))
        self.loaded[(name, str(version))] = model
        return model


@pytest.fixture()
def partition(own_pairs_home, sqlite_url):
    """The daily graph materialized for the partition: (store, strategy, trading config document)."""
    source = EmbeddedBarSource()
    strategy = StrategySettings.preset("seed", **FAST)
    preload_history(sqlite_url, source, CONSUMER, AS_OF, strategy.history_sessions)
    assert materialize(AS_OF, SECTOR, resources_for(sqlite_url, source, home=own_pairs_home, **FAST)).success
    doc = json.loads((own_pairs_home.outputs_dir / "trading_config" / AS_OF / f"{SECTOR}.json").read_text())
    return MarketDataStore(database_url=sqlite_url), strategy, doc


def _signals(store, strategy, registry, history_sessions: int, cutoff: str):
    return dg.materialize(
        [trading_signals],
        partition_key=partitions.partition_key(AS_OF, SECTOR),
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": strategy,
            "model_registry": registry,
            "broker": BrokerResource(),
        },
        run_config={
            "ops": {
                "trading_signals": {
                    "config": {
                        "bar_cutoff": cutoff,
                        "history_sessions": history_sessions,
                        "execute": False,
                    }
                }
            }
        },
    )


def test_signal_job_feeds_the_registered_gru_its_training_features(own_pairs_home, partition):
    store, strategy, doc = partition
    pair = next(p for p in doc["pairs"] if p["pair_id"] == PAIR)
    block = pair["model"]
    assert block is not None, pair["model_note"]

    # training side: the window gru_models reads and the stage function it calls
    window = read_window(
        store,
        EmbeddedBarSource().source_name,
        [pair["y"], pair["x"]],
        AS_OF,
        strategy.gru_window,
        partition=f"{AS_OF}|{SECTOR}",
        history_start=EMBEDDED_HISTORY_START,
    )
    spec = SimpleNamespace(
        pair_id=PAIR, y=pair["y"], x=pair["x"], hedge_ratio=pair["hedge_ratio"], intercept=pair["intercept"]
    )
    result, feature_garch, levels, garch = gru_stage_fit(window.closes, spec, strategy, gru_config(strategy))
    assert {k: feature_garch[k] for k in ("mu", "omega", "alpha", "beta")} == pytest.approx(
        block["feature_garch"], rel=1e-12
    )
    # the seed's GRU spread is the formation's (causal_hedge off)
    assert (feature_garch["hedge_ratio"], feature_garch["intercept"]) == (pair["hedge_ratio"], pair["intercept"])
    assert (block["feature_hedge_ratio"], block["feature_intercept"]) == (pair["hedge_ratio"], pair["intercept"])
    training = build_features(levels, garch["garch_sigma"], garch["garch_std_resid"])
    assert training.index[-1] == pd.Timestamp(AS_OF)
    last_sequence = training.tail(strategy.gru_seq_len).to_numpy(dtype="float64").astype(np.float32)

    # the label is the config's event: its formation statistics at the (formation) session are the config's
    formed = pd.Timestamp(doc.get("formation_session") or AS_OF)
    stats = formation_statistics(levels, strategy.formation_window).loc[formed]
    assert stats["spread_mean"] == pytest.approx(pair["spread_mean"], rel=1e-9, abs=1e-12)
    assert stats["spread_std"] == pytest.approx(pair["spread_std"], rel=1e-9)
    assert result.label == "entry_event" and result.formation_window == strategy.formation_window

    # a live bar in the next session far from the close: an intraday row would change every feature
    store.upsert_bars(
        pd.DataFrame(
            [
                live_bar("KO", "2022-12-15T15:00:00Z", float(window.closes["KO"].iloc[-1]) * 1.03),
                live_bar("PG", "2022-12-15T15:00:00Z", float(window.closes["PG"].iloc[-1]) * 0.98),
            ]
        ),
        context="live",
    )

    registered = ModelRegistry(
        tracking_uri=own_pairs_home.mlflow_tracking_uri, local_store_dir=str(own_pairs_home.mlflow_dir)
    )
    model = registered.load_model(block["name"], block["version"])  # exported in eval mode
    with torch.no_grad():
        expected = float(model(torch.as_tensor(last_sequence[None]))[0])

    # the signal job reading the training window's sessions: the same rows, bit for bit
    registry = RecordingRegistry(registered)
    assert _signals(store, strategy, registry, strategy.gru_window, "2022-12-15T15:00:00Z").success
    seen = registry.loaded[(block["name"], block["version"])].inputs
    assert len(seen) == 1 and seen[0].shape == (1, strategy.gru_seq_len, training.shape[1])
    np.testing.assert_array_equal(seen[0][0], last_sequence)
    row = store.read_table(trading_signals_table).set_index("pair_id").loc[PAIR]
    assert row["gru_probability"] == pytest.approx(expected, abs=1e-7)
    assert pd.Timestamp(row["bar_timestamp"]) == pd.Timestamp("2022-12-15 15:00:00")  # the live bar was used

    # the walk-forward's gate replays the same job: same sessions, same model, same probability
    gate = GRUGate(window.closes, strategy, SECTOR, history_sessions=strategy.gru_window)
    gate.models_for(pd.Timestamp(AS_OF), pd.DataFrame([vars(spec)]), window.closes)
    parsed = next(p for p in TradingConfig.parse(doc).pairs if p.pair_id == PAIR)
    replayed = gate.probability(parsed, pd.Timestamp(AS_OF), pd.Timestamp(partitions.next_session(AS_OF)))
    assert replayed == pytest.approx(expected, abs=1e-6)

    # with the job's default 120 sessions the recursive features (RSI, GARCH σ) start later and
    # differ only by their decayed start-up
    registry = RecordingRegistry(registered)
    assert _signals(store, strategy, registry, 120, "2022-12-15T15:00:00Z").success
    seen = registry.loaded[(block["name"], block["version"])].inputs[0][0]
    np.testing.assert_allclose(seen, last_sequence, rtol=2e-3, atol=1e-6)


def test_entry_event_label_on_the_registered_window_is_point_in_time(partition):
    """Labels of the training window never use a close after the as-of session."""
    store, strategy, doc = partition
    pair = next(p for p in doc["pairs"] if p["pair_id"] == PAIR)
    window = read_window(
        store,
        EmbeddedBarSource().source_name,
        [pair["y"], pair["x"]],
        AS_OF,
        strategy.gru_window,
        partition=f"{AS_OF}|{SECTOR}",
        history_start=EMBEDDED_HISTORY_START,
    )
    from pairs_assets.quant.stages import pair_spread

    levels = pair_spread(window.closes, pair["y"], pair["x"], pair["hedge_ratio"], pair["intercept"])
    labels = entry_event_labels(
        levels, strategy.gru_horizon, strategy.formation_window, strategy.exit_z, strategy.stop_z
    )
    assert (
        labels.iloc[-strategy.gru_horizon :].isna().all() and labels.iloc[: strategy.formation_window - 1].isna().all()
    )
    assert labels.iloc[strategy.formation_window - 1 : -strategy.gru_horizon].notna().all()


# --- the default methodology: trading periods, causal hedge ratio, the gate switched on ------------------

FORMED, TECH, TECH_PAIR = "2022-12-02", "technology", "MSFT-AMD"  # a formation session of the default schedule


@pytest.fixture()
def default_partition(own_pairs_home, sqlite_url):
    """The daily graph with the default settings (gate on) at a formation session where MSFT-AMD is selected."""
    source = EmbeddedBarSource()
    overrides = {**FAST, "gru_gate": True}
    strategy = StrategySettings(**overrides)
    assert partitions.formation_session(FORMED, strategy.reselect_every) == pd.Timestamp(FORMED)
    preload_history(sqlite_url, source, ("AAPL", "AMD", "MSFT"), FORMED, strategy.history_sessions)
    resources = {**resources_for(sqlite_url, source, home=own_pairs_home), "strategy": strategy}
    assert materialize(FORMED, TECH, resources).success
    doc = json.loads((own_pairs_home.outputs_dir / "trading_config" / FORMED / f"{TECH}.json").read_text())
    return MarketDataStore(database_url=sqlite_url), strategy, doc


def test_the_default_gru_trains_and_trades_on_a_hedge_ratio_estimated_before_its_evaluation(
    own_pairs_home, default_partition
):
    """Issue 8 items 1 and 5 with the defaults: the model block names the feature spread's β (estimated
    before the validation and test slices, not the formation's), and the signal job and the
    walk-forward build the same features on it as training."""
    from pairs_assets.quant.stages import gru_hedge

    store, strategy, doc = default_partition
    assert doc["gru_gate"] is True
    pair = next(p for p in doc["pairs"] if p["pair_id"] == TECH_PAIR)
    block = pair["model"]
    assert block is not None, pair["model_note"]
    window = read_window(
        store,
        EmbeddedBarSource().source_name,
        [pair["y"], pair["x"]],
        FORMED,
        strategy.gru_window,
        partition=f"{FORMED}|{TECH}",
        history_start=EMBEDDED_HISTORY_START,
    )
    spec = SimpleNamespace(
        pair_id=TECH_PAIR, y=pair["y"], x=pair["x"], hedge_ratio=pair["hedge_ratio"], intercept=pair["intercept"]
    )
    beta, alpha = gru_hedge(window.closes, spec, strategy, gru_config(strategy))
    assert (block["feature_hedge_ratio"], block["feature_intercept"]) == (beta, alpha)
    assert abs(beta - pair["hedge_ratio"]) > 1e-6  # not the formation's β, which saw the test slice

    result, feature_params, levels, garch = gru_stage_fit(window.closes, spec, strategy, gru_config(strategy))
    assert {k: feature_params[k] for k in ("mu", "omega", "alpha", "beta")} == pytest.approx(
        block["feature_garch"], rel=1e-12
    )
    training = build_features(levels, garch["garch_sigma"], garch["garch_std_resid"])
    last_sequence = training.tail(strategy.gru_seq_len).to_numpy(dtype="float64").astype(np.float32)

    store.upsert_bars(
        pd.DataFrame(
            [
                live_bar("MSFT", "2022-12-05T15:00:00Z", float(window.closes["MSFT"].iloc[-1]) * 1.03),
                live_bar("AMD", "2022-12-05T15:00:00Z", float(window.closes["AMD"].iloc[-1]) * 0.98),
            ]
        ),
        context="live",
    )
    registered = ModelRegistry(
        tracking_uri=own_pairs_home.mlflow_tracking_uri, local_store_dir=str(own_pairs_home.mlflow_dir)
    )
    model = registered.load_model(block["name"], block["version"])
    with torch.no_grad():
        expected = float(model(torch.as_tensor(last_sequence[None]))[0])
    if not block["beats_baselines"]:
        # the job loads only models that beat their baselines; this test is about the features, so the
        # stored config says it does (every other field as written)
        config = TradingConfig.parse(doc)
        gated = [
            p.model_copy(update={"model": p.model.model_copy(update={"beats_baselines": True})}) if p.model else p
            for p in config.pairs
        ]
        store.write_trading_config(config.model_copy(update={"pairs": gated}).document(), path="test")
    registry = RecordingRegistry(registered)
    result_run = dg.materialize(
        [trading_signals],
        partition_key=partitions.partition_key(FORMED, TECH),
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            "strategy": strategy,
            "model_registry": registry,
            "broker": BrokerResource(),
        },
        run_config={
            "ops": {
                "trading_signals": {
                    "config": {
                        "bar_cutoff": "2022-12-05T15:00:00Z",
                        "history_sessions": strategy.gru_window,
                        "execute": False,
                    }
                }
            }
        },
    )
    assert result_run.success
    seen = registry.loaded[(block["name"], block["version"])].inputs
    np.testing.assert_array_equal(seen[0][0], last_sequence)
    row = store.read_table(trading_signals_table).set_index("pair_id").loc[TECH_PAIR]
    assert row["gru_probability"] == pytest.approx(expected, abs=1e-7)

    gate = GRUGate(window.closes, strategy, TECH, history_sessions=strategy.gru_window)
    gate.models_for(pd.Timestamp(FORMED), pd.DataFrame([vars(spec)]), window.closes)
    parsed = next(p for p in TradingConfig.parse(doc).pairs if p.pair_id == TECH_PAIR)
    replayed = gate.probability(parsed, pd.Timestamp(FORMED), pd.Timestamp(partitions.next_session(FORMED)))
    assert replayed == pytest.approx(expected, abs=1e-6)
