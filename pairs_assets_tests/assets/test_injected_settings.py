"""Settings are injected (issue 12 item 1): two definitions with different homes, universes and history
starts live in one process, and each materializes into its own home — no environment variable read.

``build_definitions`` gets a ``Paths`` built here field by field (not ``Paths.from_env``); the
process's own ``paths()`` (the test session's PAIRS_HOME) must stay untouched.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.definitions import build_definitions
from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.settings import EMBEDDED_UNIVERSE_FILE, Paths, StrategySettings, paths
from pairs_assets_tests.assets.graph_harness import preload_history
from resources.bar_sources import EmbeddedBarSource

AS_OF = "2022-12-28"
TECH = ["AAPL", "AMD", "MSFT"]
STRATEGY = StrategySettings.preset("seed")  # a 60-session formation: fits in home B's short history
SELECTION = ["raw_bars", "correlation_matrix"]


def _paths(home: Path, *, history_start: str, universe_file: Path) -> Paths:
    return Paths(
        home=home,
        database_url=f"sqlite:///{home / 'market_data.sqlite'}",
        bars_file=None,
        universe_file=universe_file,
        history_start=history_start,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
    )


@pytest.fixture()
def two_homes(tmp_path):
    tech_only = tmp_path / "tech_only.yaml"
    tech_only.write_text("sectors:\n  technology: [AAPL, AMD, MSFT]\n")
    a = _paths(tmp_path / "a", history_start="1990-01-02", universe_file=EMBEDDED_UNIVERSE_FILE)
    b = _paths(tmp_path / "b", history_start="2022-06-01", universe_file=tech_only)
    for p in (a, b):
        p.home.mkdir()
    return a, b


def _materialize(defs: dg.Definitions, partition: str):
    return dg.materialize(
        list(defs.assets),
        selection=SELECTION,
        partition_key=partition,
        resources=dict(defs.resources),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_two_definitions_in_one_process_each_with_its_own_home_and_history(two_homes):
    a, b = two_homes
    defs_a, defs_b = build_definitions(a, STRATEGY), build_definitions(b, STRATEGY)

    # partitions from each one's inputs: history start and universe
    daily_a = defs_a.resolve_job_def("daily_pairs").partitions_def
    daily_b = defs_b.resolve_job_def("daily_pairs").partitions_def
    assert partitions.history_start_of(daily_a) == pd.Timestamp("1990-01-02")
    assert partitions.history_start_of(daily_b) == pd.Timestamp("2022-06-01")
    assert len(partitions.sectors_of(daily_a)) == 6 and partitions.sectors_of(daily_b) == ["technology"]
    assert defs_a.resolve_sensor_def("signal_sensor") is not defs_b.resolve_sensor_def("signal_sensor")

    # one partition materialized into each home, from each home's own store
    for p in (a, b):
        preload_history(
            p.database_url, EmbeddedBarSource(), TECH, AS_OF, STRATEGY.formation_window, history_start=p.history_start
        )
    result_a, result_b = _materialize(defs_a, f"{AS_OF}|technology"), _materialize(defs_b, f"{AS_OF}|technology")
    assert result_a.success and result_b.success
    files = {p.home.name: p.home / "correlation_matrix" / AS_OF / "technology.parquet" for p in (a, b)}
    assert all(f.exists() for f in files.values())
    # the same inputs give the same bytes, whichever home
    assert files["a"].read_bytes() == files["b"].read_bytes()
    # each run wrote under its own home, neither under the process's environment-derived one
    for p, result in ((a, result_a), (b, result_b)):
        written = Path(result.asset_materializations_for_node("correlation_matrix")[0].metadata["path"].value)
        assert written == files[p.home.name] and paths().home not in written.parents

    # home B's history starts 2022-06-01: a partition whose 60-session formation window reaches
    # before it fails there, naming its history start, while home A has the history
    early = "2022-07-29"
    failed = _materialize(defs_b, f"{early}|technology")
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    error = failure.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert error.cls_name == InsufficientHistoryError.__name__
    assert "between the history start 2022-06-01 and the as-of session" in error.message
    preload_history(
        a.database_url, EmbeddedBarSource(), TECH, early, STRATEGY.formation_window, history_start=a.history_start
    )
    assert _materialize(defs_a, f"{early}|technology").success


def test_the_declared_history_follows_the_strategy_given(two_homes):
    """The stages depend on raw_bars of their own session only; the history they read from the store
    is declared in their definition metadata, from the strategy the definitions were built with."""
    a, _ = two_homes
    short, long = build_definitions(a, StrategySettings.preset("seed")), build_definitions(a, StrategySettings())

    def declared(defs: dg.Definitions, asset: str) -> int:
        graph = defs.resolve_asset_graph()
        key = dg.AssetKey(asset)
        assert isinstance(graph.get_partition_mapping(key, dg.AssetKey("raw_bars")), dg.IdentityPartitionMapping)
        return graph.get(key).metadata["pairs/history_sessions"]

    seed, default = StrategySettings.preset("seed"), StrategySettings()
    assert declared(short, "correlation_matrix") == seed.formation_window + seed.reselect_every - 1
    assert declared(long, "correlation_matrix") == default.formation_window + default.reselect_every - 1
    assert declared(long, "gru_models") == default.gru_window + default.reselect_every - 1
    assert declared(long, "trading_config") == default.history_sessions
    assert short.resources["strategy"] == seed and long.resources["strategy"] == default
