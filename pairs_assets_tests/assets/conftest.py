"""Fixtures of the graph tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def own_pairs_home(tmp_path, monkeypatch):
    """A PAIRS_HOME of this test only (stage outputs, trading configs), removed with ``tmp_path``.

    Graph tests materialize the same partitions (2022-12-28|technology, …) and ``gru_models`` reads its
    own previous output, so a shared home would let one test see another's files. The MLflow store
    (MLFLOW_TRACKING_URI, set by the top-level conftest) stays the session's: creating one costs seconds.
    ``paths()`` is read from the environment once per process, so its cache is cleared around the test.
    """
    from pairs_assets.settings import paths

    home = tmp_path / "pairs_home"
    home.mkdir()
    monkeypatch.setenv("PAIRS_HOME", str(home))
    paths.cache_clear()
    try:
        assert paths().home == home.resolve()
        yield home
    finally:
        monkeypatch.undo()
        paths.cache_clear()
