"""The Dagster instance plugins: the one package where the project relies on private Dagster names.

* ``event_log`` — batched check bookkeeping and the bulk check status, shared by both event logs;
* ``sqlite`` — the local instance (``PairsDagsterInstance``) and its batched SQLite event log;
* ``postgres`` — dagster-postgres's storages through psycopg2, with batched range writes;
* ``run_recovery`` — runs left STARTED by a dead process: found and failed (the dead-run sensor);
* ``progress`` — a long in-process run's progress, read from the event log while it works;
* ``worker`` — the Celery app behind ``pairs worker``;
* ``tags`` — Dagster's run tags that name a run's partitions.

``PRIVATE_API.md`` beside this file lists every private Dagster name these modules use and why;
``pairs_assets_tests/test_private_dagster_api.py`` fails when a new one appears without it, or one
appears outside this package. ``resources.dagster_sqlite_storage``, ``resources.dagster_storage``
and ``pairs_assets.run_recovery`` / ``.progress`` / ``.worker`` are the old import paths (an existing
dagster.yaml names them).

The assets reach this package through one function, :func:`record_partition_checks`; it imports
the storage modules only when a range run records its checks. How (the event log's ``range_checks``
setting): ``batched`` — written in batches as the run's own events, through private Dagster names —
or ``yielded`` — yielded by the step, Dagster's public path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import dagster as dg


class RecordedChecks(NamedTuple):
    """What :func:`record_partition_checks` did: ``evaluations`` (every one, as recorded or to
    record) and ``to_yield`` (those the step must yield itself: Dagster's public path; empty when
    they were written here in batches)."""

    evaluations: list
    to_yield: list


def range_checks_path(instance: dg.DagsterInstance) -> str:
    """``batched`` or ``yielded``: the event log's ``range_checks`` setting. A storage that is not one
    of the project's (Dagster's own, in ``dg.instance_for_test``) takes the public path."""
    return getattr(instance.event_log_storage, "range_checks", "yielded")


def record_partition_checks(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    results: Iterable[tuple[str, dg.AssetCheckResult, bool]],
) -> RecordedChecks:
    """Record a range run's check results, each against its own partition.

    Parameters
    ----------
    context : dagster.AssetExecutionContext
        The range run's step (after its materializations were recorded).
    asset_key : dagster.AssetKey
        The checked asset.
    results : iterable of (partition key, AssetCheckResult, blocking)
        One per check and partition, in the order to record them.

    Returns
    -------
    RecordedChecks
        The ``AssetCheckEvaluation``s: each names its partition and targets that partition's latest
        materialization by this run (so the check's *Partitions* view counts it, as for a
        one-partition run). With the event log's ``range_checks: batched`` (the default of both
        project event logs) they are written here as the run's own ``ASSET_CHECK_EVALUATION``
        events, in batches (:func:`pairs_assets.instance.sqlite.record_check_evaluations`); with
        ``yielded`` (or on a storage that is not the project's) they come back in ``to_yield`` and
        the step yields them — Dagster's public path. Gating is the caller's either way: fail the
        step when a blocking ERROR evaluation failed, as Dagster does for a yielded check result.
    """
    import dagster as dg

    from pairs_assets.instance.event_log import materialization_targets

    rows = [(str(partition), result, blocking) for partition, result, blocking in results]
    targets = materialization_targets(context.instance, context.run_id, asset_key, sorted({p for p, _r, _b in rows}))
    evaluations = [
        dg.AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=result.check_name,
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
            blocking=blocking,
            partition=partition,
            target_materialization_data=targets.get(partition),
        )
        for partition, result, blocking in rows
    ]
    if range_checks_path(context.instance) == "yielded":
        return RecordedChecks(evaluations, evaluations)
    from pairs_assets.instance.sqlite import record_check_evaluations

    record_check_evaluations(context, evaluations)
    return RecordedChecks(evaluations, [])
