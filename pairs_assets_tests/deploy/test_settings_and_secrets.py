"""Production settings: credentials reach the UI only as variable names, errors mask passwords,
the executor follows PAIRS_EXECUTOR, the IO manager's base may be an fsspec URL, and MLflow's
artifact root is never the working directory."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from pairs_assets.definitions import build_definitions
from pairs_assets.jobs import executor_for
from pairs_assets.settings import Paths
from pairs_assets.util import redact_url
from resources.dagster_storage import psycopg2_url
from resources.io_manager import PartitionedFileIOManager, partition_path
from resources.market_data import MarketDataStore, StoreUnavailableError
from resources.model_registry import ModelRegistry, ModelStoreUnavailableError

SECRETS = {
    "PAIRS_DATABASE_URL": "postgresql://pairs:store-s3cret@127.0.0.1:5432/market",
    "MLFLOW_TRACKING_URI": "postgresql://mlflow:mlflow-s3cret@127.0.0.1:5432/mlflow",
    "PAIRS_CELERY_BROKER": "amqp://desk:broker-s3cret@127.0.0.1:5672//",
    "PAIRS_CELERY_BACKEND": "redis://:backend-s3cret@127.0.0.1:6379/1",
    "PAIRS_EXECUTOR": "celery",
}


def _production_defs(monkeypatch, tmp_path) -> dg.Definitions:
    env = {**SECRETS, "PAIRS_HOME": str(tmp_path)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return build_definitions(Paths.from_env(env))


def test_ui_resource_config_and_job_snapshots_show_no_credential(monkeypatch, tmp_path):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    defs = _production_defs(monkeypatch, tmp_path)
    snap = RepositorySnap.from_def(defs.get_repository_def())
    text = serialize_value(snap)  # everything the webserver receives from the code location
    for secret in ("store-s3cret", "mlflow-s3cret", "broker-s3cret", "backend-s3cret"):
        assert secret not in text
    resources = {r.name: r.configured_values for r in snap.resources}
    assert resources["store"]["database_url"].name == "PAIRS_DATABASE_URL"
    assert resources["model_registry"]["tracking_uri"].name == "MLFLOW_TRACKING_URI"
    assert defs.resolve_job_def("daily_pairs").executor_def.name == "celery"
    assert defs.resolve_job_def("signal_job").executor_def.name == "in_process"


def test_resources_resolve_the_environment_values_at_run_time(monkeypatch, tmp_path):
    defs = _production_defs(monkeypatch, tmp_path)
    job = defs.resolve_job_def("daily_pairs")
    store = job.resource_defs["store"]
    # the EnvVar resolves to the real URL inside the run (and only there)
    with dg.build_resources({"store": store}) as built:
        assert built.store.database_url == SECRETS["PAIRS_DATABASE_URL"]


def test_local_default_has_no_env_indirection_and_runs_in_process(tmp_path):
    p = Paths.from_env({"PAIRS_HOME": str(tmp_path)})
    defs = build_definitions(p)
    assert defs.resolve_job_def("daily_pairs").executor_def.name == "in_process"
    assert p.url_env_vars == frozenset()
    assert p.io_manager_base == str(tmp_path)


def test_celery_without_broker_and_unknown_executor_are_named_errors():
    with pytest.raises(ValueError, match="PAIRS_CELERY_BROKER"):
        executor_for("celery", "")
    with pytest.raises(ValueError, match="PAIRS_EXECUTOR must be one of"):
        executor_for("kubernetes")


def test_connection_errors_mask_the_password():
    url = "postgresql://pairs:hunter2@127.0.0.1:1/market"  # nothing listens on port 1
    with pytest.raises(StoreUnavailableError) as info:
        _ = MarketDataStore(database_url=url).engine
    message = str(info.value)
    assert "hunter2" not in message and "pairs:***@127.0.0.1:1/market" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # tracebacks omit the raw error
    assert redact_url("not a url://u:hunter2@h/x") == "not a url://u:***@h/x"
    assert redact_url("amqp://desk:hunter2@mq:5672/pairs") == "amqp://desk:***@mq:5672/pairs"
    assert redact_url("redis://:hunter2@127.0.0.1:6379/1") == "redis://:***@127.0.0.1:6379/1"


def test_pairs_worker_needs_a_broker_and_mlflow_server_its_stores(monkeypatch):
    from click.testing import CliRunner

    from pairs_assets import settings
    from pairs_assets.cli import main

    monkeypatch.delenv("PAIRS_CELERY_BROKER", raising=False)
    monkeypatch.delenv("PAIRS_MLFLOW_BACKEND_URI", raising=False)
    settings.paths.cache_clear()
    try:
        result = CliRunner().invoke(main, ["worker"])
        assert result.exit_code == 2 and "PAIRS_CELERY_BROKER" in result.output
        result = CliRunner().invoke(main, ["mlflow-server"])
        assert result.exit_code == 2 and "PAIRS_MLFLOW_BACKEND_URI" in result.output
    finally:
        settings.paths.cache_clear()


def test_psycopg2_url_maps_only_the_plain_scheme():
    assert psycopg2_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg2://u:p@h:5432/d"
    assert psycopg2_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert psycopg2_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"


def test_io_base_setting_accepts_a_shared_path_or_an_fsspec_url(tmp_path):
    shared = Paths.from_env({"PAIRS_HOME": str(tmp_path / "home"), "PAIRS_IO_BASE": str(tmp_path / "nfs")})
    assert shared.io_manager_base == str(tmp_path / "nfs") and shared.outputs_dir == tmp_path / "nfs"
    as_file_url = Paths.from_env({"PAIRS_HOME": str(tmp_path / "home"), "PAIRS_IO_BASE": f"file://{tmp_path}/nfs"})
    assert as_file_url.io_manager_base == str(tmp_path / "nfs")
    remote = Paths.from_env({"PAIRS_HOME": str(tmp_path / "home"), "PAIRS_IO_BASE": "s3://desk-bucket/pairs/"})
    assert remote.io_manager_base == "s3://desk-bucket/pairs"
    assert remote.outputs_dir == tmp_path / "home"  # local files (trading config JSON) stay local


@pytest.mark.parametrize("base", ["memory://pairs-io-test/outputs", "local"])
def test_io_manager_round_trips_partitions_through_upath(base, tmp_path):
    base = str(tmp_path / "outputs") if base == "local" else base
    manager = PartitionedFileIOManager(base_dir=base)
    frame = pd.DataFrame({"pair_id": ["AAPL-MSFT"], "hedge_ratio": [0.9]})
    key = dg.AssetKey("cointegrated_pairs")
    out = dg.build_output_context(asset_key=key, partition_key="2022-12-28|technology")
    manager.handle_output(out, frame)
    manager.handle_output(
        dg.build_output_context(asset_key=dg.AssetKey("doc"), partition_key="2022-12-28|technology"), {"b": 1, "a": 2}
    )
    path = partition_path(base, "cointegrated_pairs", "2022-12-28|technology", ".parquet")
    assert path.exists() and str(path).startswith(base)
    loaded = manager.load_input(dg.build_input_context(asset_key=key, partition_key="2022-12-28|technology"))
    pd.testing.assert_frame_equal(loaded, frame)
    doc = manager.load_input(
        dg.build_input_context(asset_key=dg.AssetKey("doc"), partition_key="2022-12-28|technology")
    )
    assert doc == {"a": 2, "b": 1}
    with pytest.raises(
        FileNotFoundError, match=r"cointegrated_pairs partition 2022-12-29\|technology has not been materialized"
    ):
        manager.load_input(dg.build_input_context(asset_key=key, partition_key="2022-12-29|technology"))


def test_mlflow_artifact_root_is_never_the_working_directory(tmp_path):
    pg = "postgresql://mlflow:pw@db:5432/mlflow"
    explicit = ModelRegistry(tracking_uri=pg, artifact_root=str(tmp_path / "art"))
    assert explicit._artifact_root(pg) == (tmp_path / "art").as_uri()
    assert ModelRegistry(tracking_uri=pg, artifact_root="s3://b/mlflow")._artifact_root(pg) == "s3://b/mlflow"
    local = ModelRegistry(tracking_uri=pg, local_store_dir=str(tmp_path / "mlflow"))
    assert local._artifact_root(pg) == (tmp_path / "mlflow" / "artifacts").as_uri()
    sqlite = f"sqlite:///{tmp_path}/m/mlflow.db"
    assert ModelRegistry(tracking_uri=sqlite)._artifact_root(sqlite) == (tmp_path / "m" / "artifacts").as_uri()
    assert ModelRegistry(tracking_uri="http://127.0.0.1:5000")._artifact_root("http://127.0.0.1:5000") is None
    with pytest.raises(ModelStoreUnavailableError, match="PAIRS_MLFLOW_ARTIFACTS") as info:
        ModelRegistry(tracking_uri=pg)._artifact_root(pg)
    assert "pw" not in str(info.value)
