"""Backfills as the UI launches them: the webserver's GraphQL ``launchPartitionBackfill`` mutation on a
workspace over the project's definitions (in-process code location, temporary instance), then one
iteration of the backfill daemon (``pairs_assets_tests/ui_backfill.py``).

* The asset graph's *Materialize all* (the ``daily_pairs`` group, raw_bars included) × N sessions ×
  one sector must target exactly the selected partitions of each asset — not every downstream
  partition inside the stages' history windows — and become ONE run over that range (every daily
  asset has ``BackfillPolicy.single_run``).
* The job page's partition-set backfill of ``daily_pairs`` becomes one range run of the job too;
  executed, it must write one output per partition (the IO manager's range path) and record a
  materialization per asset and partition.
"""

from __future__ import annotations

import dagster as dg
import pytest

from pairs_assets import partitions
from pairs_assets.assets.common import GROUP
from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE, Paths, StrategySettings
from pairs_assets.universe import load_universe
from pairs_assets_tests.assets.graph_harness import preload_history
from pairs_assets_tests.ui_backfill import (
    backfill_runs,
    launch_asset_backfill,
    launch_job_backfill,
    run_backfill_daemon_once,
    targeted_partitions,
    ui_workspace,
)
from resources.bar_sources import EmbeddedBarSource

RANGE_START = "2022-12-28"  # replaced per test by the last N sessions ending here
LAST = "2022-12-28"


def _paths(tmp_path, pairs_home) -> Paths:
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


def _last_sessions(n: int) -> list[str]:
    return [str(d.date()) for d in partitions.sessions_in_range(EMBEDDED_HISTORY_START, LAST)[-n:]]


def _group(context) -> list[str]:
    graph = context.create_request_context().asset_graph
    return sorted(k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == GROUP)


@pytest.mark.parametrize("n_sessions", [10])
def test_ui_group_backfill_targets_the_selection_in_one_run(tmp_path, pairs_home, n_sessions):
    keys = [f"{d}|consumer" for d in _last_sessions(n_sessions)]
    with ui_workspace(_paths(tmp_path, pairs_home)) as context:
        group = _group(context)
        assert "raw_bars" in group and "trading_config" in group and len(group) == 7
        launched = launch_asset_backfill(context, group, keys)

        targeted = targeted_partitions(context.instance, launched.backfill_id)
        assert targeted == {asset: set(keys) for asset in group}

        assert run_backfill_daemon_once(context) == []
        runs = backfill_runs(context.instance, launched.backfill_id)
        assert len(runs) == 1, [r.tags for r in runs]
        (run,) = runs
        assert run.tags["dagster/asset_partition_range_start"] == keys[0]
        assert run.tags["dagster/asset_partition_range_end"] == keys[-1]
        assert {k.to_user_string() for k in run.asset_selection} == set(group)

        # the run is queued, not done: another daemon iteration requests nothing more
        assert run_backfill_daemon_once(context) == []
        assert len(backfill_runs(context.instance, launched.backfill_id)) == 1


def test_ui_job_backfill_is_one_range_run_that_writes_each_partition(tmp_path, pairs_home):
    """The job page's partition-set backfill: one run of ``daily_pairs`` over the range, executed."""
    p = _paths(tmp_path, pairs_home)
    sessions = _last_sessions(2)
    keys = [f"{d}|energy" for d in sessions]
    source = EmbeddedBarSource()
    symbols = load_universe(EMBEDDED_UNIVERSE_FILE).symbols("energy")
    # the history before the range (the range's own sessions are raw_bars' work in the run)
    preload_history(p.database_url, source, symbols, sessions[0], StrategySettings().history_sessions)
    with ui_workspace(p, execute_runs=True) as context:
        instance = context.instance
        launched = launch_job_backfill(context, "daily_pairs", keys)
        assert run_backfill_daemon_once(context) == []
        runs = backfill_runs(instance, launched.backfill_id)
        assert len(runs) == 1, [r.tags for r in runs]
        (run,) = runs
        assert run.job_name == "daily_pairs"
        assert run.tags["dagster/asset_partition_range_start"] == keys[0]
        assert run.tags["dagster/asset_partition_range_end"] == keys[-1]
        run = instance.get_run_by_id(run.run_id)
        if run.status != dg.DagsterRunStatus.SUCCESS:
            failures = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
            pytest.fail(
                f"the job backfill's run ended {run.status}: "
                + "; ".join(str(r.event_log_entry.dagster_event.step_failure_data.error.message)[:500] for r in failures)
            )
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        done: dict[str, set[str]] = {}
        for r in records:
            m = r.event_log_entry.asset_materialization
            done.setdefault(m.asset_key.to_user_string(), set()).add(str(m.partition))
        group = _group(context)
        assert done == {asset: set(keys) for asset in group}
        for asset, suffix in [("correlation_matrix", ".parquet"), ("cointegrated_pairs", ".parquet"), ("trading_config", ".json")]:
            for d in sessions:
                assert (p.outputs_dir / asset / d / f"energy{suffix}").exists(), (asset, d)
