"""MLflow model store: one tracked run and one registered model version per pair and partition.

Why not ``dagster_mlflow.mlflow_tracking``: that legacy ``@resource`` binds one experiment to the
resource's config, opens one MLflow run per *Dagster run* (found again by the ``dagster_run_id``
tag) and drives MLflow's process-global state (``set_tracking_uri``, ``set_experiment``, the active
run, ``atexit.unregister(mlflow.end_run)``). Here each partition needs an experiment per sector and
a run per pair, closed when the step ends, so this small Pythonic resource follows its conventions
(the ``dagster_run_id`` tag, params in chunks of 100) without its global run.

Stores:
  * ``tracking_uri`` (field) → ``MLFLOW_TRACKING_URI`` (environment) → a local SQLite store
    ``sqlite:///<local_store_dir>/mlflow.db`` with artifacts under ``<local_store_dir>/artifacts``
    (MLflow 3's own default backend is SQLite; the plain file store is deprecated). No server.
  * The registry lives in the same store (``registry_uri = tracking_uri``).
  * Artifacts: ``artifact_root`` (``PAIRS_MLFLOW_ARTIFACTS``) for every new experiment; without it
    ``<local_store_dir>/artifacts`` for a database store, or the server's root for an HTTP store —
    never ``./mlruns`` of the working directory (``ModelRegistry._artifact_root``).

First use of a local SQLite store creates MLflow's schema (alembic migrations, seconds). Two runs
starting together (the 6 AM schedule launches one per sector) would both migrate the empty file and
one would fail ("Online migration expected to match one row"), so opening a SQLite store holds a
cross-process file lock (``<mlflow.db>.lock``) until both the tracking and the registry store answer;
a database store that still fails while its schema is being created elsewhere is retried once.

MLflow's fluent API (``start_run``, ``log_model``, ``register_model``) reads a process-global
tracking URI; it is set only for the duration of a call and restored afterwards
(:func:`_mlflow_uris`), so whatever the executor (``PAIRS_EXECUTOR``: the default ``in_process``
runs a job's steps one after another in one interpreter; ``multiprocess`` and ``celery`` run each in
its own) no step, and no other code in the process, is left pointing at another store.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from pairs_assets.errors import PairsError, RunClosedError
from pairs_assets.reporting import spread_zbands_figure, training_history_figure
from pairs_assets.util import redact_text, redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from pairs_assets.quant.gru import PairModelResult

EXPERIMENT_PREFIX = "pairs_trading"
MODEL_PREFIX = "pairs_trading_gru_garch"
RUN_NAME_VERSION = "v1"
MODEL_ARTIFACT_NAME = "model"
_MAX_PARAMS_PER_BATCH = 100
_MAX_PARAM_VALUE = 6000


class ModelRegistryError(PairsError, RuntimeError):
    """Logging or registering a pair's model failed; the message names the pair and the store."""


class ModelStoreUnavailableError(ModelRegistryError):
    """The MLflow tracking store cannot be reached (or is not configured)."""


@dataclass(frozen=True)
class RegisteredModelInfo:
    """Where a pair's model went: its run, its registered name and version."""

    run_id: str
    run_name: str
    model_name: str
    version: str
    experiment: str
    experiment_id: str
    model_uri: str  # "models:/<name>/<version>"
    tracking_uri: str  # credentials removed


def _artifact_uri(location: str) -> str:
    """A path as a ``file://`` URI (absolute); a URL (``s3://…``, ``file://…``) unchanged."""
    if "://" in location or location.startswith("mlflow-artifacts:"):
        return location
    return Path(location).expanduser().resolve().as_uri()


def _sqlite_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(unquote(uri[len("sqlite:///") :].split("?", 1)[0]))
    return None


def _sqlite_dir(uri: str) -> Path | None:
    path = _sqlite_file(uri)
    return None if path is None else path.parent


@contextlib.contextmanager
def _store_creation_lock(uri: str, timeout_s: float) -> Iterator[None]:
    """Hold ``<db>.lock`` (all processes) while a SQLite store is opened; no-op for other URIs.

    MLflow creates and migrates the schema when a ``SqlAlchemyStore`` is first built on an empty
    database, without any lock of its own; two processes doing so at once corrupt each other's
    alembic bookkeeping. Holding this lock while opening serializes only that first creation;
    afterwards opening is a table lookup and the lock is held for milliseconds.
    """
    db_file = _sqlite_file(uri)
    if db_file is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock_path = db_file.with_name(db_file.name + ".lock")
    lock = FileLock(str(lock_path), timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout as exc:
        raise ModelStoreUnavailableError(
            f"MLflow store {redact_url(uri, keep_user=False, keep_query=False)}: another process held {lock_path} for more than "
            f"{timeout_s:g} s while creating the store; if no pairs run is active, delete that file"
        ) from exc
    try:
        yield
    finally:
        lock.release()


_SCHEMA_RACE_TEXT = ("already exists", "alembic", "online migration", "database is locked")


def _is_schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is a failure of concurrent schema creation/migration."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = f"{type(current).__module__}.{type(current).__name__}"
        text = str(current).lower()
        if kind.startswith("alembic.") or (
            kind.startswith("sqlalchemy.") and any(marker in text for marker in _SCHEMA_RACE_TEXT)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _mlflow_uris(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``uri`` (tracking and registry), restoring globals and env after."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
    saved_registry = getattr(registry_utils, "_registry_uri", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ModelRegistry(dg.ConfigurableResource):
    """MLflow tracking + model registry for the per-pair GRU models.

    Experiment ``pairs_trading/<sector>``; run ``GRU_Training_<PAIR>_<YYYYMMDD_HHMMSS>_v1``;
    registered model ``pairs_trading_gru_garch_<sector>`` with one version per pair and partition
    (versions are never deleted or archived here: kept indefinitely).
    """

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; unset → MLFLOW_TRACKING_URI → local SQLite store."
    )
    local_store_dir: str = Field(
        "", description="Directory of the local store (mlflow.db + artifacts/) used when no URI is set."
    )
    artifact_root: str | None = Field(
        None,
        description="Artifact root for new experiments (PAIRS_MLFLOW_ARTIFACTS): a path or URL. Unset → "
        "<local_store_dir>/artifacts for a database store (never ./mlruns); an HTTP server's own root.",
    )
    probe_timeout_s: int = Field(5, ge=1, description="Seconds for the reachability probe of an HTTP store.")
    request_timeout_s: int = Field(60, ge=1, description="Seconds per HTTP request while logging/loading.")
    request_max_retries: int = Field(
        2, ge=0, description="HTTP retries while logging/loading (MLflow's default of 7 can wait minutes)."
    )
    store_lock_timeout_s: int = Field(
        600, ge=1, description="Seconds to wait for another process creating the local SQLite store's schema."
    )

    # --- where -------------------------------------------------------------------------------

    def resolved_tracking_uri(self) -> str:
        """The URI in use: the field, else MLFLOW_TRACKING_URI, else ``sqlite:///<local_store_dir>/mlflow.db``."""
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        if not self.local_store_dir:
            raise ModelStoreUnavailableError(
                "no MLflow store configured: set ModelRegistry.tracking_uri, MLFLOW_TRACKING_URI "
                "or ModelRegistry.local_store_dir"
            )
        store = Path(self.local_store_dir).expanduser().resolve()
        return f"sqlite:///{store / 'mlflow.db'}"

    def _artifact_root(self, uri: str) -> str | None:
        """Where new experiments keep artifacts (a URI), so they never land in ``./mlruns`` of the cwd.

        Parameters
        ----------
        uri : str
            The tracking URI.

        Returns
        -------
        str or None
            ``artifact_root`` when set; else ``<sqlite dir>/artifacts`` for a SQLite store, else
            ``<local_store_dir>/artifacts`` for any other database store (PostgreSQL, MySQL); None (the
            server's own ``--artifacts-destination``) for an HTTP tracking server.

        Raises
        ------
        ModelStoreUnavailableError
            A database store with neither an artifact root nor a local store folder (MLflow would write
            to the working directory).
        """
        if self.artifact_root:
            return _artifact_uri(self.artifact_root)
        sqlite_dir = _sqlite_dir(uri)
        if sqlite_dir is not None:
            return (sqlite_dir / "artifacts").as_uri()
        if uri.split(":", 1)[0].lower() in ("http", "https", "databricks", "databricks-uc", "uc"):
            return None
        if self.local_store_dir:
            return (Path(self.local_store_dir).expanduser().resolve() / "artifacts").as_uri()
        raise ModelStoreUnavailableError(
            f"MLflow store {redact_url(uri, keep_user=False, keep_query=False)} has no artifact root: set PAIRS_MLFLOW_ARTIFACTS "
            "(ModelRegistry.artifact_root), or MLflow would write artifacts under ./mlruns"
        )

    @staticmethod
    def experiment_name(sector: str) -> str:
        return f"{EXPERIMENT_PREFIX}/{sector}"

    @staticmethod
    def model_name(sector: str) -> str:
        return f"{MODEL_PREFIX}_{sector}"

    @staticmethod
    def run_name(pair_id: str, when: datetime | None = None) -> str:
        stamp = (when or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
        return f"GRU_Training_{pair_id}_{stamp}_{RUN_NAME_VERSION}"

    # --- reachability ------------------------------------------------------------------------

    def _http_limits(self) -> contextlib.AbstractContextManager[None]:
        return _env(
            {
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.request_timeout_s),
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.request_max_retries),
            }
        )

    def client(self) -> MlflowClient:
        """A client bound to the store, after checking it answers.

        Returns
        -------
        mlflow.MlflowClient

        Raises
        ------
        ModelStoreUnavailableError
            The store does not answer within ``probe_timeout_s`` (HTTP: no retries) or cannot be
            opened; the message names the URI without credentials.
        """
        from mlflow import MlflowClient

        uri = self.resolved_tracking_uri()
        sqlite_dir = _sqlite_dir(uri)
        probe_env = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.probe_timeout_s), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        attempts = 1 if uri.startswith(("http://", "https://", "databricks")) else 2
        for attempt in range(1, attempts + 1):
            try:
                if sqlite_dir is not None:
                    sqlite_dir.mkdir(parents=True, exist_ok=True)
                with _store_creation_lock(uri, self.store_lock_timeout_s):
                    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
                    with _env(probe_env):
                        # both stores are built (and the schema created) while the lock is held
                        client.search_experiments(max_results=1)
                        client.search_registered_models(max_results=1)
                return client
            except ModelStoreUnavailableError:
                raise
            except Exception as exc:  # any failure to open/answer means "unavailable"; re-raised with context
                if attempt < attempts and _is_schema_race(exc):
                    continue  # another process (not holding our lock) was creating the schema: open again
                raise ModelStoreUnavailableError(
                    f"MLflow store {redact_url(uri, keep_user=False, keep_query=False)} is unreachable: {type(exc).__name__}: "
                    f"{redact_text(str(exc), keep_user=False)[:500]}"
                ) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _experiment_id(self, client: MlflowClient, uri: str, sector: str) -> str:
        from mlflow.exceptions import MlflowException

        name = self.experiment_name(sector)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        root = self._artifact_root(uri)
        location = None if root is None else f"{root.rstrip('/')}/{name.replace('/', '__')}"
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
            return experiment.experiment_id

    # --- logging -----------------------------------------------------------------------------

    def log_pair_model(
        self,
        sector: str,
        pair_id: str,
        as_of: str,
        dagster_run_id: str,
        result: PairModelResult,
        params: dict[str, Any],
        dataset_df: pd.DataFrame,
        dataset_source: str,
        fingerprint: str,
        spread: pd.Series,
        entry_z: float,
        before_register: Callable[[], None] | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> RegisteredModelInfo:
        """Log one pair's training as an MLflow run, then register the model as a new version.

        The run is a ``with mlflow.start_run()`` block: closed FINISHED on success, FAILED on any
        exception. Registration is the block's last step, after every param, metric, artifact, input
        and the model were logged, so a failed run never has a registered version. The figures come
        from :mod:`pairs_assets.reporting`.

        Parameters
        ----------
        sector, pair_id, as_of : str
            The partition and the pair ("AAA-BBB"); ``as_of`` is the as-of session.
        dagster_run_id : str
            Tagged on the run (``dagster_run_id``, as dagster-mlflow does).
        result : PairModelResult
            :func:`pairs_assets.quant.gru.fit_pair_model`'s result.
        params : dict
            The caller's settings, logged with the model's own hyperparameters and data parameters (the
            caller's win on a name clash).
        dataset_df : pandas.DataFrame
        dataset_source, fingerprint : str
            The training input, logged as the run's dataset (``mlflow.data.from_pandas`` +
            ``log_input``; digest = fingerprint[:36], the full fingerprint as a tag).
        spread : pandas.Series
        entry_z : float
            For the spread-with-z-bands figure.
        before_register : callable, optional
            Raises when the caller's Dagster run is no longer open (see Raises).
        extra_tags : mapping, optional
            More run tags (the Dagster run's ``pairs/strategies`` and ``pairs/strategies_fingerprint``:
            which strategies file the run saw).

        Returns
        -------
        RegisteredModelInfo

        Raises
        ------
        ModelStoreUnavailableError
            The store cannot be reached (nothing was started).
        ModelRegistryError
            Logging or registration failed (the run is FAILED, nothing registered).
        RunClosedError
            ``before_register`` refused (the caller's Dagster run was failed or canceled meanwhile):
            the MLflow run is FAILED, nothing registered. It is called before the registration and
            again after it: a version created while the run was being failed is deleted.
        """
        import mlflow
        import mlflow.data
        import mlflow.pytorch
        import torch
        from mlflow.entities import Metric
        from mlflow.models import infer_signature

        from resources import mlflow_dataset

        uri = self.resolved_tracking_uri()
        client = self.client()
        experiment = self.experiment_name(sector)
        model_name = self.model_name(sector)
        run_name = self.run_name(pair_id)
        tags = {
            "pair": pair_id,
            "sector": sector,
            "as_of_session": as_of,
            "dagster_run_id": dagster_run_id,
            "input_fingerprint": fingerprint,
            "model_family": "gru_garch",
            **{str(k): str(v) for k, v in (extra_tags or {}).items()},
        }
        all_params = {**result.params(), **params}
        all_params = {str(k): str(v)[:_MAX_PARAM_VALUE] for k, v in sorted(all_params.items())}

        model = result.model.to("cpu").eval()
        example = np.ascontiguousarray(result.input_example, dtype=np.float32)
        with torch.no_grad():
            probs = model(torch.from_numpy(example)).numpy()
        signature = infer_signature(example, probs)
        torch_version = torch.__version__.split("+")[0]

        run_id = ""
        try:
            experiment_id = self._experiment_id(client, uri, sector)
            with (
                self._http_limits(),
                _mlflow_uris(uri),
                mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run,
            ):
                run_id = run.info.run_id
                items = list(all_params.items())
                for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
                    mlflow.log_params(dict(items[start : start + _MAX_PARAMS_PER_BATCH]))
                mlflow.log_metrics(result.flat_metrics())
                now = int(datetime.now(UTC).timestamp() * 1000)
                history = [
                    Metric(key, float(entry[key]), now, int(entry["epoch"]))
                    for entry in result.history
                    for key in ("train_loss", "val_loss")
                ]
                for start in range(0, len(history), 1000):
                    client.log_batch(run_id, metrics=history[start : start + 1000])
                mlflow.log_dict(result.scaler.to_dict(), "scaler.json")
                mlflow.log_figure(
                    training_history_figure(result.history, result.best_epoch, f"{pair_id} GRU training ({as_of})"),
                    "training_history.png",
                )
                spread_title = f"{pair_id} spread and ±{entry_z:g} z bands ({as_of})"
                mlflow.log_figure(
                    spread_zbands_figure(spread, entry_z, result.rule_z_window, spread_title), "spread_zbands.png"
                )
                dataset = mlflow.data.from_pandas(
                    dataset_df,
                    source=mlflow_dataset.dataset_source(dataset_source),
                    name=f"{pair_id}@{as_of}",
                    digest=fingerprint[:36],
                )
                mlflow.log_input(dataset, context="training", tags={"fingerprint": fingerprint})
                with warnings.catch_warnings():
                    # torch.export notes nn.GRU's cached flat weights; the exported graph is exact
                    warnings.filterwarnings("ignore", message=r"The tensor attributes self\.gru\._flat_w")
                    model_info = mlflow.pytorch.log_model(
                        model,
                        name=MODEL_ARTIFACT_NAME,
                        signature=signature,
                        input_example=example,
                        pip_requirements=[f"torch=={torch_version}"],
                    )
                # last: only a run whose logging fully succeeded gets a registered version, and
                # only while the caller still may (its Dagster run not failed or canceled meanwhile)
                if before_register is not None:
                    before_register()
                version = mlflow.register_model(
                    model_info.model_uri,
                    model_name,
                    tags={"pair": pair_id, "as_of_session": as_of, "sector": sector, "run_id": run_id},
                )
                if before_register is not None:
                    # and again once the version exists: a run failed while it was being created
                    # takes it back, so a version kept was created before its run closed, never after
                    try:
                        before_register()
                    except RunClosedError:
                        client.delete_model_version(model_name, str(version.version))
                        raise
        except RunClosedError:  # the MLflow run is FAILED, nothing registered; the message says why
            raise
        except Exception as exc:  # the run is already FAILED; add the pair and store for the caller
            raise ModelRegistryError(
                f"pair {pair_id} ({sector}, {as_of}): MLflow run {run_id or '(not started)'} in "
                f"{redact_url(uri, keep_user=False, keep_query=False)} failed, nothing registered: {type(exc).__name__}: "
                f"{redact_text(str(exc), keep_user=False)[:500]}"
            ) from exc
        return RegisteredModelInfo(
            run_id=run_id,
            run_name=run_name,
            model_name=model_name,
            version=str(version.version),
            experiment=experiment,
            experiment_id=experiment_id,
            model_uri=f"models:/{model_name}/{version.version}",
            tracking_uri=redact_url(uri, keep_user=False, keep_query=False),
        )

    def log_walk_forward(
        self,
        run_name: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts_dir: str | Path,
        tags: dict[str, str],
    ) -> str:
        """One MLflow run in experiment ``pairs_trading/walk_forward``: settings as params, the
        summary as metrics, the output folder as artifacts. Returns the run id.

        Non-finite metrics are skipped (MLflow stores no NaN meaningfully).
        """
        import math

        import mlflow

        client = self.client()
        uri = self.resolved_tracking_uri()
        experiment_id = self._experiment_id(client, uri, "walk_forward")
        items = sorted((str(k), str(v)[:_MAX_PARAM_VALUE]) for k, v in params.items())
        finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        with (
            self._http_limits(),
            _mlflow_uris(uri),
            mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run,
        ):
            for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
                mlflow.log_params(dict(items[start : start + _MAX_PARAMS_PER_BATCH]))
            keys = sorted(finite)
            for start in range(0, len(keys), 500):
                mlflow.log_metrics({k: finite[k] for k in keys[start : start + 500]})
            mlflow.log_artifacts(str(artifacts_dir))
            return run.info.run_id

    def walk_forward_runs(self) -> list[dict[str, Any]]:
        """Every finished run of experiment ``pairs_trading/walk_forward``, oldest first, as plain
        records for the trials ledger (:func:`pairs_assets.quant.walkforward.ledger.trials_from_runs`):
        ``{"run_id", "start_time", "params", "metrics"}``. Empty when the experiment does not exist."""
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name("walk_forward"))
        if experiment is None:
            return []
        records, token = [], None
        with self._http_limits():
            while True:
                page = client.search_runs(
                    [experiment.experiment_id],
                    filter_string="attributes.status = 'FINISHED'",
                    max_results=1000,
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
                records.extend(
                    {
                        "run_id": r.info.run_id,
                        "start_time": r.info.start_time or 0,
                        "params": dict(r.data.params),
                        "metrics": dict(r.data.metrics),
                    }
                    for r in page
                )
                token = page.token
                if not token:
                    return records

    def version_exists(self, model_name: str, version: str | int) -> bool:
        """Whether ``model_name`` version ``version`` is registered (the store must answer)."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.get_model_version(model_name, str(version))
        except MlflowException:
            return False
        return True

    def load_model(self, model_name: str, version: str | int) -> Any:
        """The registered torch module (raw features ``[batch, seq, n_feat]`` float32 → probabilities)."""
        import mlflow.pytorch

        uri = self.resolved_tracking_uri()
        self.client()
        with self._http_limits(), _mlflow_uris(uri):
            return mlflow.pytorch.load_model(f"models:/{model_name}/{version}")
