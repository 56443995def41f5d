"""The walk_forward asset and `pairs walk-forward`: parity with the daily graph, outputs, MLflow, bad input."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner

from pairs_assets import partitions
from pairs_assets.assets.common import read_panel
from pairs_assets.assets.walk_forward import walk_forward
from pairs_assets.definitions import home_resource_for
from pairs_assets.quant.walkforward.gru_gate import GRUGate
from pairs_assets.quant.walkforward.replay import build_configs
from pairs_assets.settings import EMBEDDED_HISTORY_START, StrategySettings, paths
from pairs_assets_tests.assets.graph_harness import materialize, preload_history, resources_for
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry

FAST = {"gru_max_epochs": 3, "gru_hidden": 16}
CONSUMER = ("BBY", "HD", "KO", "PEP", "PG", "WMT")
ENERGY = ("CVX", "RRC", "XOM")


def _graph_config(home, date: str, sector: str) -> dict:
    return json.loads((home.outputs_dir / "trading_config" / date / f"{sector}.json").read_text())


#: the trading-period methodology: stages at a formation session every 5 sessions, causal β in the
#: GARCH, the backtest before the formation window with lag and costs
PERIODIC = {"reselect_every": 5, "formation_window": 120, "causal_hedge": True, "backtest_before_formation": True,
            "backtest_lag": 1, "backtest_cost_bp": 5.0}


@pytest.mark.parametrize(
    "date, sector, symbols, overrides",
    [
        ("2022-12-14", "consumer", CONSUMER, {}),
        ("2022-12-28", "energy", ENERGY, {}),
        ("2022-11-15", "consumer", CONSUMER, {}),
        ("2022-12-15", "financial", ("BAC", "JPM"), PERIODIC),
    ],
)
def test_walk_forward_configs_equal_the_daily_graph(own_pairs_home, sqlite_url, date, sector, symbols, overrides):
    """Field for field, input fingerprint included; the GRU's registry block aside (no GRU in the replay)."""
    source = EmbeddedBarSource()
    strategy = StrategySettings.preset("seed", **FAST, **overrides)
    preload_history(sqlite_url, source, symbols, date, strategy.history_sessions)
    assert materialize(date, sector, resources_for(sqlite_url, source, home=own_pairs_home, **FAST, **overrides)).success
    graph = _graph_config(own_pairs_home, date, sector)

    sessions = partitions.window_sessions(date, strategy.history_sessions, history_start=EMBEDDED_HISTORY_START)
    panel = read_panel(MarketDataStore(database_url=sqlite_url), source.source_name, sector, symbols, sessions)
    formation_of = lambda day: partitions.formation_session(day, strategy.reselect_every)  # noqa: E731
    if overrides:
        assert formation_of(date) < pd.Timestamp(date) and graph["formation_session"] == str(formation_of(date).date())
    replay = build_configs(
        panel, [sessions[-1]], [partitions.next_session(date)], symbols, strategy, formation_of=formation_of
    )[sessions[-1]]
    ours = replay.document()
    for pair in ours["pairs"]:
        assert pair.pop("model") is None and pair.pop("model_note") == "no GRU stage in this run"
    # with the GRU stage: the same model block as gru_models wrote, registry ids aside
    gate = GRUGate(panel.closes, strategy, sector)
    gated = build_configs(
        panel, [sessions[-1]], [partitions.next_session(date)], symbols, strategy, formation_of=formation_of,
        models_for=gate.models_for,
    )[sessions[-1]].document()
    for pair, graph_pair in zip(gated["pairs"], graph["pairs"]):
        for block in (pair["model"], graph_pair["model"]):
            for registry_id in ("name", "version", "mlflow_run_id"):
                block.pop(registry_id)
        assert pair["model"] == graph_pair["model"] and pair["model_note"] == graph_pair["model_note"] == "trained"
    for pair in graph["pairs"]:
        pair.pop("model"), pair.pop("model_note")
    assert ours == graph
    if date == "2022-12-14":
        assert [p["pair_id"] for p in ours["pairs"]] == ["KO-PG"]  # the partition with a selected pair


@pytest.fixture(scope="module")
def loaded_store():
    """Consumer bars from 2018 (the 1,001-session window before 2022-10-03) to the end of the data, in
    the test home's store (the one the CLI's definitions use)."""
    url = paths().database_url
    sessions = partitions.sessions_in_range("2018-06-01", "2022-12-28")
    bars = EmbeddedBarSource().load_bars(list(CONSUMER), *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    MarketDataStore(database_url=url).upsert_bars(bars, context="test")
    return url


def _materialize(url: str, **config):
    resources = {
        "store": MarketDataStore(database_url=url),
        "bar_source": EmbeddedBarSource(),
        "strategy": StrategySettings.preset("seed"),
        "model_registry": ModelRegistry(tracking_uri=paths().mlflow_tracking_uri, local_store_dir=str(paths().mlflow_dir)),
        "home": home_resource_for(paths()),
    }
    return dg.materialize(
        [walk_forward], resources=resources, run_config={"ops": {"walk_forward": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    )


def test_asset_writes_results_mlflow_run_and_reruns_identically(loaded_store, monkeypatch):
    config = {"name": "t1", "start": "2022-10-03", "end": "2022-12-28", "sectors": ["consumer"], "costs": [0.0, 5.0]}
    result = _materialize(loaded_store, **config)
    assert result.success
    metadata = result.asset_materializations_for_node("walk_forward")[0].metadata
    assert metadata["dagster/row_count"].value == 2 * 2 * 2 * 2  # strategies × sectors(+all) × costs × (full, 2016-2022)
    assert {c.name for c in metadata["summary"].value.schema.columns} >= {"strategy", "sector", "cost_bp", "sharpe"}
    folder = Path(paths().home) / "walk_forward" / "t1"
    summary = pd.read_csv(folder / "summary.csv")
    assert set(summary["strategy"]) == {"default", "baseline"} and set(summary["period"]) == {"full", "2016-2022"}
    assert list(summary.columns[:4]) == ["strategy", "sector", "cost_bp", "period"]
    assert (folder / "equity.png").stat().st_size > 10_000
    before = {f: (folder / f).read_bytes() for f in ("summary.csv", "trades.csv", "daily_pnl.csv.gz", "configs.csv")}

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=paths().mlflow_tracking_uri)
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert client.get_experiment(run.info.experiment_id).name == "pairs_trading/walk_forward"
    assert run.data.params["wf.start"] == "2022-10-03" and "strategy.correlation_min" in run.data.params
    assert "baseline.5bp.full.trades" in run.data.metrics and "default.5bp.full.ann_return" in run.data.metrics
    assert run.data.params["trials.source"] in ("none", "ledger")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.csv", "trades.csv", "daily_pnl.csv.gz", "equity.png"} <= artifacts

    # an interrupted write leaves the previous results whole; a rerun writes the same files
    import resources.walk_forward_outputs as outputs

    def broken(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(outputs.pd.DataFrame, "to_csv", broken)
    assert not _materialize(loaded_store, **config).success
    monkeypatch.undo()
    assert {f: (folder / f).read_bytes() for f in before} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["t1"]  # no half-written folder left behind
    assert _materialize(loaded_store, **config).success
    assert {f: (folder / f).read_bytes() for f in before} == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sector", "nosuch"], "unknown sector(s) nosuch"),
        (["--costs", "5,-1"], "cost"),
        (["--costs", "5,abc"], "not a number"),
        (["--lag", "2"], "lag must be 0"),
        (["--start", "2022-12-01", "--end", "2022-11-01"], "after end"),
        (["--start", "2022-10-03", "--end", "2023-06-30", "--sector", "consumer"], "the bars end on 2022-12-28"),
        (["--start", "1990-06-01", "--end", "1990-12-31", "--sector", "consumer"], "sessions of bars before it"),
        (["--name", "../x"], "walk-forward name"),
    ],
)
def test_cli_bad_input_is_one_clear_line(loaded_store, args, message):
    from pairs_assets.cli import main

    result = CliRunner().invoke(main, ["walk-forward", "--skip-load", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
