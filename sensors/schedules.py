"""The 6 AM schedule: before each session, build the config from the previous session's bars.

At 06:00 America/New_York on weekdays, request the ``daily_pairs`` job for the last session
strictly before today, one run per sector (run key ``<date>|<sector>`` deduplicates). On a day that
is not a session (a holiday), skip: the next session's tick requests the same as-of session, so
after a Monday holiday Tuesday's tick requests Friday. Past the bar source's last session (the
embedded dataset ends on 2022-12-28; a file on its last bar) there is no partition to run: skip,
naming that session and the one requested. Alpaca's data runs to today: no such bound.
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.jobs import daily_pairs

SCHEDULE_CRON = "0 6 * * 1-5"


def requests_for_day(
    day: pd.Timestamp, sectors: list[str], last_session: pd.Timestamp | None = None
) -> list[dg.RunRequest] | dg.SkipReason:
    """The run requests of the tick on ``day`` (a New York calendar date); ``last_session`` is the
    bar source's last session (None: open-ended)."""
    day = pd.Timestamp(day).normalize()
    if not partitions.is_session(day):
        return dg.SkipReason(f"{day.date()} is not an NYSE session: no config to prepare")
    as_of = str(partitions.previous_session(day).date())
    last = None if last_session is None else str(partitions.calendar_date(last_session).date())
    if last is not None and as_of > last:
        return dg.SkipReason(
            f"the bar source's last session is {last}: the {day.date()} tick would request {as_of}, "
            f"past the data (no partition; load newer bars, or use PAIRS_BAR_SOURCE=alpaca)"
        )
    return [
        dg.RunRequest(
            run_key=f"{as_of}|{sector}",
            partition_key=partitions.partition_key(as_of, sector),
            tags={"pairs/as_of_session": as_of, "pairs/sector": sector, "pairs/effective_session": str(day.date())},
        )
        for sector in sectors
    ]


def build_daily_pairs_schedule(
    sectors: Sequence[str], last_session: pd.Timestamp | str | None = None
) -> dg.ScheduleDefinition:
    """The 6 AM schedule over ``sectors`` (the daily partitions' sectors), skipping sessions past
    ``last_session`` (the bar source's last session, the daily partitions' last date; None: open)."""
    sectors = list(sectors)

    @dg.schedule(
        name="daily_pairs_schedule",
        job=daily_pairs,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=partitions.EXCHANGE_TZ,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="06:00 New York, Monday–Friday: the previous session × every sector (holiday-aware).",
    )
    def daily_pairs_schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        if when is None:
            when = pd.Timestamp.now(tz=partitions.EXCHANGE_TZ)
        day = pd.Timestamp(when).tz_convert(partitions.EXCHANGE_TZ).tz_localize(None).normalize()
        return requests_for_day(day, sectors, last_session)

    return daily_pairs_schedule
