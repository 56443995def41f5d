"""Trading sessions (NYSE calendar) × sectors, and the window mappings between stages.

The ``date`` key of a partition is its *as-of session*: the last session whose bars it reads. Its
trading config is for the next session. Sessions come from ``exchange_calendars`` (XNYS): a weekday
``TimeWindowPartitionsDefinition`` with every weekday that is not a session (holidays, ad-hoc
closures such as 2001-09-11 or 2012-10-29) as an exclusion.
"""

from __future__ import annotations

import datetime as dt
import functools

import dagster as dg
import exchange_calendars as xcals
import pandas as pd

from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.settings import DEFAULT_STRATEGY, paths
from pairs_assets.universe import load_universe

CALENDAR_NAME = "XNYS"
EXCHANGE_TZ = "America/New_York"
DATE_FMT = "%Y-%m-%d"


@functools.cache
def nyse_calendar() -> xcals.ExchangeCalendar:
    """The NYSE calendar from the history start to a year past today (exchange_calendars' default end)."""
    start = pd.Timestamp(paths().history_start)
    return xcals.get_calendar(CALENDAR_NAME, start=start - pd.Timedelta(days=10))


def _date(value: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The calendar date of ``value`` as a tz-naive midnight timestamp."""
    stamp = pd.Timestamp(value).normalize()
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def is_session(day: str | dt.date | pd.Timestamp) -> bool:
    return bool(nyse_calendar().is_session(_date(day)))


def previous_session(day: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The last session strictly before ``day`` (a session or not)."""
    day = _date(day)
    return nyse_calendar().date_to_session(day - pd.Timedelta(days=1), direction="previous")


def next_session(day: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The first session strictly after ``day``."""
    day = _date(day)
    return nyse_calendar().date_to_session(day + pd.Timedelta(days=1), direction="next")


def session_close_utc(session: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """UTC close of ``session`` (early closes included). Raises if ``session`` is not a session."""
    session = _date(session)
    if not is_session(session):
        raise ValueError(f"{session.date()} is not an NYSE session")
    return nyse_calendar().session_close(session)


def session_open_utc(session: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    return nyse_calendar().session_open(_date(session))


def sessions_span_utc(first: str | pd.Timestamp, last: str | pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC bounds that hold every bar of the sessions ``first``..``last``: from the evening before
    ``first`` (pre-market bars; daily bars stamped at midnight New York) to ``last``'s close."""
    return session_open_utc(first).normalize() - pd.Timedelta(hours=12), session_close_utc(last)


def sessions_in_range(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Sessions in [start, end], both included, as tz-naive dates."""
    return nyse_calendar().sessions_in_range(_date(start), _date(end))


def window_sessions(as_of: str | pd.Timestamp, n: int, *, history_start: str | None = None) -> pd.DatetimeIndex:
    """The ``n`` sessions ending at (and including) ``as_of``.

    Raises ``InsufficientHistoryError`` when fewer than ``n`` sessions lie between the history
    start and ``as_of`` — the start-of-history case.
    """
    as_of = _date(as_of)
    start = _date(history_start or paths().history_start)
    available = sessions_in_range(start, as_of)
    if len(available) < n:
        raise InsufficientHistoryError(
            f"partition {as_of.date()}: the window needs {n} sessions but only {len(available)} exist "
            f"between the history start {start.date()} and the as-of session"
        )
    return available[-n:]


def _excluded_weekdays(start: pd.Timestamp, end: pd.Timestamp) -> list[dt.datetime]:
    weekdays = pd.bdate_range(start, end)
    sessions = set(sessions_in_range(start, end))
    return [d.to_pydatetime() for d in weekdays if d not in sessions]


def session_partitions_def(start: str | None = None) -> dg.TimeWindowPartitionsDefinition:
    """Weekday partitions from ``start`` with NYSE non-sessions excluded; keys ``YYYY-MM-DD``."""
    start_ts = _date(start or paths().history_start)
    if not is_session(start_ts):
        start_ts = nyse_calendar().date_to_session(start_ts, direction="next")
    end_ts = nyse_calendar().last_session
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * 1-5",
        start=start_ts.to_pydatetime(),
        fmt=DATE_FMT,
        timezone=EXCHANGE_TZ,
        exclusions=_excluded_weekdays(start_ts, end_ts),
    )


def sector_partitions_def() -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(load_universe(paths().universe_file).sector_names)


@functools.cache
def daily_partitions_def() -> dg.MultiPartitionsDefinition:
    """``date`` × ``sector``; keys read ``2022-12-28|technology``."""
    return dg.MultiPartitionsDefinition({"date": session_partitions_def(), "sector": sector_partitions_def()})


def partition_key(date: str, sector: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": date, "sector": sector})


def lookback_mapping(sessions: int) -> dg.MultiPartitionMapping:
    """Map a partition to the ``sessions`` date partitions ending at its own date, same sector."""
    return dg.MultiPartitionMapping(
        {
            "date": dg.DimensionPartitionMapping(
                "date", dg.TimeWindowPartitionMapping(start_offset=-(sessions - 1), end_offset=0)
            ),
            "sector": dg.DimensionPartitionMapping("sector", dg.IdentityPartitionMapping()),
        }
    )


def same_partition_mapping() -> dg.MultiPartitionMapping:
    """Same date, same sector — explicit, because an unmapped dimension means *all sectors*."""
    return lookback_mapping(1)


#: Sessions of raw bars a partition depends on (the longest default window; see StrategySettings).
LOOKBACK_SESSIONS = DEFAULT_STRATEGY.history_sessions
