"""The production topology on this machine: deploy/dagster.yaml on PostgreSQL, the run queue, a gRPC
code server, the Celery executor with a `pairs worker`, MLflow on PostgreSQL with an artifact root.

One deployment (module fixture) serves every test here, as it would a desk: three runs are
submitted to the queue — technology twice and industrial once — and one pass of the daemon's
queued-run coordinator starts technology and industrial while the second technology run waits
behind the per-sector limit. Steps execute on the worker; the trading config must equal the
in-process one. Processes run from an empty working directory that must stay empty. The bars are
the planted file (real NYSE sessions, AAPL/MSFT cointegrated), so the GRU and MLflow stages run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from pairs_assets.settings import PACKAGE_DIR
from pairs_assets_tests.assets.graph_harness import materialize, preload_history
from pairs_assets_tests.deploy import services
from pairs_assets_tests.planted import planted_closes, write_bars_file
from pairs_assets_tests.strategies import SEED
from resources.bar_sources import FileBarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEPLOY = PACKAGE_DIR.parent / "deploy"
AS_OF = "2022-12-28"
FAST = {"gru_max_epochs": 3, "gru_hidden": 16}
SECTORS = {"technology": ["AAPL", "AMD", "MSFT"], "industrial": ["GE"]}
BIN = Path(sys.executable).parent


def _run_config() -> dict:
    """The seed's settings (the planted pair is found by its daily 60-session selection), as run config."""
    from pairs_assets.settings import PRESETS

    return {"resources": {"strategy": {"config": {**PRESETS["seed"], **FAST}}}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    import dagster as dg
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    root = tmp_path_factory.mktemp("deploy")
    home, dagster_home, artifacts, cwd = (root / n for n in ("home", "dagster_home", "artifacts", "cwd"))
    for folder in (home, dagster_home, cwd):
        folder.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", dagster_home / "dagster.yaml")

    with services.postgres_databases("dagster", "store", "mlflow") as dbs, services.rabbitmq_vhost() as broker:
        port = services.free_port()
        worker_name = f"pairs-test-{port}@%h"
        env = {
            **os.environ,
            "PAIRS_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            # plain scheme on purpose: it needs psycopg 3 (pyproject)
            "PAIRS_DAGSTER_DB_URL": services.plain_url(dbs["dagster"]),
            "PAIRS_DATABASE_URL": services.plain_url(dbs["store"]),  # psycopg 3
            "MLFLOW_TRACKING_URI": services.plain_url(dbs["mlflow"]),
            "PAIRS_MLFLOW_ARTIFACTS": str(artifacts),
            "PAIRS_EXECUTOR": "celery",
            "PAIRS_CELERY_BROKER": broker,
            "PAIRS_CODE_SERVER_HOST": "127.0.0.1",
            "PAIRS_CODE_SERVER_PORT": str(port),
            "DAGSTER_CLI_API_GRPC_STARTUP_TIMEOUT": "600",
            # a lost Celery worker fails its run after 30 s of silence (default 300): the last test
            "PAIRS_STEP_HEARTBEAT_S": "2",
            "PAIRS_STEP_HEARTBEAT_WINDOW_S": "30",
        }
        bars_file = write_bars_file(root / "planted_bars.csv", planted_closes())
        env["PAIRS_BARS_FILE"] = bars_file
        source = FileBarSource(path=bars_file)
        for symbols in SECTORS.values():
            preload_history(dbs["store"], source, symbols, AS_OF, SEED.history_sessions)
        # MLflow creates its schema on first contact; do it once, before concurrent steps do
        ModelRegistry(tracking_uri=env["MLFLOW_TRACKING_URI"], artifact_root=str(artifacts)).client()

        logs = [str(root / "worker.log"), str(root / "code_server.log")]
        worker = services.start(
            [sys.executable, "-m", "pairs_assets.cli", "worker", "-n", worker_name, "-c", "2", "-l", "WARNING"],
            env,
            str(cwd),
            logs[0],
        )
        code_server_cmd = [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-m",
            "pairs_assets.definitions",
            "--location-name",
            "pairs_assets",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        code_server = services.start(code_server_cmd, env, str(cwd), logs[1])
        servers = {"code_server": code_server}  # a test may replace it (a lost machine's code server restarted)
        saved = {
            k: os.environ.get(k) for k in ("PAIRS_DAGSTER_DB_URL", "PAIRS_CODE_SERVER_HOST", "PAIRS_CODE_SERVER_PORT")
        }
        os.environ.update({k: env[k] for k in saved})
        try:
            from pairs_assets.instance.worker import make_worker_app

            app = make_worker_app(broker)
            services.wait_until(
                lambda: app.control.ping(timeout=1.0), 180, "the Celery worker to answer", procs=[worker], logs=logs
            )
            instance = dg.DagsterInstance.from_config(str(dagster_home))
            target = WorkspaceFileTarget(paths=[str(DEPLOY / "workspace.yaml")])

            def _loaded():
                with WorkspaceProcessContext(instance, target) as ctx:
                    request = ctx.create_request_context()
                    return not request.get_code_location_error("pairs_assets") and request.has_code_location(
                        "pairs_assets"
                    )

            services.wait_until(_loaded, 300, "the code server", poll=2.0, procs=[code_server], logs=logs)
            yield {
                "instance": instance,
                "target": target,
                "env": env,
                "dbs": dbs,
                "home": home,
                "cwd": cwd,
                "artifacts": artifacts,
                "worker": worker,
                "logs": logs,
                "broker": broker,
                "source": source,
                "servers": servers,
                "code_server_cmd": code_server_cmd,
                "root": root,
            }
            instance.dispose()
        finally:
            services.stop(servers["code_server"])
            services.stop(worker)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def queued_runs(deployment):
    """Submit technology, technology, industrial; one daemon pass; wait for the started runs."""
    from dagster._cli.job import _create_run
    from dagster._core.storage.dagster_run import DagsterRunStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from pairs_assets.partitions import partition_key
    from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY

    instance = deployment["instance"]
    with WorkspaceProcessContext(instance, deployment["target"]) as ctx:
        request = ctx.create_request_context()
        location = request.get_code_location("pairs_assets")
        repo = next(iter(location.get_repositories().values()))
        job = repo.get_full_job("daily_pairs")
        run_ids = {}
        for label, sector in (("tech_a", "technology"), ("tech_b", "technology"), ("industrial", "industrial")):
            key = partition_key(AS_OF, sector)
            run = _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repo,
                remote_job=job,
                run_config=_run_config(),
                tags=EMBEDDED_DAILY.get_tags_for_partition_key(key),
                op_selection=None,
                run_id=None,
            )
            instance.submit_run(run.run_id, request)
            run_ids[label] = run.run_id
        submitted = {label: instance.get_run_by_id(rid).status for label, rid in run_ids.items()}
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        list(daemon.run_iteration(ctx))
        after_first_pass = {label: instance.get_run_by_id(rid).status for label, rid in run_ids.items()}
        list(daemon.run_iteration(ctx))  # technology still holds its slot: tech_b must stay queued
        after_second_pass = instance.get_run_by_id(run_ids["tech_b"]).status

        def _done():
            runs = [instance.get_run_by_id(run_ids[k]) for k in ("tech_a", "industrial")]
            return all(r.is_finished for r in runs)

        services.wait_until(
            _done, 900, "the two started runs", poll=1.0, procs=[deployment["worker"]], logs=deployment["logs"]
        )
        still_queued = instance.get_run_by_id(run_ids["tech_b"]).status
        instance.report_run_canceled(instance.get_run_by_id(run_ids["tech_b"]), "test: only its queueing is checked")
    return {
        "ids": run_ids,
        "submitted": submitted,
        "after_first_pass": after_first_pass,
        "after_second_pass": after_second_pass,
        "still_queued": still_queued,
        "QUEUED": DagsterRunStatus.QUEUED,
    }


def _writes_of(instance, run_id, asset_key) -> str:
    """An assertion message: the run's status, its run-level and ``asset_key`` step events, and the
    catalog's materializations of ``asset_key`` by the run — storage id, kind, step, pid, time of
    each — so a write into a closed run shows who made it and when against the run's failure."""
    from dagster import DagsterEventType

    step = asset_key.to_user_string()
    lines = [f"run {run_id} is {instance.get_run_by_id(run_id).status.value}; its run and {step} events:"]
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        if entry.is_dagster_event and entry.step_key in (None, step):
            event = entry.dagster_event
            lines.append(
                f"  {record.storage_id} {event.event_type_value} {entry.step_key} pid={event.pid} t={entry.timestamp:.3f}"
            )
    catalog = instance.fetch_materializations(asset_key, limit=1000).records
    lines.append(f"catalog {DagsterEventType.ASSET_MATERIALIZATION.value} of {step} by the run:")
    for record in catalog:
        if record.run_id == run_id:
            entry = record.event_log_entry
            lines.append(f"  {record.storage_id} pid={entry.dagster_event.pid} t={entry.timestamp:.3f}")
    return "\n".join(lines)


def _failure_text(instance, run_id) -> str:
    lines = []
    for record in instance.all_logs(run_id):
        if record.is_dagster_event and record.dagster_event.is_step_failure:
            error = record.dagster_event.event_specific_data.error
            lines.append(f"{record.step_key}: {error.to_string() if error else ''}")
        elif record.is_dagster_event and record.dagster_event.event_type_value in (
            "PIPELINE_FAILURE",
            "RUN_FAILURE",
            "ENGINE_EVENT",
        ):
            lines.append(record.message or "")
    return "\n".join(lines)[-5000:]


def test_second_run_of_a_sector_queues_behind_the_per_sector_limit(queued_runs):
    from dagster._core.storage.dagster_run import DagsterRunStatus

    assert set(queued_runs["submitted"].values()) == {DagsterRunStatus.QUEUED}
    first = queued_runs["after_first_pass"]
    assert first["tech_a"] != DagsterRunStatus.QUEUED and first["industrial"] != DagsterRunStatus.QUEUED
    assert first["tech_b"] == DagsterRunStatus.QUEUED, "same sector: must wait (limit 1 per sector)"
    assert queued_runs["after_second_pass"] == DagsterRunStatus.QUEUED


def test_daily_runs_succeed_and_runs_events_checks_are_in_postgres(deployment, queued_runs):
    instance, ids = deployment["instance"], queued_runs["ids"]
    for label in ("tech_a", "industrial"):
        run = instance.get_run_by_id(ids[label])
        assert run.is_success, f"{label}: {run.status}\n{_failure_text(instance, ids[label])}"
    engine = sa.create_engine(deployment["dbs"]["dagster"])
    try:
        with engine.connect() as conn:
            runs = dict(conn.execute(sa.text("select run_id, status from runs")).all())
            events = conn.execute(
                sa.text("select dagster_event_type, count(*) from event_logs where run_id = :r group by 1"),
                {"r": ids["tech_a"]},
            ).all()
    finally:
        engine.dispose()
    assert runs[ids["tech_a"]] == "SUCCESS" and runs[ids["industrial"]] == "SUCCESS"
    assert runs[ids["tech_b"]] == "CANCELED"
    counts = dict(events)
    assert counts.get("ASSET_MATERIALIZATION", 0) >= 7
    assert counts.get("ASSET_CHECK_EVALUATION", 0) >= 1
    assert counts.get("PIPELINE_SUCCESS", 0) + counts.get("RUN_SUCCESS", 0) == 1  # stored under its legacy name


def test_steps_executed_in_the_celery_worker_process(deployment, queued_runs):
    from dagster import DagsterEventType

    instance, run_id = deployment["instance"], queued_runs["ids"]["tech_a"]
    records = instance.all_logs(run_id)
    run_pid = next(
        r.dagster_event.pid
        for r in records
        if r.dagster_event and r.dagster_event.event_type == DagsterEventType.RUN_START
    )
    worker_pids = services.process_tree(deployment["worker"].pid)
    step_starts = [r for r in records if r.dagster_event and r.dagster_event.event_type == DagsterEventType.STEP_START]
    assert len(step_starts) >= 7
    assert {r.dagster_event.pid for r in step_starts} <= worker_pids, "every step must start in the worker's processes"
    assert run_pid not in worker_pids
    handed = [r for r in records if r.message and "in celery worker" in r.message]
    assert len(handed) == len(step_starts)


def test_celery_trading_config_equals_in_process(deployment, queued_runs, tmp_path):
    from pairs_assets.home import PairsHome
    from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE, StrategySettings

    celery_doc = json.loads((deployment["home"] / "trading_config" / AS_OF / "technology.json").read_text())
    assert [p["pair_id"] for p in celery_doc["pairs"]] in (["AAPL-MSFT"], ["MSFT-AAPL"])
    resources = {
        "store": MarketDataStore(database_url=deployment["dbs"]["store"]),
        "bar_source": deployment["source"],
        "strategy": StrategySettings.preset("seed", **FAST),
        "io_manager": PartitionedFileIOManager(base_dir=str(tmp_path / "outputs")),
        "model_registry": ModelRegistry(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "home": PairsHome(
            home=str(tmp_path),
            outputs_dir=str(tmp_path / "outputs"),
            universe_file=str(EMBEDDED_UNIVERSE_FILE),
            history_start=EMBEDDED_HISTORY_START,
        ),
    }
    result = materialize(AS_OF, "technology", resources)
    assert result.success
    in_process = json.loads(resources["home"].trading_config_path(AS_OF, "technology").read_text())
    differences = _differences(celery_doc, in_process)
    # each side logged its model into its own MLflow store: only the run id may differ
    assert [d for d in differences if not d.startswith(".pairs[0].model.mlflow_run_id:")] == []


def _differences(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_mlflow_on_postgres_keeps_artifacts_under_the_root_and_nothing_in_cwd(deployment, queued_runs):
    from mlflow import MlflowClient

    assert list(deployment["cwd"].iterdir()) == [], "nothing may be written to the working directory"
    uri = deployment["env"]["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("pairs_trading/technology")
    assert experiment.artifact_location.startswith(deployment["artifacts"].as_uri())
    versions = client.search_model_versions("name = 'pairs_trading_gru_garch_technology'")
    assert versions
    run = client.get_run(versions[0].run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster_run_id"] == queued_runs["ids"]["tech_a"]
    files = {p.name for p in deployment["artifacts"].rglob("*") if p.is_file()}
    assert {"training_history.png", "spread_zbands.png", "scaler.json", "MLmodel"} <= files


def test_a_lost_run_is_failed_by_one_sensor_tick_and_frees_its_sector(deployment, queued_runs):
    """Issue 21 item 1: a run whose process died with its code server (a lost machine) stayed STARTED
    for ever and held its sector's slot.

    A technology run is launched through the queue (run worker: a subprocess of the code server) and a
    second one waits behind it. Once the first executes, the code server and its run worker are
    killed with SIGKILL and the code server is started again. One evaluation of the dead_run_recovery
    sensor fails the first run, naming run, pid and host; the next queue pass starts the waiting run
    (then terminated: only its start is checked).
    """
    import logging
    import signal
    import time

    from dagster import DagsterEventType, DagsterRunStatus, build_sensor_context
    from dagster._cli.job import _create_run
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from pairs_assets.instance.run_recovery import HOST_TAG, process_alive_since, this_host
    from pairs_assets.partitions import partition_key
    from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY
    from sensors.dead_runs import dead_run_recovery

    instance, procs, logs = deployment["instance"], [deployment["worker"]], deployment["logs"]
    servers = deployment["servers"]
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    with WorkspaceProcessContext(instance, deployment["target"]) as ctx:
        request = ctx.create_request_context()
        location = request.get_code_location("pairs_assets")
        repo = next(iter(location.get_repositories().values()))
        job = repo.get_full_job("daily_pairs")
        tags = EMBEDDED_DAILY.get_tags_for_partition_key(partition_key(AS_OF, "technology"))
        first, second = (
            _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repo,
                remote_job=job,
                run_config=_run_config(),
                tags=tags,
                op_selection=None,
                run_id=None,
            )
            for _ in range(2)
        )
        instance.submit_run(first.run_id, request)
        list(daemon.run_iteration(ctx))
        instance.submit_run(second.run_id, request)

    # the run worker tags its run with its host as it starts executing: lose the machine then
    services.wait_until(
        lambda: HOST_TAG in instance.get_run_by_id(first.run_id).tags,
        600,
        "the run worker to start",
        procs=procs,
        logs=logs,
    )
    (start,) = instance.get_records_for_run(first.run_id, of_type=DagsterEventType.RUN_START).records
    pid = start.event_log_entry.dagster_event.pid
    lost = servers["code_server"]
    os.killpg(lost.pid, signal.SIGKILL)  # the code server and its run worker (one process group)
    lost.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # in case the run worker left the group
    services.wait_until(lambda: not process_alive_since(pid, time.time()), 60, f"killed run worker {pid} to exit")
    lost._pairs_log.close()
    log = str(deployment["root"] / "code_server_restarted.log")
    servers["code_server"] = services.start(
        deployment["code_server_cmd"], deployment["env"], str(deployment["cwd"]), log
    )
    procs, logs = [*procs, servers["code_server"]], [*logs, log]

    with WorkspaceProcessContext(instance, deployment["target"]) as ctx:

        def _loaded():
            request = ctx.create_request_context()
            return not request.get_code_location_error("pairs_assets") and request.has_code_location("pairs_assets")

        services.wait_until(_loaded, 300, "the restarted code server", poll=2.0, procs=procs, logs=logs)
        list(daemon.run_iteration(ctx))
        # Dagster's run monitoring (on in deploy/dagster.yaml) cannot see it: no worker health check
        list(execute_run_monitoring_iteration(ctx, logging.getLogger("run_monitoring")))
        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.STARTED  # what a lost machine leaves
        assert instance.get_run_by_id(second.run_id).status == DagsterRunStatus.QUEUED  # behind it, for ever

        dead_run_recovery(build_sensor_context(instance=instance))

        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.FAILURE
        (failure,) = instance.get_records_for_run(first.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        message = failure.event_log_entry.dagster_event.message
        assert f"run {first.run_id} (daily_pairs {AS_OF}|technology)" in message
        assert f"process {pid} on host {this_host()}, which is gone" in message

        list(daemon.run_iteration(ctx))
        assert instance.get_run_by_id(second.run_id).status != DagsterRunStatus.QUEUED  # the sector's slot is free
        services.wait_until(
            lambda: HOST_TAG in instance.get_run_by_id(second.run_id).tags,
            600,
            "the second run to start",
            procs=procs,
            logs=logs,
        )
        instance.run_launcher.terminate(second.run_id)
        services.wait_until(
            lambda: instance.get_run_by_id(second.run_id).is_finished,
            600,
            "the second run to stop",
            procs=procs,
            logs=logs,
        )


def _start_technology_run_until_gru_trains(deployment, run_config):
    """Submit a daily_pairs run of technology through the code server and the queue (one daemon
    pass); return it once its ``gru_models`` step has started on the Celery worker."""
    from dagster import DagsterEventType
    from dagster._cli.job import _create_run
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from pairs_assets.partitions import partition_key
    from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY

    instance, procs, logs = deployment["instance"], [deployment["worker"]], deployment["logs"]
    with WorkspaceProcessContext(instance, deployment["target"]) as ctx:
        request = ctx.create_request_context()
        location = request.get_code_location("pairs_assets")
        repo = next(iter(location.get_repositories().values()))
        run = _create_run(
            instance=instance,
            code_location=location,
            remote_repo=repo,
            remote_job=repo.get_full_job("daily_pairs"),
            run_config=run_config,
            tags=EMBEDDED_DAILY.get_tags_for_partition_key(partition_key(AS_OF, "technology")),
            op_selection=None,
            run_id=None,
        )
        instance.submit_run(run.run_id, request)
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(ctx))

    def _gru_started():
        starts = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START).records
        return any(r.event_log_entry.step_key == "gru_models" for r in starts)

    services.wait_until(_gru_started, 900, "gru_models to start on the worker", poll=1.0, procs=procs, logs=logs)
    return run


def test_an_orphaned_gru_step_is_revoked_and_writes_nothing_into_its_failed_run(deployment, monkeypatch):
    """Issue 21 item 4: after the run process was killed during ``gru_models`` the run was FAILED and
    its sector freed, but the step on the Celery worker went on: it recorded its materialization and
    registered an MLflow version into the failed run; nothing revoked the task.

    A technology run trains a GRU that would not stop by itself (epochs and patience 100,000): once
    ``gru_models`` started on the worker, only the run worker (the code server's subprocess) is killed.
    One ``dead_run_recovery`` tick fails the run and revokes its tasks: the worker kills the step's
    process, the worker itself stays up. The run's log and the asset catalog hold no gru_models
    materialization, MLflow no version of the run; the run's tags name the task and its revocation.
    """
    import signal
    import time

    from dagster import AssetKey, DagsterEventType, DagsterRunStatus, build_sensor_context
    from mlflow import MlflowClient

    from pairs_assets.run_recovery import CELERY_REVOKED_TAG, process_alive_since, run_task_ids
    from pairs_assets.worker import make_worker_app
    from sensors.dead_runs import dead_run_recovery

    instance, procs, logs = deployment["instance"], [deployment["worker"]], deployment["logs"]
    monkeypatch.setenv("PAIRS_CELERY_BROKER", deployment["broker"])  # the sensor's process has the workers' broker
    endless = _run_config()
    endless["resources"]["strategy"]["config"].update(gru_max_epochs=100_000, gru_patience=100_000)
    run = _start_technology_run_until_gru_trains(deployment, endless)
    task_id = run_task_ids(instance.get_run_by_id(run.run_id))["gru_models"]
    app = make_worker_app(deployment["broker"])

    def _active_ids():
        return {task["id"] for tasks in (app.control.inspect(timeout=2.0).active() or {}).values() for task in tasks}

    services.wait_until(
        lambda: task_id in _active_ids(), 300, "the gru_models task to be active", procs=procs, logs=logs
    )
    (start,) = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START).records
    pid = start.event_log_entry.dagster_event.pid
    os.kill(pid, signal.SIGKILL)  # the run worker only: the code server and the Celery worker stay up
    services.wait_until(lambda: not process_alive_since(pid, time.time()), 60, f"killed run worker {pid} to exit")
    # STARTED until the tick fails it — or already FAILURE: the code server's own clean-up fails a run
    # whose run-worker process it launched has died (dagster/_grpc/server.py), and won the race once in
    # CI. Either way the tick must revoke the run's tasks (its first tick looks back one heartbeat
    # window for runs failed by anyone), and nothing may be written into the failed run.
    assert instance.get_run_by_id(run.run_id).status in (DagsterRunStatus.STARTED, DagsterRunStatus.FAILURE)

    dead_run_recovery(build_sensor_context(instance=instance))

    after = instance.get_run_by_id(run.run_id)
    assert after.status == DagsterRunStatus.FAILURE
    assert task_id in after.tags[CELERY_REVOKED_TAG].split(",")
    # the worker killed the step's process (it would train for ever): the task leaves, the worker stays
    services.wait_until(lambda: task_id not in _active_ids(), 300, "the revoked task to stop", procs=procs, logs=logs)
    assert app.control.ping(timeout=5.0) and deployment["worker"].poll() is None

    gru = AssetKey("gru_models")
    materialized = [
        r
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        if r.event_log_entry.dagster_event.asset_key == gru
    ]
    assert materialized == [], _writes_of(instance, run.run_id, gru)
    catalog = instance.fetch_materializations(gru, limit=1000).records
    assert run.run_id not in {r.run_id for r in catalog}, _writes_of(instance, run.run_id, gru)
    uri = deployment["env"]["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'pairs_trading_gru_garch_technology'")
    assert [v for v in versions if client.get_run(v.run_id).data.tags.get("dagster_run_id") == run.run_id] == []


def test_a_step_outliving_its_failed_run_unrevoked_records_nothing_and_registers_nothing(deployment):
    """Issue 21 item 4, the guard behind the revocation: a revocation is a broadcast that a worker may
    miss (down, restarting). Here the run is failed while ``gru_models`` trains on the worker and its
    task is *not* revoked: the step trains to the end, then its MLflow registration and its
    materialization are refused — the step fails naming the run and its status; the run's log and
    the catalog hold no gru_models materialization of it, MLflow no version of it.
    """
    from dagster import AssetKey, DagsterEventType, DagsterRunStatus
    from mlflow import MlflowClient

    from pairs_assets.run_recovery import CELERY_REVOKED_TAG, run_task_ids
    from pairs_assets.worker import make_worker_app

    instance, procs, logs = deployment["instance"], [deployment["worker"]], deployment["logs"]
    slow = _run_config()
    slow["resources"]["strategy"]["config"].update(gru_max_epochs=300, gru_patience=300)  # minutes, then done
    run = _start_technology_run_until_gru_trains(deployment, slow)
    instance.report_run_failed(instance.get_run_by_id(run.run_id), message="test: failed while gru_models trains")
    task_id = run_task_ids(instance.get_run_by_id(run.run_id))["gru_models"]
    app = make_worker_app(deployment["broker"])

    def _gru_failed():
        failures = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records
        return [r for r in failures if r.event_log_entry.step_key == "gru_models"]

    (failure,) = services.wait_until(
        _gru_failed, 900, "gru_models to end on the worker", poll=2.0, procs=procs, logs=logs
    )
    error = failure.event_log_entry.dagster_event.event_specific_data.error
    text = error.to_string()
    assert f"RunClosedError: run {run.run_id} is FAILURE: registering pairs_trading_gru_garch_technology for" in text
    assert CELERY_REVOKED_TAG not in instance.get_run_by_id(run.run_id).tags  # no revocation helped here
    active = {t["id"] for tasks in (app.control.inspect(timeout=2.0).active() or {}).values() for t in tasks}
    assert task_id not in active

    gru = AssetKey("gru_models")
    in_log = [
        r
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        if r.event_log_entry.dagster_event.asset_key == gru
    ]
    assert not in_log, _writes_of(instance, run.run_id, gru)
    catalog = {r.run_id for r in instance.fetch_materializations(gru, limit=1000).records}
    assert run.run_id not in catalog, _writes_of(instance, run.run_id, gru)
    uri = deployment["env"]["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'pairs_trading_gru_garch_technology'")
    assert [v for v in versions if client.get_run(v.run_id).data.tags.get("dagster_run_id") == run.run_id] == []
    tracked = client.search_runs(
        [client.get_experiment_by_name("pairs_trading/technology").experiment_id],
        filter_string=f"tags.dagster_run_id = '{run.run_id}'",
    )
    assert tracked and {r.info.status for r in tracked} == {"FAILED"}  # trained, logged, not registered
    services.wait_until(
        lambda: instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE, 60, "the run to stay failed"
    )


def test_a_killed_celery_worker_fails_its_run_within_the_step_heartbeat_window(deployment):
    """Issue 21 item 1, the worker half: a Celery worker killed (SIGKILL, its whole process tree: what
    a lost machine does) while ``gru_models`` trains left the step waiting for a new worker for ever —
    the run worker lives, so its run heartbeat stays fresh and no recovery fails the run. Now the
    step's heartbeat stops, and the run worker fails the step, and so the run, once it has been
    silent for the window (30 s here, PAIRS_STEP_HEARTBEAT_WINDOW_S; 300 s by default), naming the
    step, the worker and the task; nothing of ``gru_models`` is written. Last in the module: it kills
    the deployment's worker."""
    import signal
    import time

    from dagster import AssetKey, DagsterEventType, DagsterRunStatus

    from pairs_assets.instance.run_recovery import run_task_ids
    from pairs_assets.instance.step_heartbeat import step_heartbeat_key

    instance, worker, logs = deployment["instance"], deployment["worker"], deployment["logs"]
    endless = _run_config()
    endless["resources"]["strategy"]["config"].update(gru_max_epochs=100_000, gru_patience=100_000)
    run = _start_technology_run_until_gru_trains(deployment, endless)
    task_id = run_task_ids(instance.get_run_by_id(run.run_id))["gru_models"]
    key = step_heartbeat_key(task_id)
    beat = services.wait_until(
        lambda: instance.daemon_cursor_storage.get_cursor_values({key}).get(key),
        300,
        "the gru_models step heartbeat",
        procs=[worker],
        logs=logs,
    )
    assert json.loads(beat)["worker"].startswith("pairs-test-")

    tree = services.process_tree(worker.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=60)
    killed = time.monotonic()
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # the run worker lives on

    services.wait_until(
        lambda: instance.get_run_by_id(run.run_id).is_finished, 600, "the run to fail", poll=1.0, logs=logs
    )
    print(f"run failed {time.monotonic() - killed:.0f} s after its worker was killed (window 30 s, beat 2 s)")
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    (failure,) = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    error = failure.event_log_entry.dagster_event.event_specific_data.error
    text = error.to_string() if error is not None else failure.event_log_entry.dagster_event.message
    assert "StepWorkerLostError: step gru_models: its Celery worker (pairs-test-" in text, text
    assert "stopped reporting" in text and f"task {task_id} revoked" in text, text

    gru = AssetKey("gru_models")
    written = [
        r
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        if r.event_log_entry.dagster_event.asset_key == gru
    ]
    assert written == [], _writes_of(instance, run.run_id, gru)
    steps = {
        r.event_log_entry.step_key
        for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START).records
    }
    assert "trading_config" not in steps  # downstream of the lost step: never started
