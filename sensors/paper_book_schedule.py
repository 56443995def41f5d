"""The close schedule: mark the paper book at every session's close.

At 16:30 America/New_York on weekdays (the 6 AM schedule's timezone; the regular close is 16:00, an
early close 13:00), request ``paper_book_job`` for today's session, run key ``paper_book:<session>``
(one run per session: a second tick for the same session is deduplicated). On a day that is not a
session (a holiday), skip. Past the book's last partition (a bounded bar source: the session after
the source's last session, e.g. 2022-12-29 on the embedded data) there is no partition: skip, naming
both sessions. Alpaca's data runs to today: the book's partitions include the session in progress
(:func:`pairs_assets.assets.paper_book.book_partitions_def`), so today's exists at the tick.

Why a schedule at the close rather than a run-status sensor on ``signal_job`` successes:

- the asset is the book *marked at the session's close* (one partition per session, its P&L at the
  close). A session with no signal run still needs its mark: held positions' unrealised P&L moves
  every session and ``drawdown_within_limit`` judges each close — a sensor on signal runs would leave
  those sessions unmarked (and a session whose sensor ticks all skipped, e.g. no new bars, too);
- ``signal_job`` runs every 5 minutes per sector (up to 6 × 78 runs a session); a book run after
  each would double the instance's runs for a figure the next one overwrites, and a mark taken while
  other sectors' runs are still in flight would be partial anyway;
- what must hold for the block to work is that ``exposure_within_limits`` is evaluated on the
  previous close before the next session's first signal run: the 16:30 tick is 17 hours before it.
  While a breach stands, :mod:`pairs_assets.assets.risk_gate` keeps refusing entries until a later
  mark passes.

Sessions the schedule did not tick (a replay of history, the daemon down) are marked by launching
their partitions: ``dg launch --job paper_book_job --partition 2022-12-29`` or a backfill of the
``paper_book`` asset in the UI.

Stopped by default, like ``daily_pairs_schedule`` and ``signal_sensor`` (the live chain: turned on
together; for ``alpaca-paper`` each run asks the broker for the account's equity), unlike the
housekeeping sensors (``model_performance_refresh``, ``dead_run_recovery``). Turn it on in the UI
(Automation → paper_book_schedule) or with ``dagster schedule start paper_book_schedule -m
pairs_assets.definitions`` with the daemon running (``pairs dev`` / ``dg dev``).
"""

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.jobs import paper_book_job

SCHEDULE_NAME = "paper_book_schedule"
CLOSE_CRON = "30 16 * * 1-5"


def close_requests_for_day(
    day: pd.Timestamp, last_book_session: pd.Timestamp | None = None
) -> list[dg.RunRequest] | dg.SkipReason:
    """The run request of the close tick on ``day`` (a New York calendar date); ``last_book_session``
    is the book's last partition (None: open-ended)."""
    day = pd.Timestamp(day).normalize()
    if not partitions.is_session(day):
        return dg.SkipReason(f"{day.date()} is not an NYSE session: no close to mark the paper book at")
    session = str(day.date())
    last = None if last_book_session is None else str(partitions.calendar_date(last_book_session).date())
    if last is not None and session > last:
        return dg.SkipReason(
            f"the paper book's last session is {last} (the session after the bar source's last): the {session} "
            f"close has no partition (load newer bars, or use PAIRS_BAR_SOURCE=alpaca)"
        )
    return [
        dg.RunRequest(
            run_key=f"paper_book:{session}",
            partition_key=session,
            tags={"pairs/session": session, "pairs/trigger": SCHEDULE_NAME},
        )
    ]


def build_paper_book_schedule(last_book_session: pd.Timestamp | str | None = None) -> dg.ScheduleDefinition:
    """The close schedule, skipping sessions past ``last_book_session`` (the book's last partition,
    :func:`pairs_assets.assets.paper_book.last_book_session`; None: open-ended)."""

    @dg.schedule(
        name=SCHEDULE_NAME,
        job=paper_book_job,
        cron_schedule=CLOSE_CRON,
        execution_timezone=partitions.EXCHANGE_TZ,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="16:30 New York, Monday–Friday: mark the paper book at today's close (holiday-aware); its "
        "exposure check then gates the next session's entries.",
    )
    def paper_book_schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        if when is None:
            when = pd.Timestamp.now(tz=partitions.EXCHANGE_TZ)
        day = pd.Timestamp(when).tz_convert(partitions.EXCHANGE_TZ).tz_localize(None).normalize()
        return close_requests_for_day(day, last_book_session)

    return paper_book_schedule
