"""The ``dg`` command (dagster-dg-cli) on this project, run as a user would: from the project root, in a
subprocess, with a temporary ``PAIRS_HOME`` and ``DAGSTER_HOME`` that are removed afterwards.

``dg`` finds the project through ``[tool.dg]`` in pyproject.toml (definitions module
``pairs_assets.definitions``). Every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")
PARTITION = "2022-12-28|energy"
DAILY_ASSETS = {
    "raw_bars",
    "correlation_matrix",
    "cointegrated_pairs",
    "garch_models",
    "model_selection",
    "gru_models",
    "trading_config",
}
COMMAND_TIMEOUT_S = 300


@pytest.fixture()
def dg_env(tmp_path) -> dict[str, str]:
    """Environment of a fresh local install: its own homes (under tmp_path) and the project's dagster.yaml."""
    assert DG.exists(), f"{DG} is missing: dagster-dg-cli is a dependency in pyproject.toml (pip install -e .)"
    pairs_home = tmp_path / "pairs_home"
    dagster_home = pairs_home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")  # what `pairs init` does
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAIRS_", "DAGSTER_", "MLFLOW_"))}
    env.update(
        PAIRS_HOME=str(pairs_home),
        DAGSTER_HOME=str(dagster_home),
        PAIRS_DATABASE_URL=f"sqlite:///{pairs_home / 'market_data.sqlite'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{pairs_home / 'mlflow' / 'mlflow.db'}",
        # dg compares the active environment with <project>/.venv; say which one is active.
        VIRTUAL_ENV=sys.prefix,
        PATH=f"{DG.parent}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
    )
    return env


def _dg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(DG), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"dg {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc


def _instance(env: dict[str, str]) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def test_dg_check_defs(dg_env):
    proc = _dg(dg_env, "check", "defs")
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_dg_list_defs_shows_the_graph(dg_env):
    proc = _dg(dg_env, "list", "defs", "--json")
    listed = json.loads(proc.stdout)
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert DAILY_ASSETS | {"trading_signals", "model_rankings", "model_trends"} <= set(assets)
    assert set(assets["correlation_matrix"]["dependency_keys"]) == {"raw_bars"}
    assert set(assets["trading_config"]["dependency_keys"]) >= {"gru_models", "model_selection"}
    assert {j["name"] for j in listed["jobs"]} >= {"daily_pairs", "signal_job"}
    assert {s["name"] for s in listed["schedules"]} == {"daily_pairs_schedule", "paper_book_schedule"}
    assert {s["name"] for s in listed["sensors"]} >= {"signal_sensor", "model_performance_refresh"}
    checks = {c["key"] for c in listed["asset_checks"]}
    assert "raw_bars:bars_unique" in checks and "model_selection:composite_above_min" in checks


def test_dg_launch_one_raw_bars_partition(dg_env):
    _dg(dg_env, "launch", "--assets", "raw_bars", "--partition", PARTITION)
    with _instance(dg_env) as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("raw_bars")) == {PARTITION}
        records = instance.get_run_records()
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS]
    from resources.market_data import _ENGINES, MarketDataStore

    url = dg_env["PAIRS_DATABASE_URL"]
    try:
        bars = MarketDataStore(database_url=url).read_bars(["CVX", "XOM"], *_session_span("2022-12-28"))
    finally:
        _ENGINES.pop(url).dispose()
    assert sorted(bars["symbol"]) == ["CVX", "XOM"]


def _session_span(session: str):
    from pairs_assets import partitions

    return partitions.sessions_span_utc(session, session)


@pytest.mark.slow
def test_dg_launch_daily_pairs_job_for_one_partition(dg_env):
    """`dg launch --job daily_pairs --partition 2022-12-28|energy` writes that partition's trading config.

    The history window is put into the store directly (the single-run raw_bars backfill of 1,300
    sessions is a separate, minutes-long command); the job itself materializes raw_bars for its session.
    """
    import pairs_assets
    from pairs_assets import partitions
    from pairs_assets.settings import DEFAULT_STRATEGY
    from pairs_assets.universe import load_universe
    from resources.bar_sources import EmbeddedBarSource
    from resources.market_data import _ENGINES, MarketDataStore

    energy = load_universe(Path(pairs_assets.__file__).with_name("data") / "universe.yaml").symbols("energy")
    sessions = partitions.window_sessions("2022-12-28", DEFAULT_STRATEGY.history_sessions, history_start="1990-01-02")
    bars = EmbeddedBarSource().load_bars(energy, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    url = dg_env["PAIRS_DATABASE_URL"]
    assert MarketDataStore(database_url=url).upsert_bars(bars, context="dg test preload") > 0
    _ENGINES.pop(url).dispose()

    _dg(dg_env, "launch", "--job", "daily_pairs", "--partition", PARTITION)

    config = Path(dg_env["PAIRS_HOME"]) / "trading_config" / "2022-12-28" / "energy.json"
    doc = json.loads(config.read_text())
    assert doc["as_of_session"] == "2022-12-28" and doc["sector"] == "energy"
    assert doc["symbols"] == sorted(energy)
    with _instance(dg_env) as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.job_name == "daily_pairs"
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert record.dagster_run.tags["dagster/partition"] == PARTITION
        for key in DAILY_ASSETS:
            assert PARTITION in instance.get_materialized_partitions(dg.AssetKey(key)), key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (kernel hex form) with a TCP socket listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


_PAPER_BOOK = (
    '{ assetNodes(group: {groupName: "paper_book", repositoryName: "__repository__", repositoryLocationName: '
    '"pairs_assets"}) { assetKey { path } groupName assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }'
)
_LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


@pytest.mark.slow
def test_dg_dev_serves_the_code_location_on_loopback(dg_env, tmp_path):
    """`dg dev` starts the UI on 127.0.0.1 only and loads the pairs_assets code location."""
    port = _free_port()
    log_path = tmp_path / "dg_dev.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(DG), "dev", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=dg_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    entries = None
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                result = _graphql(port, _LOCATIONS)
                entries = result["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except (urllib.error.URLError, ConnectionError, KeyError, TypeError):
                pass
            time.sleep(0.5)  # polling an HTTP endpoint: the server offers no event to wait on
        assert proc.poll() is None, f"dg dev exited {proc.returncode}:\n{log_path.read_text()[-4000:]}"
        assert entries == [{"name": "pairs_assets", "loadStatus": "LOADED"}], log_path.read_text()[-4000:]
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing on other interfaces
        result = _graphql(port, "{ assetNodes { assetKey { path } } }")
        keys = {"/".join(n["assetKey"]["path"]) for n in result["data"]["assetNodes"]}
        assert DAILY_ASSETS <= keys
        # the paper book's own group in the UI, with its three checks (exposure blocking)
        result = _graphql(port, _PAPER_BOOK)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in result["data"]["assetNodes"]}
        book = nodes["paper_book"]
        assert book["groupName"] == "paper_book"
        checks = {c["name"]: c["blocking"] for c in book["assetChecksOrError"]["checks"]}
        assert checks == {
            "exposure_within_limits": True,
            "drawdown_within_limit": False,
            "positions_match_walk_forward": False,
        }
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()
