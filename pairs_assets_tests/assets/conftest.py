"""Fixtures of the graph tests."""

from __future__ import annotations

import pytest

from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE, Paths


@pytest.fixture()
def own_pairs_home(tmp_path, pairs_home) -> Paths:
    """The :class:`Paths` of a home of this test only (stage outputs, trading configs), removed with
    ``tmp_path``; pass it to ``resources_for(..., home=own_pairs_home)``. Built field by field: no
    environment variable is read or set.

    Graph tests materialize the same partitions (2022-12-28|technology, …) and ``gru_models`` reads its
    own previous output, so a shared home would let one test see another's files. The MLflow store
    stays the session's (``pairs_home``): creating one costs seconds.
    """
    home = tmp_path / "pairs_home"
    home.mkdir()
    return Paths(
        home=home,
        database_url=f"sqlite:///{home / 'market_data.sqlite'}",
        bars_file=None,
        universe_file=EMBEDDED_UNIVERSE_FILE,
        history_start=EMBEDDED_HISTORY_START,
        mlflow_tracking_uri=f"sqlite:///{pairs_home}/mlflow/mlflow.db",
    )
