"""What the project's two Dagster event logs (SQLite: ``pairs_assets.instance.sqlite``;
PostgreSQL: ``pairs_assets.instance.postgres``) add to Dagster's, shared by both.

Relies on private Dagster 1.13 names (the event-log SQL tables, ``AssetCheckState``,
``AssetCheckPartitionInfo``, the ``_store_asset_*`` hooks of ``SqlEventLogStorage``); re-read them
on a Dagster upgrade. Rows written are those Dagster writes; only how many statements differ.

* :class:`BatchedCheckWrites` — a range run's check bookkeeping in batches:
  - a planned check over a partition range gets one ``PLANNED`` row per partition, as in Dagster,
    but each row holds the planned event narrowed to its own partition. Dagster serializes the
    whole range's planned event into every row: 7,920 partitions × ~186 kB per check, quadratic in
    the range (and over PostgreSQL's message limit in one multi-row insert: ``invalid message
    length``);
  - :meth:`BatchedCheckWrites.index_batch` writes the index side of many events at once (asset
    event tags, asset records, planned check rows, check evaluations resolving their planned rows).
* :class:`ClosedRunGuard` — no asset materialization, observation or check evaluation is recorded
  for a run that is FAILED or CANCELED (an orphaned Celery step of a run whose worker died: issue
  21 item 4); the write raises :class:`~pairs_assets.errors.RunClosedError` naming run and assets.
* :class:`BulkCheckState` — the check partition status the UI's Checks tab and a check's
  *Partitions* view read (``get_asset_check_state``), computed from the rows Dagster reads
  (``get_asset_check_partition_info``'s: latest check row and latest materialization per
  partition) with two queries per asset and one pass per check, instead of Dagster's per-row
  ``has_partition_key`` + subset union (each ``has_partition_key`` re-hashes the session calendar's
  ~340 exclusions: ~3 ms a row, 479 s for ``pairs demo``'s 47,520 check rows in the UI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as db
from dagster import (
    DagsterEventType,
    DagsterInvariantViolationError,
    Enum,
    EnumValue,
    EventLogEntry,
    Field,
    serialize_value,
)
from dagster._core.events import ASSET_EVENTS, AssetCheckEvaluationPlanned
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

_KEY_SENTINEL = "__pairs_partition_key__"
#: Planned check rows per INSERT statement (bounded statements on either database).
PLANNED_ROWS_PER_STATEMENT = 2_000
#: What an evaluation writes into its check-execution row (Dagster's ``_update_asset_check_evaluation``).
_EVALUATION_COLUMNS = (
    "execution_status",
    "evaluation_event",
    "evaluation_event_timestamp",
    "evaluation_event_storage_id",
    "materialization_event_storage_id",
)


#: Event kinds that write into the asset catalog: refused for a closed run (:class:`ClosedRunGuard`).
CATALOG_EVENTS = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_CHECK_EVALUATION,
    }
)


class ClosedRunGuard:
    """Mixin for a ``SqlEventLogStorage``: :meth:`refuse_closed_runs` before a write.

    The run statuses come from :meth:`_run_statuses`: here the instance's run storage (a separate
    database on SQLite: read just before the write); PostgreSQL reads them in the writing
    transaction under a share lock on the runs' rows, so a run cannot be failed between the check
    and the commit.
    """

    def refuse_closed_runs(self, conn, events: Sequence[EventLogEntry]) -> None:
        from pairs_assets.errors import RunClosedError
        from pairs_assets.instance.liveness import CLOSED_STATUSES, closed_run_message

        by_run: dict[str, list[EventLogEntry]] = {}
        for event in events:
            if event.run_id and event.is_dagster_event and event.dagster_event_type in CATALOG_EVENTS:
                by_run.setdefault(event.run_id, []).append(event)
        if not by_run:
            return
        statuses = self._run_statuses(conn, sorted(by_run))
        closed = {run_id: status for run_id, status in statuses.items() if status in {s.value for s in CLOSED_STATUSES}}
        if not closed:
            return
        run_id, status = next(iter(sorted(closed.items())))
        refused = by_run[run_id]
        kinds = sorted({e.dagster_event_type.value.lower().replace("_", " ") for e in refused})
        keys = sorted({self._asset_key_of(e) for e in refused})
        what = f"{len(refused)} {' / '.join(kinds)} event(s) of {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
        raise RunClosedError(closed_run_message(run_id, status, what))

    @staticmethod
    def _asset_key_of(event: EventLogEntry) -> str:
        dagster_event = event.get_dagster_event()
        data = dagster_event.event_specific_data
        if dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            return f"{data.asset_key.to_user_string()}:{data.check_name}"  # type: ignore[union-attr]
        key = dagster_event.asset_key.to_user_string() if dagster_event.asset_key else "?"
        partition = dagster_event.partition
        return f"{key}[{partition}]" if partition else key

    def _run_statuses(self, conn, run_ids: Sequence[str]) -> dict[str, str]:
        if not getattr(self, "has_instance", False):  # a storage used on its own: nothing to judge by
            return {}
        instance = self._instance  # type: ignore[attr-defined]
        found = {}
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            if run is not None:
                found[run_id] = run.status.value
        return found


def _status(passed: bool) -> str:
    return (AssetCheckExecutionRecordStatus.SUCCEEDED if passed else AssetCheckExecutionRecordStatus.FAILED).value


#: How a range run's check results reach the event log (the event logs' ``range_checks`` config):
#: ``batched`` — written by :func:`pairs_assets.instance.sqlite.record_check_evaluations` as the run's
#: own events, in batches (private Dagster names); ``yielded`` — yielded by the step as
#: ``AssetCheckEvaluation``s, Dagster's public path (one event and statement each: slower).
RANGE_CHECK_PATHS = ("batched", "yielded")


def range_checks_field() -> Field:
    """The ``range_checks`` config field of the project's event logs (default ``batched``)."""
    return Field(
        Enum("RangeChecks", [EnumValue(path) for path in RANGE_CHECK_PATHS]), is_required=False, default_value="batched"
    )


class BatchedCheckWrites:
    """Mixin for a ``SqlEventLogStorage``: planned check rows narrowed per partition, and the index
    side of a batch of events written with a few statements (see the module doc)."""

    #: how range runs record their check results here (``RANGE_CHECK_PATHS``; config ``range_checks``)
    range_checks = "batched"

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            self._insert_planned_checks(conn, event, event_id)

    def index_batch(self, conn, events: Sequence[EventLogEntry], rows: Sequence[dict], ids: Sequence[int]) -> None:
        """The index-side writes ``store_event`` makes for each of ``events`` (already inserted
        into the event table with storage ids ``ids``; ``rows`` their event rows): asset event
        tags and asset records for asset events, planned check rows, check evaluations."""
        if len(ids) != len(events) or any(i is None for i in ids):
            raise DagsterInvariantViolationError("Cannot store asset event tags for null event id.")
        asset = [
            (e, i)
            for e, i in zip(events, ids)
            if e.dagster_event_type in ASSET_EVENTS and e.get_dagster_event().asset_key is not None
        ]
        if asset:
            self._store_asset_event_tags(conn, [e for e, _ in asset], [i for _, i in asset])  # type: ignore[attr-defined]
            # an asset's record keeps the last event of each kind: updating it with the last one
            # per (asset, kind), in order, leaves the same row as once per event
            last_of_kind: dict[tuple[str, str], int] = {}
            for n, (event, _) in enumerate(asset):
                last_of_kind[(event.get_dagster_event().asset_key.to_string(), event.dagster_event_type)] = n
            for n in sorted(last_of_kind.values()):
                self._store_asset_event(conn, *asset[n])  # type: ignore[attr-defined]
        for event, event_id in zip(events, ids):
            if event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                self._insert_planned_checks(conn, event, event_id)
        evaluations = [
            (event, row["event"], event_id)
            for event, row, event_id in zip(events, rows, ids)
            if event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        if evaluations:
            self._record_check_evaluations(conn, evaluations)

    def _insert_planned_checks(self, conn, event: EventLogEntry, event_id: int | None) -> None:
        planned: AssetCheckEvaluationPlanned = event.get_dagster_event().event_specific_data  # type: ignore[assignment]
        common = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event_timestamp=self._event_insert_timestamp(event),  # type: ignore[attr-defined]
            evaluation_event_storage_id=event_id,
        )
        if planned.partitions_subset is None:
            conn.execute(
                AssetCheckExecutionsTable.insert().values(
                    partition=None, evaluation_event=serialize_value(event), **common
                )
            )
            return
        keys = list(planned.partitions_subset.get_partition_keys())
        template = self._planned_event_template(event, planned)
        sentinel = json.dumps(_KEY_SENTINEL)
        for start in range(0, len(keys), PLANNED_ROWS_PER_STATEMENT):
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [
                    dict(partition=key, evaluation_event=template.replace(sentinel, json.dumps(key)), **common)
                    for key in keys[start : start + PLANNED_ROWS_PER_STATEMENT]
                ],
            )

    @staticmethod
    def _planned_event_template(event: EventLogEntry, planned: AssetCheckEvaluationPlanned) -> str:
        """The planned event serialized with its subset narrowed to one placeholder partition key.

        Serialized once; each row substitutes its own (JSON-escaped) key — the same text as
        serializing the one-partition event per row, without serializing 7,800 times.
        """
        from dagster._core.definitions.partitions.subset import DefaultPartitionsSubset
        from dagster_shared.record import replace

        one = replace(planned, partitions_subset=DefaultPartitionsSubset({_KEY_SENTINEL}))
        narrowed = event._replace(dagster_event=event.get_dagster_event()._replace(event_specific_data=one))
        text = serialize_value(narrowed)
        if text.count(json.dumps(_KEY_SENTINEL)) != 1:
            raise DagsterInvariantViolationError(
                f"planned check event template for {planned.check_name}: placeholder not unique"
            )
        return text

    def _record_check_evaluations(self, conn, evaluations: Sequence[tuple[EventLogEntry, str, int]]) -> None:
        """Dagster's ``_update_asset_check_evaluation`` (run) / ``_store_runless_asset_check_evaluation``
        for many (event, serialized event, event id) at once: a run's evaluation resolves the
        run's ``PLANNED`` row of its check and partition, or is inserted where there is none.
        """
        table = AssetCheckExecutionsTable
        updates: list[dict] = []
        inserts: list[dict] = []
        existing = self._existing_rows(
            conn,
            {
                (e.run_id, e.get_dagster_event().asset_check_evaluation_data.asset_key.to_string())
                for e, _, _ in evaluations
                if e.run_id
            },
        )
        for event, text, event_id in evaluations:
            evaluation = event.get_dagster_event().asset_check_evaluation_data
            target = evaluation.target_materialization_data
            row = dict(
                asset_key=evaluation.asset_key.to_string(),
                check_name=evaluation.check_name,
                run_id=event.run_id,
                partition=evaluation.partition,
                execution_status=_status(evaluation.passed),
                evaluation_event=text,
                evaluation_event_timestamp=self._event_insert_timestamp(event),  # type: ignore[attr-defined]
                evaluation_event_storage_id=event_id,
                materialization_event_storage_id=target.storage_id if target else None,
            )
            key = (event.run_id, row["asset_key"], row["check_name"], row["partition"])
            if not event.run_id:  # runless: always a new row
                inserts.append(row)
            elif key in existing:  # the run's planned row (or an earlier evaluation: overwritten, as in Dagster)
                updates.append({**row, "row_id": existing[key]})
            else:  # none planned (e.g. a step launched outside the run): inserted, as in Dagster
                inserts.append(row)
                existing[key] = None  # its id is not known here: a later repeat updates it by key
        if inserts:
            conn.execute(table.insert(), inserts)
        # after the inserts: a later evaluation of a key inserted here overwrites it. Keyed rows and
        # NULL-partition rows in separate statements, so the unique index serves each.
        for null_partition in (False, True):
            group = [r for r in updates if (r["partition"] is None) == null_partition]
            if not group:
                continue
            if not null_partition and self._update_evaluated_rows(conn, group):
                continue
            partition_clause = (
                table.c.partition.is_(None) if null_partition else table.c.partition == db.bindparam("b_partition")
            )
            conn.execute(
                table.update()
                .where(
                    table.c.asset_key == db.bindparam("b_asset_key"),
                    table.c.check_name == db.bindparam("b_check_name"),
                    table.c.run_id == db.bindparam("b_run_id"),
                    partition_clause,
                )
                .values({c: db.bindparam(f"v_{c}") for c in _EVALUATION_COLUMNS}),
                [
                    {
                        **{f"b_{k}": r[k] for k in ("asset_key", "check_name", "run_id")},
                        **({} if null_partition else {"b_partition": r["partition"]}),
                        **{f"v_{c}": r[c] for c in _EVALUATION_COLUMNS},
                    }
                    for r in group
                ],
            )

    def _update_evaluated_rows(self, conn, rows: Sequence[dict]) -> bool:
        """Update the planned rows of ``rows`` (keyed, non-NULL partitions) in a few statements,
        where the database allows it; False leaves it to the portable one-row-per-parameter-set
        UPDATE. (psycopg2 runs that executemany one row at a time: 9 s for 7,920 rows.)"""
        return False

    @staticmethod
    def _existing_rows(
        conn, runs_and_assets: set[tuple[str, str]]
    ) -> dict[tuple[str, str, str, str | None], int | None]:
        """{(run, asset, check, partition): row id} of the check rows of these runs and assets
        (planned or evaluated)."""
        table = AssetCheckExecutionsTable.c
        found: dict[tuple[str, str, str, str | None], int | None] = {}
        for run_id, asset_key in runs_and_assets:
            rows = conn.execute(
                db.select(table.check_name, table.partition, table.id).where(
                    table.run_id == run_id,
                    table.asset_key == asset_key,
                )
            )
            for check_name, partition, row_id in rows:
                found[(run_id, asset_key, check_name, partition)] = row_id
        return found


class BulkCheckState:
    """Mixin for a ``SqlEventLogStorage``: ``get_asset_check_state`` of partitioned checks in bulk
    (see the module doc). The same rows and rules as Dagster's ``bulk_update_asset_check_state``
    from an empty state (OSS keeps no checkpoint) over ``get_asset_check_partition_info``: each
    partition's latest check row — ``PLANNED`` → in progress (or, once its run finished, skipped /
    execution failed), ``SUCCEEDED``/``FAILED`` → that status while it targets the partition's
    latest materialization, else none; keys the partitions definition does not hold are left out.
    Read with two queries per asset (latest row per check and partition; latest materialization
    per partition) instead of one join per check. Unpartitioned checks take Dagster's path.
    """

    def get_asset_check_state(self, keys):  # type: ignore[override]
        from dagster._core.storage.asset_check_state import AssetCheckState

        keys = list(keys)
        slow = [(key, pdef) for key, pdef in keys if pdef is None]
        out: dict[Any, AssetCheckState] = dict(super().get_asset_check_state(slow)) if slow else {}  # type: ignore[misc]
        by_asset: dict[Any, list] = {}
        for key, pdef in keys:
            if pdef is not None:
                by_asset.setdefault(key.asset_key, []).append((key, pdef))
        tests: dict[str, Any] = {}  # the checks of an asset share its partitions: one key test for all
        for asset_key, checks in by_asset.items():
            rows, materialized = self._latest_check_rows(asset_key, [key.name for key, _ in checks])
            for key, pdef in checks:
                ident = pdef.get_serializable_unique_identifier()
                if ident not in tests:
                    tests[ident] = _partition_key_test(pdef)
                out[key] = self._bulk_check_state(key, pdef, tests[ident], rows.get(key.name, []), materialized)
        return out

    def _latest_check_rows(self, asset_key, check_names: Sequence[str]):
        """({check: [(partition, status, run id, check event id, target materialization id)]},
        {partition: latest materialization id, None: the latest unpartitioned one})."""
        from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as events

        checks_t = AssetCheckExecutionsTable
        latest_ids = (
            db.select(db.func.max(checks_t.c.id).label("id"))
            .where(
                checks_t.c.asset_key == asset_key.to_string(),
                checks_t.c.check_name.in_(list(check_names)),
                checks_t.c.evaluation_event_storage_id.isnot(None),  # old PLANNED rows may lack it
            )
            .group_by(checks_t.c.check_name, checks_t.c.partition)
            .subquery()
        )
        query = db.select(
            checks_t.c.check_name,
            checks_t.c.partition,
            checks_t.c.execution_status,
            checks_t.c.run_id,
            checks_t.c.evaluation_event_storage_id,
            checks_t.c.materialization_event_storage_id,
        ).join(latest_ids, checks_t.c.id == latest_ids.c.id)
        materializations = (
            db.select(events.c.partition, db.func.max(events.c.id))
            .where(
                events.c.asset_key == asset_key.to_string(),
                events.c.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION.value,
                events.c.partition.isnot(None),
            )
            .group_by(events.c.partition)
        )
        rows: dict[str, list] = {}
        with self.index_connection() as conn:  # type: ignore[attr-defined]
            for name, *rest in conn.execute(query):
                rows.setdefault(name, []).append(tuple(rest))
            materialized: dict[str | None, int] = {p: i for p, i in conn.execute(materializations)}
        unpartitioned = self._get_latest_unpartitioned_materialization_storage_ids([asset_key])  # type: ignore[attr-defined]
        if asset_key in unpartitioned:
            materialized[None] = unpartitioned[asset_key]
        return rows, materialized

    def _bulk_check_state(self, key, partitions_def, valid, rows, materialized):
        from dagster import DagsterRunStatus, RunsFilter
        from dagster._core.asset_graph_view.serializable_entity_subset import SerializableEntitySubset
        from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionResolvedStatus as Resolved
        from dagster._core.storage.asset_check_state import AssetCheckState
        from dagster._core.storage.dagster_run import FINISHED_STATUSES

        by_status: dict[Any, list[str]] = {status: [] for status in Resolved}
        planned_by_run: dict[str, list[str]] = {}
        latest = 0
        unpartitioned = materialized.get(None)
        for pk, status, run_id, check_event_id, target_id in rows:
            latest_mat = max(filter(None, [materialized.get(pk), unpartitioned]), default=None)
            latest = max(latest, check_event_id, latest_mat or 0)
            if pk is None or not valid(pk):
                continue
            if status == AssetCheckExecutionRecordStatus.PLANNED.value:
                planned_by_run.setdefault(run_id, []).append(pk)
            elif status in (
                AssetCheckExecutionRecordStatus.SUCCEEDED.value,
                AssetCheckExecutionRecordStatus.FAILED.value,
            ):
                if latest_mat is None or latest_mat == target_id:  # AssetCheckPartitionInfo.is_current
                    by_status[
                        Resolved.SUCCEEDED
                        if status == AssetCheckExecutionRecordStatus.SUCCEEDED.value
                        else Resolved.FAILED
                    ].append(pk)
        finished: Mapping[str, DagsterRunStatus] = {}
        if planned_by_run:
            finished = {
                run.run_id: run.status
                for run in self._instance.get_runs(  # type: ignore[attr-defined]
                    filters=RunsFilter(run_ids=list(planned_by_run), statuses=FINISHED_STATUSES)
                )
            }
        in_progress_runs = {}
        for run_id, pks in planned_by_run.items():
            if run_id in finished:
                target = Resolved.EXECUTION_FAILED if finished[run_id] == DagsterRunStatus.FAILURE else Resolved.SKIPPED
                by_status[target].extend(pks)
            else:
                by_status[Resolved.IN_PROGRESS].extend(pks)
                in_progress_runs[run_id] = SerializableEntitySubset.from_coercible_value(
                    key, partitions_def.subset_with_partition_keys(pks), partitions_def
                )
        subsets = {
            status: SerializableEntitySubset.from_coercible_value(
                key, partitions_def.subset_with_partition_keys(pks), partitions_def
            )
            for status, pks in by_status.items()
        }
        return AssetCheckState(latest_storage_id=latest, subsets=subsets, in_progress_runs=in_progress_runs)


def _partition_key_test(partitions_def):
    """A fast ``partitions_def.has_partition_key``: the keys of each dimension computed once."""
    import dagster as dg

    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = [(d.name, frozenset(d.partitions_def.get_partition_keys())) for d in partitions_def.partitions_defs]
        names = [name for name, _ in dims]

        # a multi-partition key's string joins the dimensions' keys in the definition's order
        def valid(pk: str) -> bool:
            parts = pk.split("|")
            return len(parts) == len(dims) and all(part in keys for part, (_, keys) in zip(parts, dims))

        if names != sorted(names):  # not the order keys are written in: Dagster's own test
            return partitions_def.has_partition_key
        return valid
    keys = frozenset(partitions_def.get_partition_keys())
    return keys.__contains__


def materialization_targets(instance, run_id: str, asset_key, partition_keys) -> dict:
    """``{partition key: AssetCheckEvaluationTargetMaterializationData}`` — each partition's latest
    materialization, where ``run_id`` made it: what Dagster records as the target of a yielded
    ``AssetCheckResult`` (``_get_partitioned_target_materialization_data``, one query per
    partition). Here one query per 5,000 partitions reading only (id, partition, run, time) from the
    event table: ``fetch_materializations`` would deserialize every event (a range run copies its
    metadata onto each partition's materialization).
    """
    import datetime as dt

    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData as Target,
    )
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as events
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    keys = sorted({str(k) for k in partition_keys})
    storage = instance.event_log_storage
    out: dict[str, Target] = {}
    for start in range(0, len(keys), 5_000):  # bounded IN lists
        chunk = keys[start : start + 5_000]
        if not isinstance(storage, SqlEventLogStorage):  # any other storage: Dagster's records
            for record in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk), limit=len(chunk) * 2
            ).records:  # newest first
                if record.partition_key not in out and record.run_id == run_id:
                    out[record.partition_key] = Target(
                        storage_id=record.storage_id, run_id=run_id, timestamp=record.timestamp
                    )
            continue
        latest = (
            db.select(db.func.max(events.c.id))
            .where(
                events.c.asset_key == asset_key.to_string(),
                events.c.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION.value,
                events.c.partition.in_(chunk),
            )
            .group_by(events.c.partition)
        )
        query = db.select(events.c.id, events.c.partition, events.c.run_id, events.c.timestamp).where(
            events.c.id.in_(latest)
        )
        with storage.index_connection() as conn:
            for storage_id, partition, row_run_id, stamp in conn.execute(query):
                if row_run_id != run_id:
                    continue
                # stored as naive UTC (Dagster's ``_event_insert_timestamp``)
                when = stamp.replace(tzinfo=dt.UTC).timestamp() if isinstance(stamp, dt.datetime) else float(stamp)
                out[partition] = Target(storage_id=int(storage_id), run_id=run_id, timestamp=when)
    return out
