"""The 6 AM schedule: before each session, build the config from the previous session's bars.

At 06:00 America/New_York on weekdays, request the ``daily_pairs`` job for the last session
strictly before today, one run per sector (run key ``<date>|<sector>`` deduplicates). On a day that
is not a session (a holiday), skip: the next session's tick requests the same as-of session, so
after a Monday holiday Tuesday's tick requests Friday. Past the bar source's last session (the
embedded dataset ends on 2022-12-28; a file on its last bar) there is no partition to run: skip,
naming that session and the one requested. Alpaca's data runs to today: no such bound.
"""

from collections.abc import Callable, Mapping, Sequence

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.errors import PairsError
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


def with_strategies(requests: list[dg.RunRequest], tick, stages: Mapping[str, Sequence[dg.AssetKey]]) -> list:
    """``requests`` restricted to the strategies of one read of the strategies file
    (:class:`sensors.strategy_control.TickStrategies`): their stages (and ``raw_bars``), their
    parameters in the run config, the strategies and the file's fingerprint in the tags."""
    keys = tick.asset_keys(stages)
    return [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.partition_key,
            tags={**r.tags, **tick.tags()},
            asset_selection=keys,
            run_config={"resources": tick.resources_config()},
        )
        for r in requests
    ]


def build_daily_pairs_schedule(
    sectors: Sequence[str],
    last_session: pd.Timestamp | str | None = None,
    *,
    strategies: Callable[[], object] | None = None,
    stages: Mapping[str, Sequence[dg.AssetKey]] | None = None,
    note: str = "",
) -> dg.ScheduleDefinition:
    """The 6 AM schedule over ``sectors`` (the daily partitions' sectors), skipping sessions past
    ``last_session`` (the bar source's last session, the daily partitions' last date; None: open).

    ``strategies`` (given by the definitions): called at every tick for the enabled strategies of
    the strategies file (:func:`sensors.strategy_control.read_tick`), so disabling one or changing
    its parameters takes effect at the next tick; ``stages`` maps each strategy's store name to its
    asset keys. ``note`` is added to the description (entry points that failed to load)."""
    sectors = list(sectors)

    @dg.schedule(
        name="daily_pairs_schedule",
        job=daily_pairs,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=partitions.EXCHANGE_TZ,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="06:00 New York, Monday–Friday: the previous session × every sector (holiday-aware), for "
        "every strategy the strategies file enables at the tick." + note,
    )
    def daily_pairs_schedule(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        if when is None:
            when = pd.Timestamp.now(tz=partitions.EXCHANGE_TZ)
        day = pd.Timestamp(when).tz_convert(partitions.EXCHANGE_TZ).tz_localize(None).normalize()
        requests = requests_for_day(day, sectors, last_session)
        if strategies is None or isinstance(requests, dg.SkipReason):
            return requests
        try:
            tick = strategies()
        except PairsError as exc:
            return dg.SkipReason(f"strategies file: {exc}")
        if tick.not_loaded:
            context.log.warning(
                f"enabled in the strategies file but not in this code location (reload it to add their assets): "
                f"{', '.join(tick.not_loaded)}"
            )
        if not tick.run:
            return dg.SkipReason("the strategies file enables no strategy of this code location")
        return with_strategies(requests, tick, stages or {})

    return daily_pairs_schedule
