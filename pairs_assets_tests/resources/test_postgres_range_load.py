"""A raw_bars range load on the PostgreSQL Dagster instance (issue 16, items 3 and 4).

One run of 1,050 partitions (the embedded technology bars through 2022-12-28) on deploy/dagster.yaml's
storages (``pairs_assets.instance.postgres``): every partition materialized once, one check row per
check and partition holding that partition only (Dagster's own rows each hold the whole plan: over
PostgreSQL's message limit at history scale), none left planned, and the check partition status
Dagster reads for the UI's *Partitions* view equal to the per-partition results.
"""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable

from pairs_assets import checks, partitions
from pairs_assets.instance.postgres import PairsPostgresEventLogStorage
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, materialize_raw_bars_range_with
from pairs_assets_tests.deploy import services
from resources.bar_sources import EmbeddedBarSource

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SESSIONS = 1_050
CHECK_NAMES = sorted(spec.name for spec in checks.RAW_BARS_CHECKS)
#: A planned or evaluated check row of one partition is a few kB; a copy of a 1,050-partition plan is ~100 kB.
ROW_BYTES_MAX = 20_000


def _pg_instance(tmp_path, url: str, **event_log_config):
    storage = {"module": "pairs_assets.instance.postgres", "config": {"postgres_url": url}}
    event_log = {"module": storage["module"], "config": {"postgres_url": url, **event_log_config}}
    return dg.instance_for_test(
        temp_dir=str(tmp_path),
        overrides={
            "run_storage": {**storage, "class": "PairsPostgresRunStorage"},
            "event_log_storage": {**event_log, "class": "PairsPostgresEventLogStorage"},
            "schedule_storage": {**storage, "class": "PairsPostgresScheduleStorage"},
        },
    )


def test_a_range_load_of_1050_partitions_records_its_events_and_one_check_row_each(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # what the storage sets where unset (restored after)
    sessions = [str(s.date()) for s in partitions.window_sessions("2022-12-28", SESSIONS, history_start="1990-01-02")]
    assert len(sessions) == SESSIONS
    with services.postgres_databases("dagster", "store") as dbs, _pg_instance(tmp_path, dbs["dagster"]) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PairsPostgresEventLogStorage)
        result = materialize_raw_bars_range_with(instance, dbs["store"], EmbeddedBarSource(), sessions)
        assert result.success
        keys = [f"{s}|technology" for s in sessions]

        with storage.index_connection() as conn:
            events = dict(
                conn.execute(
                    sa.select(SqlEventLogStorageTable.c.dagster_event_type, sa.func.count())
                    .where(SqlEventLogStorageTable.c.run_id == result.run_id)
                    .group_by(SqlEventLogStorageTable.c.dagster_event_type)
                ).all()
            )
            rows = conn.execute(
                sa.select(
                    AssetCheckExecutionsTable.c.check_name,
                    AssetCheckExecutionsTable.c.partition,
                    AssetCheckExecutionsTable.c.execution_status,
                    sa.func.length(AssetCheckExecutionsTable.c.evaluation_event),
                    AssetCheckExecutionsTable.c.materialization_event_storage_id,
                ).where(AssetCheckExecutionsTable.c.run_id == result.run_id)
            ).all()
        assert events["ASSET_MATERIALIZATION"] == SESSIONS
        assert events["ASSET_MATERIALIZATION_PLANNED"] == SESSIONS
        assert events["ASSET_CHECK_EVALUATION"] == SESSIONS * len(CHECK_NAMES)
        assert events["ASSET_CHECK_EVALUATION_PLANNED"] == len(
            CHECK_NAMES
        )  # one planned event per check, for the range
        assert len(rows) == SESSIONS * len(CHECK_NAMES)  # one row per check and partition
        assert sorted((name, partition) for name, partition, *_ in rows) == sorted(
            (name, key) for name in CHECK_NAMES for key in keys
        )
        assert {status for _, _, status, _, _ in rows} <= {"SUCCEEDED", "FAILED"}  # none left PLANNED
        assert max(size for *_, size, _ in rows) < ROW_BYTES_MAX
        assert all(target is not None for *_, target in rows)  # each targets its partition's materialization

        with storage.index_connection() as conn:  # the load analyzed the tables the UI's check-status query plans on
            analyzed = dict(
                conn.execute(
                    sa.text(
                        "select relname, last_analyze from pg_stat_user_tables where relname in ('event_logs', 'asset_check_executions')"
                    )
                ).all()
            )
        assert set(analyzed) == {"event_logs", "asset_check_executions"} and all(analyzed.values()), analyzed

        by_check: dict[str, dict[str, str]] = {}
        for name, partition, status, _, _ in rows:
            by_check.setdefault(name, {})[partition] = status
        for name in CHECK_NAMES:
            key = dg.AssetCheckKey(dg.AssetKey("raw_bars"), name)
            (state,) = storage.get_asset_check_state([(key, EMBEDDED_DAILY)]).values()
            status = {
                str(p): s.value for s, subset in state.subsets.items() for p in subset.subset_value.get_partition_keys()
            }
            assert status == by_check[name], name


def test_range_checks_yielded_takes_dagsters_public_path_with_the_same_rows(tmp_path, monkeypatch):
    """``range_checks: yielded``: the step yields each partition's check evaluation (Dagster stores
    them one by one); the rows are those of the batched path — one per check and partition, each
    targeting its partition's materialization, the check status equal to the results."""
    from pairs_assets.instance import range_checks_path

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    sessions = [str(s.date()) for s in partitions.window_sessions("2022-12-28", 20, history_start="1990-01-02")]
    with (
        services.postgres_databases("dagster", "store") as dbs,
        _pg_instance(tmp_path, dbs["dagster"], range_checks="yielded") as instance,
    ):
        assert range_checks_path(instance) == "yielded"
        result = materialize_raw_bars_range_with(instance, dbs["store"], EmbeddedBarSource(), sessions)
        assert result.success
        yielded = [e for e in result.get_asset_check_evaluations()]  # in the step's own event stream
        assert sorted((e.check_name, e.partition) for e in yielded) == sorted(
            (name, f"{s}|technology") for name in CHECK_NAMES for s in sessions
        )
        with instance.event_log_storage.index_connection() as conn:
            rows = conn.execute(
                sa.select(
                    AssetCheckExecutionsTable.c.check_name,
                    AssetCheckExecutionsTable.c.partition,
                    AssetCheckExecutionsTable.c.execution_status,
                    AssetCheckExecutionsTable.c.materialization_event_storage_id,
                ).where(AssetCheckExecutionsTable.c.run_id == result.run_id)
            ).all()
        assert sorted((n, p) for n, p, _, _ in rows) == sorted((e.check_name, e.partition) for e in yielded)
        assert {status for _, _, status, _ in rows} == {"SUCCEEDED"}
        assert all(target is not None for *_, target in rows)
