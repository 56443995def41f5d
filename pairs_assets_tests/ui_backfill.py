"""Drive backfills the way the UI does: the webserver's GraphQL ``launchPartitionBackfill`` mutation on a
workspace over an in-process code location, then one iteration of the backfill daemon.

Used by ``pairs_assets_tests/assets/test_ui_backfill.py`` and
``pairs_assets_tests/benchmarks/bench_ui_backfill.py``. The code location is the project's own
``build_definitions`` for a :class:`Paths` given by the caller (written to a small Python file the
workspace loads), on a temporary Dagster instance whose runs are queued (``QueuedRunCoordinator``) so
that a daemon iteration shows which runs a backfill creates without executing them, or launched
synchronously in this process (``SyncInMemoryRunLauncher``) when a test wants them executed.

What the UI sends:

* the asset graph's *Materialize all* → partitions dialog: ``assetSelection`` (the group's asset keys)
  and ``partitionNames`` (the selected ``date|sector`` keys) — an asset backfill;
* the job page's *Materialize…* / the partition-set backfill: ``selector`` (the job's partition set
  ``<job>_partition_set``) and ``partitionNames`` — a job backfill.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

from pairs_assets.settings import Paths

LOCATION = "pairs"

LAUNCH_PARTITION_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

QUEUED = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
SYNC = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "run_launcher": {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    },
}


def _code_location_source(p: Paths) -> str:
    return (
        "from pathlib import Path\n"
        "from pairs_assets.definitions import build_definitions\n"
        "from pairs_assets.settings import Paths\n\n"
        "defs = build_definitions(Paths(\n"
        f"    home=Path({str(p.home)!r}), database_url={p.database_url!r}, bars_file=None,\n"
        f"    universe_file=Path({str(p.universe_file)!r}), history_start={p.history_start!r},\n"
        f"    mlflow_tracking_uri={p.mlflow_tracking_uri!r},\n"
        "))\n"
    )


PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def project_instance_config() -> dict:
    """The instance settings ``pairs init`` installs (the project's dagster.yaml: its SQLite event log
    that writes in batches), for a temporary instance that should behave as a user's does."""
    import yaml

    return yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())


@contextmanager
def ui_workspace(
    p: Paths, *, execute_runs: bool = False, project_instance: bool = False
) -> Iterator[WorkspaceProcessContext]:
    """A temporary instance and a workspace over the project's definitions for ``p``, in-process.

    ``execute_runs``: runs launch synchronously in this process (else they are queued, not run).
    ``project_instance``: the instance is configured as ``pairs init`` makes it (else Dagster's
    test defaults).
    """
    with tempfile.TemporaryDirectory(prefix="pairs_ui_location_") as folder:
        location = Path(folder) / "pairs_location.py"
        location.write_text(_code_location_source(p))
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(python_file=str(location), attribute="defs", working_directory=folder),
            location_name=LOCATION,
        )
        overrides = {**(project_instance_config() if project_instance else {}), **(SYNC if execute_runs else QUEUED)}
        with dg.instance_for_test(overrides=overrides) as instance:
            with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
                entry = context.create_request_context().get_code_location_entries()[LOCATION]
                if entry.load_error is not None:
                    raise RuntimeError(f"the code location did not load: {entry.load_error}")
                yield context


@dataclass(frozen=True)
class Launched:
    backfill_id: str
    seconds: float


def _launch(context: WorkspaceProcessContext, params: dict) -> Launched:
    request = context.create_request_context()
    start = time.perf_counter()
    result = execute_dagster_graphql(request, LAUNCH_PARTITION_BACKFILL, {"backfillParams": params})
    seconds = time.perf_counter() - start
    data = result.data["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(
            f"launchPartitionBackfill answered {data['__typename']}: {data.get('message')}\n{data.get('stack', '')}"
        )
    return Launched(data["backfillId"], seconds)


def launch_asset_backfill(
    context: WorkspaceProcessContext, assets: Sequence[str], partition_names: Sequence[str]
) -> Launched:
    """The asset graph's *Materialize all* → partitions: ``assets`` × ``partition_names``."""
    return _launch(
        context,
        {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": list(partition_names)},
    )


def launch_job_backfill(
    context: WorkspaceProcessContext, job: str, partition_names: Sequence[str], assets: Sequence[str] | None = None
) -> Launched:
    """The job page's backfill of ``job`` over ``partition_names``: its partition set, and — as the job
    page's *Materialize…* dialog sends it — the job's ``assets``."""
    params = {
        "selector": {
            "partitionSetName": f"{job}_partition_set",
            "repositorySelector": {"repositoryName": "__repository__", "repositoryLocationName": LOCATION},
        },
        "partitionNames": list(partition_names),
    }
    if assets:
        params["assetSelection"] = [{"path": [a]} for a in assets]
    return _launch(context, params)


def run_backfill_daemon_once(context: WorkspaceProcessContext) -> list:
    """One iteration of the backfill daemon (what ``dagster-daemon`` runs every few seconds): the
    errors it reported (``None`` entries are its progress markers)."""
    return [e for e in execute_backfill_iteration(context, logging.getLogger("pairs_ui_backfill")) if e is not None]


def targeted_partitions(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, set[str]]:
    """Asset → the partition keys an asset backfill targets."""
    backfill = instance.get_backfill(backfill_id)
    subset = backfill.asset_backfill_data.target_subset
    return {
        key.to_user_string(): {str(k) for k in subset.get_partitions_subset(key).get_partition_keys()}
        for key in sorted(subset.asset_keys, key=lambda k: k.to_user_string())
    }


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list:
    """The runs a backfill created (oldest first)."""
    return list(reversed(instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))))
