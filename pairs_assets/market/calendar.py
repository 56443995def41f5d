"""The NYSE calendar (``exchange_calendars``' XNYS): sessions, their opens and closes, in UTC.

Pure (no Dagster, no settings, no store), below the resources and the Dagster layer, so that the bar
sources stamp daily bars at the close with the same calendar the partitions are built from. Every
helper answers for any date: the calendar starts in 1990 (the embedded data's first session) or, for
an earlier date, with that date's year; each start is built once.
"""

from __future__ import annotations

import datetime as dt
import functools

import exchange_calendars as xcals
import pandas as pd

from pairs_assets.data import EMBEDDED_HISTORY_START
from pairs_assets.errors import NotASessionError, PartitionKeyError

CALENDAR_NAME = "XNYS"
EXCHANGE_TZ = "America/New_York"
DATE_FMT = "%Y-%m-%d"
#: The first date the default calendar covers (the embedded data's first session); an earlier date
#: gets a calendar that starts with its year.
CALENDAR_START = pd.Timestamp(EMBEDDED_HISTORY_START)


@functools.cache
def _calendar_from(start: pd.Timestamp) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(CALENDAR_NAME, start=start - pd.Timedelta(days=10))


def nyse_calendar(covering: str | dt.date | pd.Timestamp | None = None) -> xcals.ExchangeCalendar:
    """The NYSE calendar from 1990 (or from the year of ``covering``, if earlier) to a year past
    today (exchange_calendars' default end). Built once per start: a pure function of the dates."""
    start = CALENDAR_START
    if covering is not None:
        day = calendar_date(covering)
        if day < CALENDAR_START:
            start = pd.Timestamp(year=day.year, month=1, day=1)
    return _calendar_from(start)


def calendar_date(value: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The calendar date of ``value`` as a tz-naive midnight timestamp."""
    stamp = pd.Timestamp(value).normalize()
    return stamp.tz_localize(None) if stamp.tzinfo else stamp


def is_session(day: str | dt.date | pd.Timestamp) -> bool:
    return bool(nyse_calendar(day).is_session(calendar_date(day)))


def previous_session(day: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The last session strictly before ``day`` (a session or not)."""
    day = calendar_date(day)
    return nyse_calendar(day).date_to_session(day - pd.Timedelta(days=1), direction="previous")


def next_session(day: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """The first session strictly after ``day``."""
    day = calendar_date(day)
    return nyse_calendar(day).date_to_session(day + pd.Timedelta(days=1), direction="next")


def parse_date(value: str | dt.date | pd.Timestamp, *, what: str = "date") -> pd.Timestamp:
    """``value`` as a calendar date (tz-naive midnight); ``PartitionKeyError`` unless it is ``YYYY-MM-DD``."""
    if isinstance(value, str):
        try:
            return pd.Timestamp(dt.datetime.strptime(value.strip(), DATE_FMT))
        except ValueError:
            raise PartitionKeyError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None
    return calendar_date(value)


def check_session(value: str | dt.date | pd.Timestamp, *, what: str = "date") -> pd.Timestamp:
    """The session ``value`` names, or a clear error.

    Parameters
    ----------
    value : str, date or Timestamp
        A date; strings must read ``YYYY-MM-DD``.
    what : str
        How the message names the value (``"--as-of"``, ``"partition 2022-12-26|consumer:"``).

    Returns
    -------
    pandas.Timestamp
        The session as a tz-naive date.

    Raises
    ------
    NotASessionError
        ``value`` is a weekend or a holiday; the message names the previous and next session.
    PartitionKeyError
        ``value`` is not a date or lies outside the NYSE calendar.
    """
    day = parse_date(value, what=what)
    calendar = nyse_calendar(day)
    if not calendar.first_session <= day <= calendar.last_session:
        raise PartitionKeyError(
            f"{what} {day.date()} is outside the NYSE calendar ({calendar.first_session.date()} → "
            f"{calendar.last_session.date()})"
        )
    if not calendar.is_session(day):
        raise NotASessionError(f"{what} {non_session_description(day)}")
    return day


def non_session_description(day: str | dt.date | pd.Timestamp) -> str:
    """``'2022-12-26 is not an NYSE session (Monday); the previous session is 2022-12-23, the next 2022-12-27'``."""
    day = calendar_date(day)
    calendar = nyse_calendar(day)
    before = calendar.date_to_session(day, direction="previous") if day > calendar.first_session else None
    after = calendar.date_to_session(day, direction="next") if day < calendar.last_session else None
    return (
        f"{day.date()} is not an NYSE session ({day.day_name()}); the previous session is "
        f"{before.date() if before is not None else 'before the calendar'}, the next "
        f"{after.date() if after is not None else 'after the calendar'}"
    )


def session_close_utc(session: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    """UTC close of ``session`` (early closes included). Raises if ``session`` is not a session."""
    session = calendar_date(session)
    if not is_session(session):
        raise ValueError(f"{session.date()} is not an NYSE session")
    return nyse_calendar(session).session_close(session)


def session_open_utc(session: str | dt.date | pd.Timestamp) -> pd.Timestamp:
    return nyse_calendar(session).session_open(calendar_date(session))


def sessions_span_utc(first: str | pd.Timestamp, last: str | pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC bounds that hold every bar of the sessions ``first``..``last``: from the evening before
    ``first`` (pre-market bars; daily bars stamped at midnight New York) to ``last``'s close."""
    return session_open_utc(first).normalize() - pd.Timedelta(hours=12), session_close_utc(last)


def sessions_in_range(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """Sessions in [start, end], both included, as tz-naive dates."""
    return nyse_calendar(start).sessions_in_range(calendar_date(start), calendar_date(end))
