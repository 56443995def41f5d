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
  PostgreSQL (``pairs_assets.instance.event_log``, shared with ``pairs_assets.instance.postgres``);
* a FAILED or CANCELED run's materializations, observations and check evaluations are refused
  (``ClosedRunGuard``: an orphaned step writes nothing into a closed run).

Failure modes. A run's events live in its own file and the asset catalog (the mirrored asset,
check and run-status events, asset records, check rows) in ``index.db``: two files, two commits,
and SQLite's WAL mode makes no transaction atomic across files. Dagster's own storage commits per
event (a kill between its two commits loses at most one event from the catalog); a batch of 1,000
would lose up to 1,000. Here a batch with mirrored events is written under a journal:

1. ``index.db``: an intent row (``pairs_pending_batches``: batch id, run, writer pid/host/start);
2. the run's file: the events and a mark (``pairs_batch_marks``: batch id, first and last event id);
3. ``index.db``: the catalog rows, and the intent row deleted — one transaction.

A kill after 1 leaves an intent whose writer is gone. :meth:`PairsSqliteEventLogStorage.
repair_interrupted_batches` settles each: without the mark (killed before 2 committed) the intent
is dropped — neither side has the batch; with it (killed between 2 and 3) the batch's mirrored
events are read back from the run's file and written to the catalog with the intent's deletion,
in one transaction — both sides have it. It runs when a process first writes to the event log and
on every ``dead_run_recovery`` tick (``fail_dead_runs``): "repaired on the next start".

A lock held past ``lock_timeout_s`` (default 30 s, Dagster's busy timeout) raises
:class:`~pairs_assets.errors.EventLogLockedError`, naming the file. When it strikes the catalog
write (3) the run file's rows of the batch are deleted again first, so nothing of the batch is
kept; and Dagster's fallback (``handle_new_event`` stores a failed batch again one event at a
time) gets the same error at once for those events instead of storing them again: Dagster's stock
fallback re-inserted a batch whose run-file commit had succeeded — 8,920 materializations for 7,920
partitions, and the run "succeeded".

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
import sqlalchemy as sa
from dagster import DagsterEvent, DagsterEventType, DagsterInvariantViolationError, EventLogEntry, Field, StringSource
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._serdes import ConfigurableClassData
from dagster._time import get_current_timestamp
from sqlalchemy.pool import NullPool

from pairs_assets.instance.event_log import BatchedCheckWrites, BulkCheckState, ClosedRunGuard, range_checks_field

#: SQLite's busy timeout Dagster uses for its own shards: the default ``lock_timeout_s``.
_BUSY_TIMEOUT_S = 30

# The write journal (see the module doc): intents in index.db, marks in each run's file.
_journal = sa.MetaData()
PendingBatches = sa.Table(
    "pairs_pending_batches",
    _journal,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(255), nullable=False),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
BatchMarks = sa.Table(
    "pairs_batch_marks",
    _journal,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("first_id", sa.Integer, nullable=False),
    sa.Column("last_id", sa.Integer, nullable=False),
)


def _after_intent_commit() -> None:
    """Called between a batch's intent commit (index.db) and its run-file commit; a test replaces it
    to crash a process exactly there."""


def _after_run_commit() -> None:
    """Called between a batch's run-file commit and its catalog commit; a test replaces it to crash
    a process exactly there (or to lock index.db from another connection)."""


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.OperationalError) and "locked" in str(exc.orig if hasattr(exc, "orig") else exc)


#: Run shards whose engine is kept; a long-lived process (webserver, daemon) touches many runs.
_RUN_ENGINES_KEPT = 16
#: Events per batch :func:`record_check_evaluations` hands the storage.
CHECK_BATCH = 5_000


class PairsSqliteEventLogStorage(ClosedRunGuard, BatchedCheckWrites, BulkCheckState, SqliteEventLogStorage):
    """Dagster's SQLite event log with reused engines and real batched writes (see the module doc).

    Config: ``base_dir`` (optional; default ``$DAGSTER_HOME/history/runs``, Dagster's own layout);
    ``event_batch_size`` (default 1000: sets ``DAGSTER_EVENT_BATCH_SIZE`` where it is unset);
    ``batched_writes`` (default true; false writes every event with Dagster's own SQLite code —
    only the shared planned-row and check-state parts stay: the comparison the benchmark makes);
    ``range_checks`` (``batched``, the default, or ``yielded``: Dagster's public path, see
    :data:`pairs_assets.instance.event_log.RANGE_CHECK_PATHS`);
    ``lock_timeout_s`` (default 30: how long a write waits for a file another connection locks).
    """

    def __init__(
        self,
        base_dir: str,
        inst_data: ConfigurableClassData | None = None,
        batched_writes: bool = True,
        range_checks: str = "batched",
        lock_timeout_s: float = _BUSY_TIMEOUT_S,
    ):
        self._engines: OrderedDict[str, Any] = OrderedDict()
        self._has_check_table = False
        self.batched_writes = batched_writes
        self.range_checks = range_checks
        self.lock_timeout_s = float(lock_timeout_s)
        self._journal_shards: set[str] = set()
        self._repaired = False
        self._stale_intents: set[str] = set()  # intents this process could not drop (index.db locked)
        # the events of a batch refused for a lock (held, so their ids stay theirs) and the error:
        # Dagster's fallback, storing them next one by one, gets the same error at once
        self._refused: tuple[list[EventLogEntry], set[int], BaseException] | None = None
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
            "lock_timeout_s": Field(float, is_required=False, default_value=float(_BUSY_TIMEOUT_S)),
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
            lock_timeout_s=config_value.get("lock_timeout_s", _BUSY_TIMEOUT_S),
        )

    # --- connections -------------------------------------------------------------------------
    def _engine(self, shard: str):
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard), poolclass=NullPool, connect_args={"timeout": self.lock_timeout_s}
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
        refused, self._refused = self._refused, None
        if refused is not None and id(event) in refused[1]:
            # Dagster's fallback for a batch refused for a lock: the same error, nothing stored twice
            raise refused[2]
        self.store_event_batch([event])

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store ``events`` (any types, any runs): per run, one transaction in its file and one in
        the catalog (under the write journal, see the module doc).

        The rows are those ``SqliteEventLogStorage.store_event`` writes for each event: the run
        shard's event rows, then in the index shard the mirrored asset/check/run-status events
        with their tags, the asset records and the check-execution rows. Each event is serialized
        once. An asset's record (last materialization, last run) is updated with the last event of
        each kind per asset — the same final row as updating it once per event in order.

        Raises
        ------
        RunClosedError
            A materialization, observation or check evaluation of a FAILED or CANCELED run.
        EventLogLockedError
            A file stayed locked past ``lock_timeout_s``; nothing of that run's events was kept.
        """
        if not events:
            return
        if not self.batched_writes:
            return super().store_event_batch(events)
        self._refused = None
        if not self._repaired:  # once per process: batches a dead writer left half-written
            try:
                self.repair_interrupted_batches()
                self._repaired = True
            except sa.exc.OperationalError:
                pass  # locked now: tried again at the next write
        self.refuse_closed_runs(None, events)
        rows = [self._event_to_row(event) for event in events]  # one serialization each
        by_run: dict[str, list[tuple[EventLogEntry, dict]]] = {}
        for event, row in zip(events, rows):
            by_run.setdefault(event.run_id, []).append((event, row))
        if (
            any(e.dagster_event_type in ASSET_CHECK_EVENTS for e in events if self._mirrored(e))
            and not self.supports_asset_checks
        ):
            raise DagsterInvariantViolationError(
                "Asset checks require a database schema migration. Run `dagster instance migrate`."
            )
        from pairs_assets.errors import EventLogLockedError

        for run_id, pairs in by_run.items():
            try:
                self._store_run_batch(run_id, pairs)
            except EventLogLockedError as error:
                self._refused = (list(events), {id(e) for e in events}, error)
                raise

    def _store_run_batch(self, run_id: str, pairs: Sequence[tuple[EventLogEntry, dict]]) -> None:
        import uuid

        from pairs_assets.instance.liveness import this_host

        mirrored = [(e, r) for e, r in pairs if self._mirrored(e)]
        if not mirrored:  # the run's file only: one commit
            with self._writing(run_id, run_id, len(pairs)) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), [r for _, r in pairs])
            return
        batch = uuid.uuid4().hex
        n = len(pairs)
        with self._writing(INDEX_SHARD_NAME, run_id, n) as conn:  # 1. intent
            self._ensure_journal(conn, INDEX_SHARD_NAME)
            if self._stale_intents:
                conn.execute(PendingBatches.delete().where(PendingBatches.c.batch_id.in_(sorted(self._stale_intents))))
                self._stale_intents.clear()
            conn.execute(
                PendingBatches.insert().values(
                    batch_id=batch, run_id=run_id, host=this_host(), pid=os.getpid(), created=get_current_timestamp()
                )
            )
        _after_intent_commit()
        try:
            with self._writing(run_id, run_id, n) as conn:  # 2. the run's events and the mark
                self._ensure_journal(conn, run_id)
                ids = self._insert_returning_ids(conn, [r for _, r in pairs])
                conn.execute(BatchMarks.insert().values(batch_id=batch, first_id=ids[0], last_id=ids[-1]))
        except BaseException:
            self._drop_intent(batch)  # nothing was written to the run's file
            raise
        _after_run_commit()
        try:
            with self._writing(INDEX_SHARD_NAME, run_id, n) as conn:  # 3. the catalog, and the intent settled
                conn.execute(PendingBatches.delete().where(PendingBatches.c.batch_id == batch))
                self._mirror(conn, mirrored)
        except BaseException:
            # nothing of the batch may stay: the run's rows go again (the intent, if it cannot be
            # dropped now, is dropped by the repair: no mark)
            with self.run_connection(run_id) as conn:
                conn.execute(
                    SqlEventLogStorageTable.delete().where(SqlEventLogStorageTable.c.id.between(ids[0], ids[-1]))
                )
                conn.execute(BatchMarks.delete().where(BatchMarks.c.batch_id == batch))
            self._drop_intent(batch)
            raise

    @staticmethod
    def _insert_returning_ids(conn, rows: Sequence[dict]) -> list[int]:
        return [
            int(r[0])
            for r in conn.execute(
                SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True),
                rows,
            )
        ]

    def _mirror(self, conn, mirrored: Sequence[tuple[EventLogEntry, dict]]) -> None:
        ids = self._insert_returning_ids(conn, [r for _, r in mirrored])
        self.index_batch(conn, [e for e, _ in mirrored], [r for _, r in mirrored], ids)

    def _ensure_journal(self, conn, shard: str) -> None:
        if shard not in self._journal_shards:
            table = PendingBatches if shard == INDEX_SHARD_NAME else BatchMarks
            table.create(conn, checkfirst=True)
            self._journal_shards.add(shard)

    def _drop_intent(self, batch: str) -> None:
        try:
            with self.index_connection() as conn:
                conn.execute(PendingBatches.delete().where(PendingBatches.c.batch_id == batch))
        except sa.exc.OperationalError:
            # still locked: dropped with this process's next intent, or by the repair once it is gone
            self._stale_intents.add(batch)

    @contextmanager
    def _writing(self, shard: str, run_id: str, n_events: int) -> Iterator[Any]:
        """A write transaction on ``shard``; a lock past ``lock_timeout_s`` raises
        :class:`~pairs_assets.errors.EventLogLockedError` naming the file."""
        from pairs_assets.errors import EventLogLockedError

        try:
            with self._connect(shard) as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            if not _is_lock_error(exc):
                raise
            raise EventLogLockedError(
                f"event log {self.path_for_shard(shard)}: database is locked — another connection held it for "
                f"more than {self.lock_timeout_s:g} s (lock_timeout_s); {n_events} event(s) of run {run_id} not "
                "stored, nothing of them kept"
            ) from exc

    def repair_interrupted_batches(self) -> list[tuple[str, str, int]]:
        """Settle every batch whose writer died between its commits (see the module doc).

        Returns ``(batch id, run id, events mirrored)`` per settled batch: 0 where the run's file
        never got it (intent dropped), else how many catalog events were written from the run's file.
        A batch whose writer still lives (same host, its pid alive since the intent) is left alone.
        """
        from dagster import deserialize_value

        from pairs_assets.instance.liveness import process_alive_since, this_host

        with self.index_connection() as conn:
            self._ensure_journal(conn, INDEX_SHARD_NAME)
            pending = conn.execute(sa.select(PendingBatches)).mappings().all()
        me, settled = this_host(), []
        for intent in pending:
            if intent["host"] != me or process_alive_since(intent["pid"], intent["created"]):
                continue  # in flight, or written from another host (a shared file): not judged here
            batch, run_id = intent["batch_id"], intent["run_id"]
            rows = []
            if os.path.exists(self.path_for_shard(run_id)):
                with self.run_connection(run_id) as conn:
                    self._ensure_journal(conn, run_id)
                    mark = conn.execute(sa.select(BatchMarks).where(BatchMarks.c.batch_id == batch)).mappings().first()
                    if mark is not None:
                        table = SqlEventLogStorageTable
                        rows = (
                            conn.execute(
                                sa.select(*[c for c in table.c if c.name != "id"])
                                .where(table.c.id.between(mark["first_id"], mark["last_id"]))
                                .order_by(table.c.id)
                            )
                            .mappings()
                            .all()
                        )
            events = [(deserialize_value(r["event"], EventLogEntry), dict(r)) for r in rows]
            mirrored = [(e, r) for e, r in events if self._mirrored(e)]
            with self.index_connection() as conn:
                claimed = conn.execute(PendingBatches.delete().where(PendingBatches.c.batch_id == batch)).rowcount
                if not claimed:
                    continue  # another process settled it
                if mirrored:
                    self._mirror(conn, mirrored)
            settled.append((batch, run_id, len(mirrored)))
        return settled

    @staticmethod
    def _mirrored(event: EventLogEntry) -> bool:
        kind = event.dagster_event_type if event.is_dagster_event else None
        return kind is not None and (
            kind in ASSET_EVENTS or kind in ASSET_CHECK_EVENTS or kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
        )


def record_check_evaluations(context: dg.AssetExecutionContext, evaluations: Iterable[dg.AssetCheckEvaluation]) -> int:
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
