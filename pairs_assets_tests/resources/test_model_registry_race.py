"""Two processes opening a fresh local MLflow store at once (two daily_pairs runs on a new PAIRS_HOME).

Before the store-creation lock, both migrated the empty SQLite file and one (sometimes both) failed
with ``ModelStoreUnavailableError: … CommandError: Online migration expected to match one row``.
"""

from __future__ import annotations

import multiprocessing

import pytest
from filelock import FileLock

from resources.model_registry import ModelRegistry, ModelStoreUnavailableError

N_PROCESSES = 3


def _first_use(store_dir: str, barrier, results) -> None:
    """In a fresh process: wait for the others, then open the store and create an experiment."""
    import os

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    registry = ModelRegistry(local_store_dir=store_dir)
    barrier.wait(timeout=120)
    try:
        client = registry.client()
        name = f"race/{os.getpid()}"
        client.create_experiment(name)
        results.put(("ok", name))
    except Exception as exc:  # reported to the test process, which asserts on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_concurrent_first_uses_of_a_fresh_store_all_succeed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store_dir = tmp_path / "mlflow"
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each, as separate runs are
    barrier = ctx.Barrier(N_PROCESSES)
    results = ctx.Queue()
    processes = [ctx.Process(target=_first_use, args=(str(store_dir), barrier, results)) for _ in range(N_PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert [status for status, _ in outcomes] == ["ok"] * N_PROCESSES, outcomes
    client = ModelRegistry(local_store_dir=str(store_dir)).client()
    names = {e.name for e in client.search_experiments()}
    assert {name for _, name in outcomes} <= names


def test_a_held_creation_lock_times_out_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store_dir = tmp_path / "mlflow"
    store_dir.mkdir()
    with FileLock(str(store_dir / "mlflow.db.lock")):
        with pytest.raises(ModelStoreUnavailableError, match=r"mlflow\.db\.lock for more than 1 s"):
            ModelRegistry(local_store_dir=str(store_dir), store_lock_timeout_s=1).client()
    assert ModelRegistry(local_store_dir=str(store_dir)).client() is not None
