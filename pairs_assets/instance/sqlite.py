"""The local instance's event log: Dagster's SQLite event log, with batched writes.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every statement it runs
(so no compiled-statement cache), opens up to four connections per event, checks that the
asset-check table exists on every check event, and its ``store_event_batch`` stores events one at
a time. A single-run backfill of 1,300 sessions × 6 sectors (``pairs demo``) records 7,800
materializations, 7,800 planned materializations and 46,800 partition-scoped check evaluations:
that bookkeeping, not the data, took 16 minutes.

``PairsSqliteEventLogStorage`` stores the same rows in the same SQLite files (``<DAGSTER_HOME>/
history/runs``, where Dagster's default puts them: an existing home keeps its history), so the UI,
the daemon and every Dagster query read them unchanged. It differs in how it writes:

* one engine per shard for the life of the storage (``NullPool``: still a fresh SQLite connection
  per use, so other processes see every commit);
* ``store_event_batch`` writes a batch in one transaction per shard (events, asset-event tags,
  asset records, check rows) — Dagster hands it batches of a range run's materializations when
  ``DAGSTER_EVENT_BATCH_SIZE`` is set (the storage sets it to ``event_batch_size`` where it is
  unset: without batches, `dagster asset materialize` of 1,320 partitions took 159 s instead of
  26 s, process start included — two fsynced commits per event), and :func:`record_check_evaluations` hands it a range run's
  partition-scoped check evaluations;
* the planned check rows narrowed per partition and the check state computed in bulk, as on
  PostgreSQL (``pairs_assets.instance.event_log``, shared with ``pairs_assets.instance.postgres``).

dagster.yaml names :class:`PairsDagsterInstance` (``instance_class``), whose default event log it is;
deploy/dagster.yaml uses PostgreSQL instead.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster import DagsterEvent, DagsterEventType, DagsterInvariantViolationError, EventLogEntry, Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._serdes import ConfigurableClassData
from dagster._time import get_current_timestamp
from sqlalchemy.pool import NullPool

from pairs_assets.instance.event_log import BatchedCheckWrites, BulkCheckState, range_checks_field

#: SQLite's busy timeout Dagster uses for its own shards.
_BUSY_TIMEOUT_S = 30
#: Run shards whose engine is kept; a long-lived process (webserver, daemon) touches many runs.
_RUN_ENGINES_KEPT = 16
#: Events per batch :func:`record_check_evaluations` hands the storage.
CHECK_BATCH = 5_000


class PairsSqliteEventLogStorage(BatchedCheckWrites, BulkCheckState, SqliteEventLogStorage):
    """Dagster's SQLite event log with reused engines and real batched writes (see the module doc).

    Config: ``base_dir`` (optional; default ``$DAGSTER_HOME/history/runs``, Dagster's own layout);
    ``event_batch_size`` (default 1000: sets ``DAGSTER_EVENT_BATCH_SIZE`` where it is unset);
    ``batched_writes`` (default true; false writes every event with Dagster's own SQLite code —
    only the shared planned-row and check-state parts stay: the comparison the benchmark makes);
    ``range_checks`` (``batched``, the default, or ``yielded``: Dagster's public path, see
    :data:`pairs_assets.instance.event_log.RANGE_CHECK_PATHS`).
    """

    def __init__(
        self,
        base_dir: str,
        inst_data: ConfigurableClassData | None = None,
        batched_writes: bool = True,
        range_checks: str = "batched",
    ):
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._has_check_table = False
        self.batched_writes = batched_writes
        self.range_checks = range_checks
        super().__init__(base_dir, inst_data=inst_data)

    @property
    def batches_check_evaluations(self) -> bool:
        return self.batched_writes

    @classmethod
    def config_type(cls):
        return {
            "base_dir": Field(StringSource, is_required=False),
            "event_batch_size": Field(int, is_required=False, default_value=1000),
            "batched_writes": Field(bool, is_required=False, default_value=True),
            "range_checks": range_checks_field(),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
        # Dagster batches a range run's materializations only when DAGSTER_EVENT_BATCH_SIZE is set
        # (read per event, in every process that opens the instance: runs, `dagster asset
        # materialize`, webserver, daemon); this storage writes a batch in one transaction, so it
        # turns batching on where the environment does not say otherwise (0 leaves it off)
        batch = config_value.get("event_batch_size", 1000)
        if batch:
            os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(batch))
        base_dir = config_value.get("base_dir")
        if not base_dir:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise dg.DagsterInvariantViolationError(
                    "PairsSqliteEventLogStorage: set DAGSTER_HOME or give event_log_storage.config.base_dir"
                )
            base_dir = os.path.join(home, "history", "runs")
        return cls(
            base_dir,
            inst_data=inst_data,
            batched_writes=config_value.get("batched_writes", True),
            range_checks=config_value.get("range_checks", "batched"),
        )

    # --- connections -------------------------------------------------------------------------
    def _engine(self, shard: str):
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard), poolclass=NullPool, connect_args={"timeout": _BUSY_TIMEOUT_S}
            )
            self._engines[shard] = engine
            run_shards = [s for s in self._engines if s != INDEX_SHARD_NAME]
            if len(run_shards) > _RUN_ENGINES_KEPT:
                self._engines.pop(run_shards[0]).dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        if not self.batched_writes:
            with super()._connect(shard) as conn:
                yield conn
            return
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()

    @property
    def supports_asset_checks(self) -> bool:
        # once the table exists it stays (Dagster re-checks on every check event)
        if not self._has_check_table:
            self._has_check_table = super().supports_asset_checks
        return self._has_check_table

    # --- writes ------------------------------------------------------------------------------
    def store_event(self, event: EventLogEntry) -> None:
        if not self.batched_writes:
            return super().store_event(event)
        self.store_event_batch([event])

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` (any types, any runs) with one transaction per shard.

        The rows are those ``SqliteEventLogStorage.store_event`` writes for each event: the run
        shard's event rows, then in the index shard the mirrored asset/check/run-status events
        with their tags, the asset records and the check-execution rows. Each event is serialized
        once. An asset's record (last materialization, last run) is updated with the last event of
        each kind per asset — the same final row as updating it once per event in order.
        """
        if not events:
            return
        if not self.batched_writes:
            return super().store_event_batch(events)
        rows = [self._event_to_row(event) for event in events]  # one serialization each
        by_run: dict[str, list[dict]] = {}
        for event, row in zip(events, rows):
            by_run.setdefault(event.run_id, []).append(row)
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)
        mirrored = [(event, row) for event, row in zip(events, rows) if self._mirrored(event)]
        if not mirrored:
            return
        if any(e.dagster_event_type in ASSET_CHECK_EVENTS for e, _ in mirrored) and not self.supports_asset_checks:
            raise DagsterInvariantViolationError(
                "Asset checks require a database schema migration. Run `dagster instance migrate`."
            )
        with self.index_connection() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True),
                    [row for _, row in mirrored],
                )
            ]
            self.index_batch(conn, [e for e, _ in mirrored], [r for _, r in mirrored], ids)

    @staticmethod
    def _mirrored(event: EventLogEntry) -> bool:
        kind = event.dagster_event_type if event.is_dagster_event else None
        return kind is not None and (
            kind in ASSET_EVENTS or kind in ASSET_CHECK_EVENTS or kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
        )


def record_check_evaluations(
    context: dg.AssetExecutionContext, evaluations: Iterable[dg.AssetCheckEvaluation]
) -> int:
    """Record ``evaluations`` as the run's own ``ASSET_CHECK_EVALUATION`` events, in batches.

    The events are those Dagster records when a step yields an ``AssetCheckEvaluation`` (same
    type, job, step, tags, message, run), written with the instance's ``store_event_batch``
    instead of one log call, one event and four SQLite connections each. Every evaluation
    resolves its partition's ``PLANNED`` row of the run, as a yielded one does. Gating is the
    caller's: it must fail the step when a blocking ERROR evaluation failed (Dagster does that for
    yielded ones). On a storage without batched check writes (Dagster's own) the events are
    stored one by one through the instance. Returns how many were recorded.
    """
    step_context = context.op_execution_context.get_step_execution_context()
    step = step_context.step
    instance = context.instance
    storage = instance.event_log_storage
    # both project event logs (SQLite, PostgreSQL) write check evaluations in batches
    batched = isinstance(storage, BatchedCheckWrites) and getattr(storage, "batches_check_evaluations", True)
    run_id, job_name = context.run_id, step_context.job_name
    tags: Mapping[str, str] = step_context.event_tags
    pid = os.getpid()
    buffer: list[EventLogEntry] = []
    count = 0

    def flush() -> None:
        if batched:
            storage.store_event_batch(buffer)
        else:
            for entry in buffer:
                instance.handle_new_event(entry)
        buffer.clear()

    for evaluation in evaluations:
        message = (
            f"Asset check '{evaluation.check_name}' on '{evaluation.asset_key.to_user_string()}' "
            + ("passed." if evaluation.passed else "did not pass.")
            + ("" if evaluation.description is None else f" Description: '{evaluation.description}'")
        )
        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
            job_name=job_name,
            step_handle=step.handle,
            node_handle=step.node_handle,
            step_kind_value=step.kind.value,
            logging_tags=tags,
            event_specific_data=evaluation,
            message=message,
            pid=pid,
        )
        buffer.append(
            EventLogEntry(
                user_message=message,
                level=10,  # DEBUG, as Dagster logs a step's check evaluation
                job_name=job_name,
                run_id=run_id,
                error_info=None,
                timestamp=get_current_timestamp(),
                step_key=step.key,
                dagster_event=event,
            )
        )
        count += 1
        if len(buffer) >= CHECK_BATCH:
            flush()
    if buffer:
        flush()
    if batched and count and hasattr(storage, "analyze"):
        storage.analyze()  # PostgreSQL: plan the UI's check-status query on the grown tables
    return count


class PairsDagsterInstance(dg.DagsterInstance):
    """The local instance: Dagster's defaults under its home, the event log a :class:`PairsSqliteEventLogStorage`.

    Named by dagster.yaml's ``instance_class``. Dagster hands ``config_defaults`` the instance's
    directory however the instance is opened (``DagsterInstance.get()`` from ``DAGSTER_HOME``,
    ``DagsterInstance.from_config(dir)``, a run worker's instance reference), so the event log
    finds ``<dir>/history/runs`` — the files Dagster's own default uses — without a path in the
    YAML or an environment variable. An ``event_log_storage`` or ``storage`` block in the YAML
    still overrides it.
    """

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        import yaml
        from dagster._core.instance.ref import InstanceRef

        defaults = dict(InstanceRef.config_defaults(base_dir))
        event_log = ConfigurableClassData(
            __name__,
            PairsSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": os.path.join(base_dir, "history", "runs", "")}, default_flow_style=False),
        )
        defaults["event_log_storage"] = event_log

        def entry(data: ConfigurableClassData) -> dict:
            return {"module_name": data.module_name, "class_name": data.class_name, "config_yaml": data.config_yaml}

        defaults["storage"] = ConfigurableClassData(
            "dagster._core.storage.legacy_storage",
            "CompositeStorage",
            yaml.dump(
                {
                    "run_storage": entry(defaults["run_storage"]),
                    "event_log_storage": entry(event_log),
                    "schedule_storage": entry(defaults["schedule_storage"]),
                },
                default_flow_style=False,
            ),
        )
        return defaults
