"""Trading sessions (NYSE calendar) × sectors, and the (same-partition) mapping between stages.

The ``date`` key of a partition is its *as-of session*: the last session whose bars it reads. Its
trading config is for the next session. Sessions come from ``exchange_calendars`` (XNYS): a weekday
``TimeWindowPartitionsDefinition`` with every weekday that is not a session (holidays, ad-hoc
closures such as 2001-09-11 or 2012-10-29) as an exclusion.

Nothing here reads a setting: the partitions are built from explicit inputs (the history start, the
sectors and the bar source's last session, :func:`daily_partitions_def`), and whatever depends on the
history start takes it as an argument. The formation schedule (:func:`formation_schedule`) depends on
the exchange calendar alone: every ``reselect_every``-th session from a fixed epoch, whatever the
history start. The calendar helpers answer for any date (:func:`nyse_calendar`).

The ``date`` dimension ends where the bar source ends: a source that knows its last session (the
embedded dataset, a user's file) bounds it there; one that does not (Alpaca) leaves it open, so it
runs to the last completed session (Dagster's default).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError, PartitionKeyError

# The calendar helpers live below the resources (pairs_assets.market.calendar); re-exported here for the
# Dagster layer, which reads sessions and partitions from one module.
from pairs_assets.market.calendar import (  # noqa: F401
    DATE_FMT,
    EXCHANGE_TZ,
    calendar_date,
    check_session,
    is_session,
    next_session,
    non_session_description,
    nyse_calendar,
    previous_session,
    session_close_utc,
    session_open_utc,
    sessions_in_range,
    sessions_span_utc,
)
from pairs_assets.util import split_partition_key


def check_partition_key(key: str | dg.MultiPartitionKey, daily: dg.MultiPartitionsDefinition) -> tuple[str, str]:
    """(date, sector) of a ``date|sector`` key, refusing one that is not a partition of ``daily``.

    Dagster's ``TimeWindowPartitionsDefinition`` resolves a key to a time window by moving it to
    the next window that is not excluded, so a run tagged with a holiday (``2022-12-26|consumer``)
    would silently read, write and record ``2022-12-27``. Assets call this before any work.

    Raises
    ------
    NotASessionError
        The date is not an NYSE session (the message names the previous and next session).
    PartitionKeyError
        The key is malformed, its date precedes the first partition or follows the last one (the
        bar source's last session), or its sector is unknown.
    """
    if "|" not in str(key):  # a MultiPartitionKey is the string DATE|SECTOR too
        raise PartitionKeyError(f"partition key {key!r} is not DATE|SECTOR (e.g. 2022-12-28|technology)")
    date, sector = split_partition_key(key)
    label = f"partition {date}|{sector}:"
    day = check_session(date, what=label)
    first = history_start_of(daily)
    if day < first:
        raise PartitionKeyError(
            f"{label} {day.date()} precedes the first partition {first.date()} (PAIRS_HISTORY_START)"
        )
    last = last_session_of(daily)
    if last is not None and day > last:
        raise PartitionKeyError(
            f"{label} {day.date()} is past the last partition {last.date()} (the bar source's last session: "
            f"its data ends there)"
        )
    sectors = sectors_of(daily)
    if sector not in sectors:
        raise PartitionKeyError(f"{label} unknown sector {sector!r} (known: {', '.join(sectors)})")
    return date, sector


def check_run_partitions(context: dg.AssetExecutionContext) -> None:
    """Refuse a run whose partition key, or either end of its key range, is not a partition.

    Without this a non-session key is remapped by Dagster to the next session (see
    ``check_partition_key``), and a range such as ``2022-12-24...2022-12-26`` materializes
    2022-12-27, outside the range.
    """
    daily = context.assets_def.partitions_def
    check_range_tags(context.run.tags, context.partition_key_range if context.has_partition_key_range else None)
    if context.has_partition_key_range:  # (has_partition_key is False for a range of several keys)
        key_range = context.partition_key_range
        check_partition_key(key_range.start, daily)
        check_partition_key(key_range.end, daily)
    elif context.has_partition_key:
        check_partition_key(context.partition_key, daily)


#: The run tags of a range run (Dagster's documented tags; ``dagster asset materialize --partition-range``).
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def check_range_tags(tags: dict, resolved: dg.PartitionKeyRange | None) -> None:
    """Refuse a range run that Dagster resolves to other partitions than its range tags name.

    A job (partition-set) backfill of ``daily_pairs`` — the job page's *Materialize…* / *Backfill* —
    with the assets' single-run policy becomes one run tagged with the range, but Dagster 1.13 copies
    the first partition's dimension tags (``dagster/partition/date``, ``dagster/partition/sector``)
    onto it, and those win: every step sees only the first partition (dagster-io/dagster#28861), so
    the run would compute and record one partition while the backfill counts the whole range done.
    Refused before anything is read or written, naming the range and what to launch instead.
    """
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not (start and end) or resolved is None:
        return
    if (str(resolved.start), str(resolved.end)) != (start, end):
        raise PartitionKeyError(
            f"run tagged with the partition range {start}...{end}, but Dagster resolves it to "
            f"{resolved.start}...{resolved.end} (the first partition's dagster/partition/* tags, copied onto the "
            f"range run of a job backfill: dagster-io/dagster#28861); nothing was computed. Launch the range as an "
            f"asset backfill instead: select the daily_pairs assets (or the group) → Materialize → the partitions, "
            f"or `dagster asset materialize --partition-range '{start}...{end}'` / `dg launch --partition-range`"
        )


def window_sessions(as_of: str | pd.Timestamp, n: int, *, history_start: str | pd.Timestamp) -> pd.DatetimeIndex:
    """The ``n`` sessions ending at (and including) ``as_of``.

    Raises ``InsufficientHistoryError`` when fewer than ``n`` sessions lie between the history
    start and ``as_of`` — the start-of-history case.
    """
    as_of = calendar_date(as_of)
    start = calendar_date(history_start)
    available = sessions_in_range(start, as_of)
    if len(available) < n:
        raise InsufficientHistoryError(
            f"partition {as_of.date()}: the window needs {n} sessions but only {len(available)} exist "
            f"between the history start {start.date()} and the as-of session"
        )
    return available[-n:]


def _excluded_weekdays(start: pd.Timestamp, end: pd.Timestamp) -> list[dt.datetime]:
    days = pd.date_range(start, end, freq="D")
    weekdays = days[days.dayofweek < 5]  # = pd.bdate_range(start, end), ~150x faster (no offset iteration)
    return [d.to_pydatetime() for d in weekdays.difference(sessions_in_range(start, end))]


def session_partitions_def(
    start: str | pd.Timestamp, last_session: str | pd.Timestamp | None = None, *, include_current: bool = False
) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions from ``start`` (the history start) with NYSE non-sessions excluded; keys ``YYYY-MM-DD``.

    ``last_session`` (the bar source's last session; a non-session moves to the previous session)
    is the last partition; None leaves the set open (it runs to the last completed session).
    ``include_current`` adds the session in progress (Dagster's ``end_offset=1``; never past
    ``last_session``): for an asset marked at a session's close, before its weekday window ends at
    midnight.
    """
    start_ts = calendar_date(start)
    calendar = nyse_calendar(start_ts)
    if not is_session(start_ts):
        start_ts = calendar.date_to_session(start_ts, direction="next")
    end = None
    end_ts = calendar.last_session
    if last_session is not None:
        last = calendar.date_to_session(calendar_date(last_session), direction="previous")
        if last < start_ts:
            raise PartitionKeyError(
                f"the bar source's last session {last.date()} precedes the history start {start_ts.date()} "
                f"(PAIRS_HISTORY_START): no partition to build"
            )
        # Dagster's end is exclusive (a window ending after it is not a partition): the next session's
        # midnight keeps the last session's window (which ends at the next weekday) and drops the next
        end_ts = next_session(last)
        end = end_ts.to_pydatetime()
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * 1-5",
        start=start_ts.to_pydatetime(),
        end=end,
        fmt=DATE_FMT,
        timezone=EXCHANGE_TZ,
        exclusions=_excluded_weekdays(start_ts, end_ts),
        end_offset=1 if include_current else 0,
    )


def sector_partitions_def(sectors: Sequence[str]) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(sectors))


def daily_partitions_def(
    history_start: str | pd.Timestamp, sectors: Sequence[str], last_session: str | pd.Timestamp | None = None
) -> dg.MultiPartitionsDefinition:
    """``date`` (the sessions from ``history_start`` to ``last_session``) × ``sector``; keys read
    ``2022-12-28|technology``.

    ``last_session`` is the bar source's last session (``BarSource.last_session()``); None (Alpaca)
    leaves the dates open-ended. The same inputs give the same object (built once: the exclusions
    list every non-session weekday).
    """
    last = None if last_session is None else str(calendar_date(last_session).date())
    return _daily_partitions_def(str(calendar_date(history_start).date()), tuple(sectors), last)


@functools.cache
def _daily_partitions_def(
    history_start: str, sectors: tuple[str, ...], last_session: str | None
) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {"date": session_partitions_def(history_start, last_session), "sector": sector_partitions_def(sectors)}
    )


def history_start_of(daily: dg.MultiPartitionsDefinition) -> pd.Timestamp:
    """The first session of ``daily``'s ``date`` dimension (tz-naive)."""
    return calendar_date(daily.get_partitions_def_for_dimension("date").start)


def last_session_of(daily: dg.MultiPartitionsDefinition) -> pd.Timestamp | None:
    """The last session of ``daily``'s ``date`` dimension (tz-naive), or None when it is open-ended."""
    end = daily.get_partitions_def_for_dimension("date").end
    return None if end is None else previous_session(calendar_date(end.date()))


def sectors_of(daily: dg.MultiPartitionsDefinition) -> list[str]:
    """The sectors of ``daily``'s ``sector`` dimension."""
    return list(daily.get_partitions_def_for_dimension("sector").get_partition_keys())


def partition_key(date: str, sector: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date, "sector": sector})


def same_partition_mapping() -> dg.IdentityPartitionMapping:
    """Same date, same sector: the only mapping between the daily assets, which all share one
    ``daily_partitions_def`` — each partition maps to itself in both dimensions (nothing unmapped, so
    never *all sectors*).

    A stage reads the history its windows need from the market data store (``assets/common.py``),
    not through a date-window mapping: Dagster walks a ``TimeWindowPartitionMapping`` of hundreds of
    sessions over the exchange calendar for every partition of a backfill (a UI backfill of 10
    sessions × one sector took over 3 minutes to launch, and targeted every downstream partition
    inside the windows). A plain identity, not a ``MultiPartitionMapping`` of two identities: Dagster
    maps it without a per-key walk and groups it with its parent in one run as an identity
    (launching 63 sessions × 6 sectors of the group: 1.6 s against 6.0 s;
    ``pairs_assets_tests/benchmarks/bench_ui_backfill.py``).
    """
    return dg.IdentityPartitionMapping()


def formation_schedule(
    every: int, through: str | pd.Timestamp, *, phase: int = 0, since: str | pd.Timestamp | None = None
):
    """The formation calendar (:class:`pairs_assets.quant.stages.FormationSchedule`) over the sessions
    from the epoch (or ``since``, when earlier) through ``through``: every ``every``-th session counted
    from the fixed epoch :data:`~pairs_assets.quant.stages.FORMATION_EPOCH`, shifted by ``phase`` —
    the same for every history start."""
    from pairs_assets.quant.stages import FORMATION_EPOCH, FormationSchedule

    epoch = pd.Timestamp(FORMATION_EPOCH)
    first = epoch
    if since is not None and calendar_date(since) < epoch:
        # before the epoch: start early enough that ``since``'s own formation session is included
        first = calendar_date(since) - pd.Timedelta(days=2 * every + 10)
    last = max(calendar_date(through), epoch)
    return FormationSchedule(sessions_in_range(first, last), every, phase)


def formation_session(as_of: str | pd.Timestamp, every: int, *, phase: int = 0) -> pd.Timestamp:
    """The session a partition's stages run at (:func:`formation_schedule`): every ``every``-th
    session counted from the fixed epoch, shifted by ``phase``; ``every`` = 1 is the as-of session
    itself. It does not depend on the history start."""
    as_of = calendar_date(as_of)
    if every == 1:
        return as_of
    return formation_schedule(every, as_of, phase=phase, since=as_of)(as_of)
