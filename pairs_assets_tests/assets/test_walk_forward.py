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
from pairs_assets_tests.assets.graph_harness import daily_assets, materialize, preload_history, resources_for
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
PERIODIC = {
    "reselect_every": 5,
    "formation_window": 120,
    "causal_hedge": True,
    "backtest_before_formation": True,
    "backtest_lag": 1,
    "backtest_cost_bp": 5.0,
}


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
    assert materialize(
        date, sector, resources_for(sqlite_url, source, home=own_pairs_home, **FAST, **overrides)
    ).success
    graph = _graph_config(own_pairs_home, date, sector)

    sessions = partitions.window_sessions(date, strategy.history_sessions, history_start=EMBEDDED_HISTORY_START)
    panel = read_panel(MarketDataStore(database_url=sqlite_url), source.source_name, sector, symbols, sessions)

    def formation_of(day):
        return partitions.formation_session(day, strategy.reselect_every)

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
        panel,
        [sessions[-1]],
        [partitions.next_session(date)],
        symbols,
        strategy,
        formation_of=formation_of,
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
        "model_registry": ModelRegistry(
            tracking_uri=paths().mlflow_tracking_uri, local_store_dir=str(paths().mlflow_dir)
        ),
        "home": home_resource_for(paths()),
    }
    return dg.materialize(
        [walk_forward],
        resources=resources,
        run_config={"ops": {"walk_forward": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_asset_writes_results_mlflow_run_and_reruns_identically(loaded_store, monkeypatch):
    config = {"name": "t1", "start": "2022-10-03", "end": "2022-12-28", "sectors": ["consumer"], "costs": [0.0, 5.0]}
    result = _materialize(loaded_store, **config)
    assert result.success
    metadata = result.asset_materializations_for_node("walk_forward")[0].metadata
    assert (
        metadata["dagster/row_count"].value == 2 * 2 * 2 * 2
    )  # strategies × sectors(+all) × costs × (full, 2016-2022)
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
        (["--robustness", "--phase-step", "-1"], "--phase-step"),
    ],
)
def test_cli_bad_input_is_one_clear_line(loaded_store, args, message):
    from pairs_assets.cli import main

    result = CliRunner().invoke(main, ["walk-forward", "--skip-load", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_the_history_start_no_longer_changes_the_daily_graph_s_config(tmp_path, sqlite_url, own_pairs_home):
    """Issue 18 item 3: the formation schedule is the exchange calendar's (every reselect_every-th
    session from 1990-01-02), so two homes whose histories start one session apart — which used to
    shift every formation session by one — write the same config for the same partition."""
    import dataclasses

    date, sector, symbols = "2022-12-15", "financial", ("BAC", "JPM")
    source = EmbeddedBarSource()
    strategy = StrategySettings.preset("seed", **FAST, **PERIODIC)
    preload_history(sqlite_url, source, symbols, date, strategy.history_sessions)
    configs = []
    for start in ("2017-01-03", "2017-01-04"):
        home = dataclasses.replace(own_pairs_home, home=tmp_path / start, history_start=start)
        home.home.mkdir()
        assets = daily_assets(history_start=start, strategy=strategy)
        assert materialize(
            date, sector, resources_for(sqlite_url, source, home=home, **FAST, **PERIODIC), assets=assets
        ).success
        configs.append(_graph_config(home, date, sector))
    for config in configs:
        for pair in config["pairs"]:
            for registry_id in ("name", "version", "mlflow_run_id"):
                (pair.get("model") or {}).pop(registry_id, None)
        config.pop("generated_at", None)
    assert configs[0]["formation_session"] == str(partitions.formation_session(date, 5).date())
    assert configs[0] == configs[1]


def test_the_history_start_no_longer_changes_the_walk_forward(loaded_store, tmp_path):
    """The same range from two history starts one session apart: the same configs, trades and daily
    P&L (re-selection every 5 sessions, so the old history-start schedule differed)."""
    import dataclasses

    strategy = StrategySettings.preset("seed", reselect_every=5, correlation_min=0.6, score_min=0.0)
    config = {"start": "2022-10-03", "end": "2022-12-28", "sectors": ["consumer"], "costs": [0.0, 5.0], "workers": 1}
    outputs = []
    for start in ("2018-06-01", "2018-06-04"):
        p = dataclasses.replace(paths(), home=tmp_path / start, history_start=start)
        resources = {
            "store": MarketDataStore(database_url=loaded_store),
            "bar_source": EmbeddedBarSource(),
            "strategy": strategy,
            "model_registry": ModelRegistry(
                tracking_uri=paths().mlflow_tracking_uri, local_store_dir=str(paths().mlflow_dir)
            ),
            "home": home_resource_for(p),
        }
        result = dg.materialize(
            [walk_forward],
            resources=resources,
            run_config={"ops": {"walk_forward": {"config": {**config, "name": "hs"}}}},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        assert result.success
        folder = tmp_path / start / "walk_forward" / "hs"
        outputs.append(
            {f: (folder / f).read_bytes() for f in ("trades.csv", "daily_pnl.csv.gz", "configs.csv", "summary.csv")}
        )
    assert outputs[0] == outputs[1]
    import io

    assert (
        pd.read_csv(io.BytesIO(outputs[0]["configs.csv"]))["pair_days"].sum() > 0
    )  # something was selected and traded
    assert len(pd.read_csv(io.BytesIO(outputs[0]["trades.csv"]))) > 0


def test_robustness_runs_the_neighbourhood_writes_the_table_and_heat_map_and_counts_every_trial(loaded_store):
    """`pairs walk-forward --robustness` on a short range (consumer, 2021–2022, selection 2021): the
    centre and the ten one-step neighbours run as recorded walk-forwards, robustness.csv and the
    heat-map land in <name>.robustness/ and in MLflow, and every variant is a trial of the ledger."""
    import mlflow

    from pairs_assets.cli import main
    from pairs_assets.quant.walkforward.ledger import trials_from_runs

    args = [
        "walk-forward",
        "--start",
        "2021-01-04",
        "--end",
        "2022-12-28",
        "--sector",
        "consumer",
        "--costs",
        "0,5",
        "--selection",
        "2021-2021",
        "--periods",
        "2021-2021",
        "--workers",
        "1",
        "--robustness",
        "--phase-step",
        "0",
        "--name",
        "rb",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    folder = Path(paths().home) / "walk_forward" / "rb.robustness"
    table = pd.read_csv(folder / "robustness.csv")
    variants = list(dict.fromkeys(table["variant"]))
    assert variants == [
        "default",
        "correlation_min=0.6",
        "correlation_min=0.8",
        "formation_window=189",
        "formation_window=315",
        "reselect_every=10",
        "reselect_every=42",
        "entry_z=1.5",
        "entry_z=2.5",
        "exit_z=0.25",
        "exit_z=0.75",
    ]
    assert len(table) == 11 * 2 * 2 and set(table["period"]) == {"dev", "held_out"}
    assert set(table["period_label"]) == {"2021-2021", "2022-2022"}
    # each variant's row is its own run's summary
    own = pd.read_csv(Path(paths().home) / "walk_forward" / "rb.formation_window.189" / "summary.csv")
    mine = own[
        (own["strategy"] == "default")
        & (own["sector"] == "all")
        & (own["cost_bp"] == 5)
        & (own["period"] == "2022-2022")
    ]
    row = table[
        (table["variant"] == "formation_window=189") & (table["period"] == "held_out") & (table["cost_bp"] == 5)
    ]
    assert int(row["trades"].iloc[0]) == int(mine["trades"].iloc[0])
    assert (folder / "robustness.png").stat().st_size > 10_000
    assert "robustness: the total's Sharpe at 5 bp" in result.output and "formation_window=315" in result.output
    registry = ModelRegistry(tracking_uri=paths().mlflow_tracking_uri, local_store_dir=str(paths().mlflow_dir))
    runs = registry.walk_forward_runs()
    logged = [r for r in runs if r["params"].get("robustness.name") == "rb"]
    assert len(logged) == 1
    client = mlflow.MlflowClient(tracking_uri=paths().mlflow_tracking_uri)
    assert {a.path for a in client.list_artifacts(logged[0]["run_id"])} == {"robustness.csv", "robustness.png"}
    # the ledger counts every variant as a distinct configuration on the selection range (the
    # robustness run itself is not a trial), so the DSR's N grew with each run
    trials = trials_from_runs(runs, ("2021-01-01", "2021-12-31"))
    assert len({t.key for t in trials}) >= 11
    traded = table[(table["period"] == "dev") & (table["cost_bp"] == 5) & table["n_trials"].notna()]
    assert traded["n_trials"].is_monotonic_increasing and traded["n_trials"].iloc[-1] >= traded["n_trials"].iloc[0] + 1
