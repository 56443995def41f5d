"""Jobs: the daily pair-identification graph (one run per as-of session × sector), and the executor.

``daily_pairs`` (and the other jobs without an executor of their own) run on the code location's
executor, chosen by ``PAIRS_EXECUTOR`` (:func:`executor_for`): ``in_process`` (default: one process
per run; the stages are sequential and a subprocess per step re-imports torch, mlflow and arch),
``multiprocess`` or ``celery`` (each step a Celery task on a ``pairs worker``). ``signal_job``
always runs in-process: it is on a 5-minute clock.
"""

from __future__ import annotations

import dagster as dg

from pairs_assets.assets.common import GROUP
from pairs_assets.instance.worker import celery_app_settings

# The partitioned jobs take the partitions of the assets they select (Dagster infers them), so
# they follow whatever build_definitions was given.
daily_pairs = dg.define_asset_job(
    "daily_pairs",
    selection=dg.AssetSelection.groups(GROUP),
    description="raw bars → correlation → cointegrated pairs → GARCH → model selection → GRU → trading config, "
    "for one as-of session × sector.",
    tags={"dagster/max_retries": "0"},
    # No executor here: the code location's (executor_for, PAIRS_EXECUTOR; in-process by default).
    # Each run carries the tag dagster/partition/sector, which the production instance's run queue
    # limits per sector (deploy/dagster.yaml).
)

model_performance_job = dg.define_asset_job(
    "model_performance_job",
    selection=dg.AssetSelection.assets("model_rankings", "model_trends"),
    description="Rebuild model_rankings and model_trends from the model_performance table.",
)

signal_job = dg.define_asset_job(
    "signal_job",
    selection=dg.AssetSelection.assets("trading_signals"),
    description="5-minute signals for the session after the partition's as-of session, from its trading config "
    "and the latest bars; orders through the broker resource (dry-run by default).",
    executor_def=dg.in_process_executor,
)

paper_book_job = dg.define_asset_job(
    "paper_book_job",
    selection=dg.AssetSelection.assets("paper_book"),
    description="Mark the paper book at a session's close: positions, P&L, exposure and its checks (the exposure "
    "check blocks the signal job's entries while it fails).",
    executor_def=dg.in_process_executor,
)


EXECUTORS = ("in_process", "multiprocess", "celery")
CELERY_QUEUE = "dagster"


def executor_for(kind: str, celery_broker: str = "", celery_backend: str = "rpc://") -> dg.ExecutorDefinition:
    """The executor named by ``PAIRS_EXECUTOR``.

    Parameters
    ----------
    kind : str
        ``in_process``, ``multiprocess`` or ``celery``.
    celery_broker, celery_backend : str
        Only for ``celery``: whether ``PAIRS_CELERY_BROKER`` is set (required) and the result backend.
        The executor's config reads both from the environment (``{"env": …}``) in the process that
        runs the job, so a broker password never appears in the definitions or the UI.

    Returns
    -------
    dagster.ExecutorDefinition

    Raises
    ------
    ValueError
        An unknown kind, or ``celery`` without a broker.
    """
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind != "celery":
        raise ValueError(f"PAIRS_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if not celery_broker:
        raise ValueError(
            "PAIRS_EXECUTOR=celery needs PAIRS_CELERY_BROKER (e.g. amqp://guest:guest@127.0.0.1:5672// "
            "or redis://127.0.0.1:6379/0)"
        )
    from dagster_celery import celery_executor

    backend = {"env": "PAIRS_CELERY_BACKEND"} if celery_backend != "rpc://" else "rpc://"
    return celery_executor.configured(
        {
            "broker": {"env": "PAIRS_CELERY_BROKER"},
            "backend": backend,
            "config_source": celery_app_settings(),
        },
        name="celery",
    )
