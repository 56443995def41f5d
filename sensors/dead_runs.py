"""Fail runs left STARTED by a dead process, every minute, from inside the daemon's loop.

Without this, only the ``pairs`` commands cleared such runs: under ``dg dev`` two killed runs filled
``max_concurrent_runs: 2`` and every queued run waited forever; in production (PostgreSQL, default
run launcher) a lost run held its sector's slot. ``fail_dead_runs`` says what proves a run dead.
"""

import time

import dagster as dg

from pairs_assets.instance.run_recovery import DEFAULT_HEARTBEAT_WINDOW_S, fail_dead_runs, revoke_closed_runs_tasks

INTERVAL_S = 60


@dg.sensor(
    name="dead_run_recovery",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks FAILURE each STARTED run whose process on this host is gone, or whose run worker on "
    "another host stopped its heartbeat; the failure names the run, pid, host and why. Revokes the Celery "
    "tasks of runs it fails and of runs failed or canceled since its last tick.",
)
def dead_run_recovery(context: dg.SensorEvaluationContext):
    now = time.time()
    # Heartbeats are judged only while this sensor has been ticking: after a gap (first tick, the
    # daemon or the database down) the run workers get a window to write again before any is failed.
    previous = float(context.cursor) if context.cursor else None
    watching = previous is not None and now - previous <= DEFAULT_HEARTBEAT_WINDOW_S / 2
    context.update_cursor(repr(now))
    dead = fail_dead_runs(context.instance, now=now, judge_heartbeats=watching)
    for run in dead:
        context.log.warning(run.describe())
    # runs failed or canceled by anyone else (a step failure, the UI, run monitoring): their Celery
    # steps still executing are orphans too. The first tick looks back one heartbeat window.
    since = previous if previous is not None else now - DEFAULT_HEARTBEAT_WINDOW_S
    revoked = revoke_closed_runs_tasks(context.instance, since - INTERVAL_S)
    lines = [run.describe() for run in dead] + [
        f"run {run_id}: revoked its Celery tasks {', '.join(ids)}" for run_id, ids in revoked.items()
    ]
    for line in lines[len(dead) :]:
        context.log.warning(line)
    if not lines:
        return dg.SkipReason("no STARTED run whose process is gone")
    return dg.SkipReason("; ".join(lines))
