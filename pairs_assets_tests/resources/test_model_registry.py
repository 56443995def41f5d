"""ModelRegistry against a real local MLflow store (SQLite + artifacts under tmp_path)."""

from __future__ import annotations

import os
import re

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from pairs_assets.quant.gru import GRUConfig, fit_pair_model
from pairs_assets.util import redact_url
from pairs_assets_tests.quant.test_gru import planted_pair
from resources import model_registry as registry_module
from resources.model_registry import (
    ModelRegistry,
    ModelRegistryError,
    ModelStoreUnavailableError,
)

AS_OF = "2022-12-28"
FINGERPRINT = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def trained():
    spread, sigma, resid, _ = planted_pair(n=700)
    result = fit_pair_model(spread, sigma, resid, 2.0, GRUConfig(hidden=8, max_epochs=2), pair_id="AAA-BBB")
    return spread, result


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow_store")


@pytest.fixture
def registry(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return ModelRegistry(local_store_dir=str(store))


def _log(registry: ModelRegistry, trained, sector: str = "technology", run_id: str = "dagster-run-1"):
    spread, result = trained
    return registry.log_pair_model(
        sector=sector,
        pair_id="AAA-BBB",
        as_of=AS_OF,
        dagster_run_id=run_id,
        result=result,
        params={"gru_window": 1300, "formation_window": 60},
        dataset_df=spread.to_frame("spread"),
        dataset_source="embedded:skfolio-sp500",
        fingerprint=FINGERPRINT,
        spread=spread,
        entry_z=2.0,
    )


def test_is_a_pythonic_dagster_resource(store):
    assert isinstance(ModelRegistry(local_store_dir=str(store)), dg.ConfigurableResource)
    defs = dg.Definitions(resources={"model_registry": ModelRegistry(local_store_dir=str(store))})
    assert defs.resources["model_registry"].local_store_dir == str(store)


def test_logs_one_closed_run_and_registers_a_loadable_version(registry, trained, store):
    _, result = trained
    uri_before, env_before = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    info = _log(registry, trained)
    # MLflow's global state is as it was
    assert mlflow.get_tracking_uri() == uri_before and os.environ.get("MLFLOW_TRACKING_URI") == env_before
    assert mlflow.active_run() is None

    assert re.fullmatch(r"GRU_Training_AAA-BBB_\d{8}_\d{6}_v1", info.run_name)
    assert info.experiment == "pairs_trading/technology"
    assert info.model_name == "pairs_trading_gru_garch_technology" and info.version == "1"
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([info.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == info.run_name
    assert run.info.artifact_uri.startswith((store / "artifacts").as_uri())
    tags = run.data.tags
    assert (tags["pair"], tags["sector"], tags["as_of_session"], tags["dagster_run_id"]) == (
        "AAA-BBB",
        "technology",
        AS_OF,
        "dagster-run-1",
    )
    params = run.data.params
    assert params["gru_hidden"] == "8" and params["gru_lr"] == "0.0003" and params["gru_window"] == "1300"
    assert params["label_horizon"] == "5" and params["entry_z"] == "2.0"
    metrics = run.data.metrics
    for key in (
        "train_f1",
        "val_loss",
        "test_roc_auc",
        "baseline_majority_f1",
        "baseline_logistic_f1",
        "baseline_z_rule_precision",
        "threshold",
        "beats_baselines",
    ):
        assert key in metrics, key
    assert metrics["test_f1"] == pytest.approx(result.metrics["test"]["f1"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"training_history.png", "spread_zbands.png", "scaler.json"} <= artifacts
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == f"AAA-BBB@{AS_OF}"
    assert dataset_input.dataset.digest == FINGERPRINT[:36]
    assert "embedded:skfolio-sp500" in dataset_input.dataset.source
    assert {t.key: t.value for t in dataset_input.tags}["fingerprint"] == FINGERPRINT

    version = client.get_model_version(info.model_name, info.version)
    assert version.run_id == run.info.run_id and version.status == "READY"
    assert {k: version.tags[k] for k in ("pair", "as_of_session", "sector")} == {
        "pair": "AAA-BBB",
        "as_of_session": AS_OF,
        "sector": "technology",
    }

    # the registered model loads back with mlflow.pytorch and predicts identically, raw features in
    loaded = registry.load_model(info.model_name, info.version)
    example = torch.from_numpy(result.input_example)
    other = torch.from_numpy(np.random.default_rng(0).normal(size=(17, 10, 13)).astype(np.float32))
    with torch.no_grad():
        for x in (example, other):
            assert torch.equal(loaded(x), result.model(x))
    with registry_module._mlflow_uris(registry.resolved_tracking_uri()):
        model_info = mlflow.models.get_model_info(f"models:/{info.model_name}/{info.version}")
    assert model_info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 10, 13)

    # a second partition: a second run and version 2, version 1 kept
    again = _log(registry, trained, run_id="dagster-run-2")
    assert again.version == "2" and again.run_id != info.run_id
    assert len(client.search_runs([info.experiment_id])) == 2
    assert {str(v.version) for v in client.search_model_versions(f"name='{info.model_name}'")} == {"1", "2"}


def test_failure_inside_the_run_leaves_it_failed_and_registers_nothing(registry, trained, store, monkeypatch):
    def broken_plot(*args, **kwargs):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(registry_module, "spread_zbands_figure", broken_plot)
    with pytest.raises(
        ModelRegistryError,
        match=r"pair AAA-BBB \(energy, 2022-12-28\): MLflow run \w+ .* nothing registered: RuntimeError: disk full",
    ):
        _log(registry, trained, sector="energy")
    assert mlflow.active_run() is None
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pairs_trading/energy")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name='pairs_trading_gru_garch_energy'") == []


def test_unreachable_store_fails_with_a_clear_redacted_error(trained, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = ModelRegistry(tracking_uri="http://mlflow-user:s3cret@127.0.0.1:9", probe_timeout_s=2)
    with pytest.raises(
        ModelStoreUnavailableError, match=r"MLflow store http://\*\*\*@127\.0\.0\.1:9 is unreachable"
    ) as error:
        _log(registry, trained)
    assert "s3cret" not in str(error.value) and "mlflow-user" not in str(error.value)
    assert mlflow.active_run() is None


def test_store_resolution(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ModelStoreUnavailableError, match="no MLflow store configured"):
        ModelRegistry().resolved_tracking_uri()
    local = ModelRegistry(local_store_dir=str(store))
    assert local.resolved_tracking_uri() == f"sqlite:///{store.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert local.resolved_tracking_uri() == "http://tracking.example:5000"
    assert ModelRegistry(tracking_uri="sqlite:////x/y.db").resolved_tracking_uri() == "sqlite:////x/y.db"


def test_redact_tracking_uri():
    def redact_uri(uri):  # how the registry shows its store: no userinfo (a token may be the user), no query
        return redact_url(uri, keep_user=False, keep_query=False)

    assert redact_uri("postgresql://u:p@db:5432/mlflow?sslmode=require") == "postgresql://***@db:5432/mlflow"
    assert redact_uri("https://token@host/path") == "https://***@host/path"
    assert redact_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert ModelRegistry.run_name("KO-PEP", pd.Timestamp("2024-01-02 03:04:05").to_pydatetime()) == (
        "GRU_Training_KO-PEP_20240102_030405_v1"
    )


def test_walk_forward_runs_feed_the_trials_ledger(registry, tmp_path):
    from pairs_assets.quant.walkforward.ledger import trials_from_runs

    assert registry.walk_forward_runs() == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.csv").write_text("x\n1\n")
    for formation, sharpe in ((252, 0.7), (126, 0.2)):
        registry.log_walk_forward(
            run_name="walk_forward_t",
            artifacts_dir=tmp_path / "out",
            tags={},
            params={
                "wf.start": "1995-01-03",
                "wf.end": "2010-12-31",
                "wf.lag": 1,
                "wf.on_drop": "keep",
                "wf.max_holding": 20,
                "wf.gru": False,
                "wf.periods": [],
                "strategy.formation_window": formation,
            },
            metrics={"default.5bp.full.sharpe": sharpe, "baseline.5bp.full.sharpe": -0.2},
        )
    runs = registry.walk_forward_runs()
    assert [r["metrics"]["default.5bp.full.sharpe"] for r in runs] == [0.7, 0.2]  # oldest first
    trials = trials_from_runs(runs, ("1995-01-03", "2010-12-31"))
    assert sorted(t.sharpe[5.0] for t in trials) == [0.2, 0.7]


def test_a_refused_registration_leaves_the_run_failed_and_registers_nothing(registry, trained, store):
    """Issue 21 item 4: ``gru_models`` passes a check of its Dagster run as ``before_register``; an
    orphaned step (its run FAILED meanwhile) registers no version."""
    from pairs_assets.errors import RunClosedError

    spread, result = trained

    def closed():
        raise RunClosedError("run r-1 is FAILURE: registering pairs_trading_gru_garch_financial for AAA-BBB refused")

    with pytest.raises(RunClosedError, match="run r-1 is FAILURE"):
        registry.log_pair_model(
            sector="financial",
            pair_id="AAA-BBB",
            as_of=AS_OF,
            dagster_run_id="r-1",
            result=result,
            params={"gru_window": 1300},
            dataset_df=spread.to_frame("spread"),
            dataset_source="embedded:skfolio-sp500",
            fingerprint=FINGERPRINT,
            spread=spread,
            entry_z=2.0,
            before_register=closed,
        )
    assert mlflow.active_run() is None
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("pairs_trading/financial").experiment_id])
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name='pairs_trading_gru_garch_financial'") == []


def test_a_run_failed_while_its_version_is_created_keeps_no_version(registry, trained, store):
    """The registration's check and the registration are not one transaction (the Dagster run and
    the MLflow registry are separate stores): a run failed after ``before_register`` let the step
    through, while the version was being created, would keep a version of a failed run. The check
    runs again once the version exists; refused, the version is deleted and the MLflow run FAILED."""
    from pairs_assets.errors import RunClosedError

    spread, result = trained
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    calls: list[int] = []

    def open_then_closed():
        calls.append(len(client.search_model_versions("name='pairs_trading_gru_garch_energy'")))
        if len(calls) > 1:  # the run was failed while its version was being created
            raise RunClosedError("run r-2 is FAILURE: registering pairs_trading_gru_garch_energy for AAA-BBB refused")

    with pytest.raises(RunClosedError, match="run r-2 is FAILURE"):
        registry.log_pair_model(
            sector="energy",
            pair_id="AAA-BBB",
            as_of=AS_OF,
            dagster_run_id="r-2",
            result=result,
            params={"gru_window": 1300},
            dataset_df=spread.to_frame("spread"),
            dataset_source="embedded:skfolio-sp500",
            fingerprint=FINGERPRINT,
            spread=spread,
            entry_z=2.0,
            before_register=open_then_closed,
        )
    assert calls == [0, 1]  # checked before the registration, and after it with the version there
    assert mlflow.active_run() is None
    (run,) = client.search_runs(
        [client.get_experiment_by_name("pairs_trading/energy").experiment_id],
        filter_string="tags.dagster_run_id = 'r-2'",
    )
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name='pairs_trading_gru_garch_energy'") == []
