"""gru_models in the graph: MLflow runs and versions, the config's model fields, skips and faults."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from pairs_assets.partitions import partition_key
from pairs_assets_tests.assets.graph_harness import (
    DAILY_ASSETS,
    materialize,
    materialized_keys,
    preload_history,
    resources_for,
)
from pairs_assets_tests.assets.test_bad_input import failure_message
from pairs_assets_tests.planted import planted_closes, write_bars_file
from pairs_assets_tests.strategies import SEED
from resources.bar_sources import FileBarSource
from resources.market_data import MarketDataStore, model_performance_table
from resources.model_registry import ModelRegistry

FAST = {"gru_max_epochs": 4, "gru_hidden": 16}
# each test its own home (own_pairs_home, passed to resources_for): the tests materialize the same
# partitions (see assets/conftest.py)


@pytest.fixture()
def planted(tmp_path, sqlite_url):
    source = FileBarSource(path=write_bars_file(tmp_path / "bars.csv", planted_closes()))
    preload_history(sqlite_url, source, ["AAPL", "AMD", "MSFT"], "2022-12-28", SEED.history_sessions)
    return source


def _mlflow_store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_gru_trained_logged_registered_and_in_the_config(own_pairs_home, tmp_path, sqlite_url, planted):
    resources = resources_for(sqlite_url, planted, home=own_pairs_home, **FAST)
    resources["model_registry"] = ModelRegistry(tracking_uri=_mlflow_store(tmp_path))
    result = dg.materialize(
        DAILY_ASSETS,
        partition_key=partition_key("2022-12-28", "technology"),
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        # what the 6 AM schedule tags a run with (sensors/strategy_control.py)
        tags={"pairs/strategies": "garch_gru", "pairs/strategies_fingerprint": "0123456789abcdef"},
    )
    assert result.success
    models = pd.read_parquet(own_pairs_home.outputs_dir / "gru_models" / "2022-12-28" / "technology.parquet")
    assert models["status"].tolist() == ["trained"]
    row = models.iloc[0]
    for name in ["test_f1", "baseline_majority_f1", "baseline_logistic_f1", "baseline_z_rule_f1"]:
        assert 0.0 <= row[name] <= 1.0

    client = MlflowClient(tracking_uri=_mlflow_store(tmp_path))
    experiment = client.get_experiment_by_name("pairs_trading/technology")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "one MLflow run per pair and partition"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith(f"GRU_Training_{row['pair_id']}_") and run.info.run_name.endswith("_v1")
    assert run.data.tags["pair"] == row["pair_id"] and run.data.tags["as_of_session"] == "2022-12-28"
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.tags["pairs/strategies_fingerprint"] == "0123456789abcdef"  # the strategies file it ran with
    assert run.data.params["gru_hidden"] == "16" and run.data.params["gru_seq_len"] == "10"
    assert "test_f1" in run.data.metrics and "baseline_logistic_f1" in run.data.metrics
    # no bar after the as-of session in any slice, and the test slice comes last
    assert run.data.params["test_last_session"] <= "2022-12-28"
    assert (
        run.data.params["train_last_session"]
        < run.data.params["val_first_session"]
        < run.data.params["test_first_session"]
    )

    versions = client.search_model_versions("name='pairs_trading_gru_garch_technology'")
    assert [str(v.version) for v in versions] == [row["model_version"]]
    doc = json.loads((own_pairs_home.outputs_dir / "trading_config" / "2022-12-28" / "technology.json").read_text())
    model = doc["pairs"][0]["model"]
    assert model["name"] == "pairs_trading_gru_garch_technology" and model["version"] == row["model_version"]
    assert model["probability_threshold"] == pytest.approx(row["probability_threshold"])
    assert model["beats_baselines"] == bool(row["beats_baselines"])
    assert model["feature_garch"]["alpha"] == pytest.approx(row["feature_garch_alpha"])
    assert 0 < model["feature_garch"]["alpha"] + model["feature_garch"]["beta"] < 1

    perf = MarketDataStore(database_url=sqlite_url).read_table(model_performance_table)
    assert perf[["pair_id", "mlflow_run_id", "status"]].values.tolist() == [
        [row["pair_id"], run.info.run_id, "trained"]
    ]

    # the registered version loads back and predicts like the model that was trained
    loaded = ModelRegistry(tracking_uri=_mlflow_store(tmp_path)).load_model(model["name"], model["version"])
    x = torch.zeros((2, 10, 13), dtype=torch.float32) + torch.linspace(-1, 1, 13)
    with torch.no_grad():
        p = loaded(x).numpy()
    assert p.shape[0] == 2 and np.all((p >= 0) & (p <= 1))

    # re-materializing with unchanged inputs keeps the one version (and a byte-identical config)
    again = materialize("2022-12-28", "technology", resources)
    assert again.success
    assert len(client.search_model_versions("name='pairs_trading_gru_garch_technology'")) == 1


def test_too_little_history_skips_the_pair_with_its_reason(own_pairs_home, tmp_path, sqlite_url, planted):
    resources = resources_for(sqlite_url, planted, home=own_pairs_home, gru_window=200, **FAST)
    resources["model_registry"] = ModelRegistry(tracking_uri=_mlflow_store(tmp_path))
    result = materialize("2022-12-28", "technology", resources)
    assert result.success, "the partition still materializes"
    models = pd.read_parquet(own_pairs_home.outputs_dir / "gru_models" / "2022-12-28" / "technology.parquet")
    assert models["status"].tolist() == ["skipped"]
    assert "sequences" in models["reason"].iloc[0] and models["pair_id"].iloc[0] in models["reason"].iloc[0]
    doc = json.loads((own_pairs_home.outputs_dir / "trading_config" / "2022-12-28" / "technology.json").read_text())
    assert doc["pairs"][0]["model"] is None and doc["pairs"][0]["model_note"].startswith("no model: pair ")


def test_unreachable_mlflow_store_fails_the_step_and_registers_nothing(own_pairs_home, sqlite_url, planted):
    resources = resources_for(sqlite_url, planted, home=own_pairs_home, **FAST)
    resources["model_registry"] = ModelRegistry(tracking_uri="http://127.0.0.1:9", probe_timeout_s=2)
    result = materialize("2022-12-28", "technology", resources)
    assert not result.success
    assert "gru_models" not in materialized_keys(result) and "trading_config" not in materialized_keys(result)
    assert "127.0.0.1:9" in failure_message(result)
    assert MarketDataStore(database_url=sqlite_url).read_table(model_performance_table).empty
