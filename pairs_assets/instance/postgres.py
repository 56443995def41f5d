"""Dagster instance storage on PostgreSQL that accepts ``postgresql://`` and ``postgresql+psycopg2://``.

With SQLAlchemy 2.1 a plain ``postgresql://`` URL selects psycopg 3, whose server-side parameter
binding rejects a statement dagster-postgres 0.29 runs after every event it stores
(``NOTIFY run_events, :notify_id`` → ``syntax error at or near "$1"``): runs would fail on their
first event. These subclasses of dagster-postgres's run, event-log and schedule storages send both
schemes through psycopg2, so ``PAIRS_DAGSTER_DB_URL`` may use either. deploy/dagster.yaml names
them; the instance reference Dagster hands to run and step processes names them too, so every
process (webserver, daemon, code server, run, ``pairs worker``) opens the database the same way.

The event log also writes a range run's bookkeeping in batches and reads check status in bulk
(``pairs_assets.instance.event_log``, shared with the SQLite event log): planned materializations,
planned checks and check evaluations go in one transaction per batch (dagster-postgres batches
only materializations and observations, and stores every other event with its own statement and
NOTIFY: ~14 events/s here), and it sets ``DAGSTER_EVENT_BATCH_SIZE`` where it is unset, so
Dagster hands it batches at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as db
from dagster import DagsterEventType, EventLogEntry, Field
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from pairs_assets.instance.event_log import (
    CATALOG_EVENTS,
    BatchedCheckWrites,
    BulkCheckState,
    ClosedRunGuard,
    range_checks_field,
)

_PLAIN_SCHEMES = ("postgresql://", "postgres://")


def psycopg2_url(url: str) -> str:
    """``postgresql://…`` (or ``postgres://…``) → ``postgresql+psycopg2://…``; other URLs unchanged."""
    for scheme in _PLAIN_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _kwargs(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
    }


class _Psycopg2Url:
    """Storage mixin: the URL goes through psycopg2 whatever its scheme; config as dagster-postgres's."""

    def __init__(self, postgres_url: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(psycopg2_url(postgres_url), *args, **kwargs)

    @classmethod
    def config_type(cls):
        return pg_config()

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
        return cls(inst_data=inst_data, **_kwargs(config_value))


class PairsPostgresRunStorage(_Psycopg2Url, PostgresRunStorage):
    """dagster-postgres run storage; a plain ``postgresql://`` URL goes through psycopg2."""


#: Rows a process writes in batches before the tables are analyzed again (see ``analyze``).
ANALYZE_EVERY_ROWS = 10_000
#: Event kinds :meth:`PairsPostgresEventLogStorage.store_event_batch` writes itself, in one transaction.
_BATCHED_HERE = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }
)


class PairsPostgresEventLogStorage(
    _Psycopg2Url, ClosedRunGuard, BatchedCheckWrites, BulkCheckState, PostgresEventLogStorage
):
    """dagster-postgres event log (runs' events, materializations, check results) through psycopg2,
    with batched writes of a range run's planned events and check results (see the module doc).

    Every asset materialization, observation and check evaluation — alone or in a batch — is written
    with its index rows in one transaction (dagster-postgres commits the event, then its index rows:
    a kill between the two left a materialization in the run's log that the asset catalog never
    got), and refused when its run is FAILED or CANCELED (:class:`ClosedRunGuard`): the runs' rows
    are read ``FOR SHARE`` in that transaction, so a run failed concurrently is failed either after
    the commit or before the check, never in between.

    Config: dagster-postgres's, plus ``event_batch_size`` (default 1000: sets
    ``DAGSTER_EVENT_BATCH_SIZE`` where it is unset; 0 leaves it off) and ``range_checks``
    (``batched``, the default, or ``yielded``: Dagster's public path, see
    :data:`pairs_assets.instance.event_log.RANGE_CHECK_PATHS`).
    """

    @classmethod
    def config_type(cls):
        return {
            **pg_config(),
            "event_batch_size": Field(int, is_required=False, default_value=1000),
            "range_checks": range_checks_field(),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
        batch = config_value.get("event_batch_size", 1000)
        if batch:
            # read per event by every process that opens the instance (runs, webserver, daemon)
            os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(batch))
        storage = cls(inst_data=inst_data, **_kwargs(config_value))
        storage.range_checks = config_value.get("range_checks", "batched")
        return storage

    def store_event(self, event: EventLogEntry) -> None:
        if event.is_dagster_event and event.dagster_event_type in CATALOG_EVENTS:
            return self.store_event_batch([event])  # one transaction, run status checked
        return super().store_event(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Materializations, observations, planned materializations, planned checks, check
        evaluations in one transaction: the closed-run check, one multi-row insert of the events,
        then their index rows (:meth:`BatchedCheckWrites.index_batch`). Any other kind is stored
        one by one, as dagster-postgres does."""
        if not events:
            return
        kinds = {event.dagster_event_type for event in events}
        if not kinds <= _BATCHED_HERE:
            for event in events:
                self.store_event(event)
            return
        rows = [self._event_to_row(event) for event in events]
        self._rows_since_analyze += len(rows)
        with self.index_transaction() as conn:
            self.refuse_closed_runs(conn, events)
            ids = [
                int(r[0])
                for r in conn.execute(
                    SqlEventLogStorageTable.insert().returning(
                        SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                    ),
                    rows,
                )
            ]
            self.index_batch(conn, events, rows, ids)
        if self._rows_since_analyze >= ANALYZE_EVERY_ROWS:
            self.analyze()

    _rows_since_analyze = 0
    _runs_table_here: bool | None = None

    def _run_statuses(self, conn, run_ids) -> dict[str, str]:
        """The runs' statuses read in the writing transaction, ``FOR SHARE`` (the run storage's
        ``runs`` table, where it shares this database, as in deploy/dagster.yaml); else the instance's."""
        if self._runs_table_here is None:
            self._runs_table_here = db.inspect(conn).has_table("runs")
        if not self._runs_table_here:
            return super()._run_statuses(conn, run_ids)
        rows = conn.execute(
            db.text("SELECT run_id, status FROM runs WHERE run_id = ANY(:ids) FOR SHARE"), {"ids": list(run_ids)}
        )
        return {run_id: status for run_id, status in rows}

    def _update_evaluated_rows(self, conn, rows) -> bool:
        """Each evaluated row resolves its run's planned row by primary key, the statements sent in
        pages of 500 (psycopg2 ``execute_batch``; its ``executemany`` is one round trip a row, and a
        join with a VALUES list scanned the table once per statement)."""
        if any(r.get("row_id") is None for r in rows):
            return False
        from psycopg2.extras import execute_batch

        columns = (
            "execution_status",
            "evaluation_event",
            "evaluation_event_timestamp",
            "evaluation_event_storage_id",
            "materialization_event_storage_id",
        )
        statement = "UPDATE asset_check_executions SET " + ", ".join(f"{c} = %s" for c in columns) + " WHERE id = %s"
        cursor = conn.connection.cursor()  # the same connection and transaction
        try:
            execute_batch(
                cursor, statement, [tuple(r[c] for c in columns) + (r["row_id"],) for r in rows], page_size=500
            )
        finally:
            cursor.close()
        return True

    def analyze(self) -> None:
        """``ANALYZE`` the event and check tables after a bulk write.

        The check-status query Dagster runs for the UI (``get_asset_check_partition_info``:
        latest check row and latest materialization per partition) is planned from the tables'
        statistics; on tables that just grew by thousands of rows and were not analyzed yet
        (autovacuum had not, minutes after a load) PostgreSQL picks a nested loop, quadratic in
        the partitions: 10.7 s instead of 0.9 s for 1,320 partitions × 6 checks. A skipped ANALYZE
        (a user that does not own the tables) is only a warning.
        """
        self._rows_since_analyze = 0
        with self.index_transaction() as conn:  # committed: statistics are transactional
            for table in ("event_logs", "asset_check_executions", "asset_event_tags"):
                conn.execute(db.text(f"ANALYZE {table}"))


class PairsPostgresScheduleStorage(_Psycopg2Url, PostgresScheduleStorage):
    """dagster-postgres schedule/sensor state and ticks through psycopg2."""
