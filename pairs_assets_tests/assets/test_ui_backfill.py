"""Backfills as the UI launches them: the webserver's GraphQL ``launchPartitionBackfill`` mutation on a
workspace over the project's definitions (in-process code location, temporary instance), then one
iteration of the backfill daemon (``pairs_assets_tests/ui_backfill.py``).

* The asset graph's *Materialize all* (the ``daily_pairs`` group, raw_bars included) × N sessions ×
  one sector must target exactly the selected partitions of each asset — not every downstream
  partition inside the stages' history windows — and become ONE run over that range (every daily
  asset has ``BackfillPolicy.single_run``).
* The job page's backfill of ``daily_pairs`` (its partition set, with the job's assets, as the job
  page's dialog sends it) becomes one range run of the job too. Over several partitions Dagster
  resolves that run to its first partition (it copies that partition's ``dagster/partition/*`` tags
  onto the range run: dagster-io/dagster#28861), so the run must be refused before anything is
  written, with an error saying what to launch instead; over one partition it must run the range
  path and store each output (the IO manager's range case).
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
from resources.market_data import MarketDataStore

LAST = "2022-12-28"


def _last_sessions(n: int) -> list[str]:
    return [str(d.date()) for d in partitions.sessions_in_range(EMBEDDED_HISTORY_START, LAST)[-n:]]


def _group(context) -> list[str]:
    graph = context.create_request_context().asset_graph
    return sorted(k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == GROUP)


@pytest.mark.parametrize("n_sessions", [10])
def test_ui_group_backfill_targets_the_selection_in_one_run(own_pairs_home, n_sessions):
    keys = [f"{d}|consumer" for d in _last_sessions(n_sessions)]
    with ui_workspace(own_pairs_home) as context:
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
        assert not any(t.startswith("dagster/partition") for t in run.tags)  # the range alone names its partitions

        # the run is queued, not done: another daemon iteration requests nothing more
        assert run_backfill_daemon_once(context) == []
        assert len(backfill_runs(context.instance, launched.backfill_id)) == 1


def test_ui_group_backfill_executes_as_one_run_over_the_range(own_pairs_home):
    """The same backfill (3 sessions × consumer, raw_bars included) executed: its one run loads the
    range's bars and materializes each asset's selected partitions, reading the history before the
    range from the store."""
    p = own_pairs_home
    sessions = _last_sessions(4)
    before, dates = sessions[0], sessions[1:]
    keys = [f"{d}|consumer" for d in dates]
    symbols = load_universe(EMBEDDED_UNIVERSE_FILE).symbols("consumer")
    preload_history(p.database_url, EmbeddedBarSource(), symbols, before, StrategySettings().history_sessions)
    with ui_workspace(p, execute_runs=True) as context:
        instance = context.instance
        group = _group(context)
        launched = launch_asset_backfill(context, group, keys)
        assert run_backfill_daemon_once(context) == []
        (run,) = backfill_runs(instance, launched.backfill_id)
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS, _failures(instance, run.run_id)
        assert _materialized(instance, run.run_id) == {asset: set(keys) for asset in group}
        bars = MarketDataStore(database_url=p.database_url).read_bars(
            symbols, *partitions.sessions_span_utc(dates[0], dates[-1])
        )
        days = bars["timestamp"].dt.tz_convert(partitions.EXCHANGE_TZ).dt.strftime("%Y-%m-%d")
        loaded = bars[days.isin(dates)]  # the preload ended before the range: these are raw_bars' work
        assert set(zip(loaded["symbol"], days[days.isin(dates)])) == {(sym, d) for sym in symbols for d in dates}


def _materialized(instance, run_id) -> dict[str, set[str]]:
    done: dict[str, set[str]] = {}
    for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        m = r.event_log_entry.asset_materialization
        done.setdefault(m.asset_key.to_user_string(), set()).add(str(m.partition))
    return done


def _failures(instance, run_id) -> str:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    return "; ".join(
        f"{r.event_log_entry.step_key}: {r.event_log_entry.dagster_event.step_failure_data.error.to_string()}"
        for r in records
    )


@pytest.fixture()
def energy_history(own_pairs_home):
    """A home whose store holds energy's history up to the session before the last two, and those
    two sessions (the range's own sessions are raw_bars' work in the run)."""
    p = own_pairs_home
    sessions = _last_sessions(3)
    symbols = load_universe(EMBEDDED_UNIVERSE_FILE).symbols("energy")
    preload_history(p.database_url, EmbeddedBarSource(), symbols, sessions[0], StrategySettings().history_sessions)
    return p, sessions[1:]


def _preload_session(p: Paths, session: str) -> None:
    symbols = load_universe(EMBEDDED_UNIVERSE_FILE).symbols("energy")
    preload_history(p.database_url, EmbeddedBarSource(), symbols, session, 1)


def test_ui_job_backfill_of_a_range_is_refused_before_anything_is_written(energy_history):
    """The job page's backfill of 2 sessions: one range run, which Dagster resolves to its first
    partition (dagster-io/dagster#28861) — refused at the first step, nothing written or recorded."""
    p, sessions = energy_history
    keys = [f"{d}|energy" for d in sessions]
    with ui_workspace(p, execute_runs=True) as context:
        instance = context.instance
        launched = launch_job_backfill(context, "daily_pairs", keys, assets=_group(context))
        assert run_backfill_daemon_once(context) == []
        (run,) = backfill_runs(instance, launched.backfill_id)
        assert run.job_name == "daily_pairs"
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            keys[0],
            keys[-1],
        )
        assert run.tags["dagster/partition/date"] == sessions[0]  # Dagster's copy of the first partition's tags
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failures = _failures(instance, run.run_id)
        assert failures.startswith("raw_bars: ") and "PartitionKeyError" in failures, failures
        assert f"partition range {keys[0]}...{keys[-1]}" in failures and "dagster-io/dagster#28861" in failures, (
            failures
        )
        assert "asset backfill" in failures
        assert _materialized(instance, run.run_id) == {}
        bars = MarketDataStore(database_url=p.database_url).read_bars(
            load_universe(EMBEDDED_UNIVERSE_FILE).symbols("energy"),
            *partitions.sessions_span_utc(sessions[0], sessions[-1]),
        )
        assert bars.empty  # raw_bars wrote nothing
        assert not (p.outputs_dir / "correlation_matrix").exists()


def test_ui_job_backfill_of_one_partition_runs_the_range_path(energy_history):
    """The job page's backfill of one partition: a range run of one partition (its tags agree), which
    the IO manager stores as a range (``{partition key: object}``) — before issue 16 its first output
    failed with ``TypeError: Object of type DataFrame is not JSON serializable``."""
    p, sessions = energy_history
    _preload_session(p, sessions[0])  # the history through the session before the one backfilled
    key = f"{sessions[-1]}|energy"
    with ui_workspace(p, execute_runs=True) as context:
        instance = context.instance
        group = _group(context)
        launched = launch_job_backfill(context, "daily_pairs", [key], assets=group)
        assert run_backfill_daemon_once(context) == []
        (run,) = backfill_runs(instance, launched.backfill_id)
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            key,
            key,
        )
        assert "dagster/partition" not in run.tags  # a range run, not a one-partition run
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS, _failures(instance, run.run_id)
        assert _materialized(instance, run.run_id) == {asset: {key} for asset in group}
        for asset in ["correlation_matrix", "cointegrated_pairs", "garch_models", "model_selection", "gru_models"]:
            assert (p.outputs_dir / asset / sessions[-1] / "energy.parquet").exists(), asset
        assert (p.outputs_dir / "trading_config" / sessions[-1] / "energy.json").exists()
