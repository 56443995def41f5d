"""Bar sources for ``raw_bars``: the embedded dataset, a user's file, (and Alpaca, see alpaca_source).

Every source returns the bars contract (``resources.bars``) for the requested symbols and UTC
interval. Daily bars given as dates are stamped at the session's close (16:00 New York, earlier on
half days) so that the as-of rule "no bar after the as-of session's close" is a timestamp compare.
"""

from __future__ import annotations

import abc
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from pairs_assets.data import EMBEDDED_BARS_FILE, EMBEDDED_SOURCE
from pairs_assets.errors import BarsFileError
from pairs_assets.market.calendar import nyse_calendar
from resources.bars import BAR_COLUMNS, conform_bars, empty_bars

REQUIRED_FILE_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
#: A timestamp written as a date alone (a daily bar): ``2022-12-28``.
_DATE_ONLY_RE = r"^\s*\d{4}-\d{1,2}-\d{1,2}\s*$"


def _stamp_daily_at_close(dates: pd.Series, session_close: Callable[[pd.Timestamp], pd.Timestamp]) -> pd.Series:
    unique = pd.Series(pd.to_datetime(dates.unique()))
    mapping = {d: session_close(d) for d in unique}
    return pd.to_datetime(dates).map(mapping)


def _default_session_close(day: pd.Timestamp) -> pd.Timestamp:
    calendar = nyse_calendar()
    if not calendar.is_session(day):
        raise BarsFileError(f"bars are dated {day.date()}, which is not an NYSE session")
    return calendar.session_close(day)


@functools.lru_cache(maxsize=4)
def _read_wide_closes(path: str, mtime: float) -> pd.DataFrame:
    try:
        wide = pd.read_csv(path, index_col=0, parse_dates=True)
    except (OSError, ValueError) as exc:
        raise BarsFileError(f"cannot read bars file {path}: {exc}") from exc
    long = wide.rename_axis("date").reset_index().melt(id_vars="date", var_name="symbol", value_name="close")
    long = long.dropna(subset=["close"])
    long["timestamp"] = _stamp_daily_at_close(long["date"], _default_session_close)
    return long.drop(columns="date").sort_values(["symbol", "timestamp"]).reset_index(drop=True)


def _slice(bars: pd.DataFrame, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    mask = bars["symbol"].isin(set(symbols)) & (bars["timestamp"] >= start) & (bars["timestamp"] <= end)
    return bars.loc[mask]


class BarSource(dg.ConfigurableResource):
    """Interface: ``load_bars(symbols, start, end)`` → bars contract; ``source_name`` labels rows."""

    @property
    @abc.abstractmethod
    def source_name(self) -> str: ...

    @abc.abstractmethod
    def load_bars(self, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...

    def describe(self) -> str:
        return self.source_name

    def last_session(self) -> pd.Timestamp | None:
        """The New York date of the source's last bar, where the source knows it (None: open-ended).

        The daily partitions end there (``definitions.build_definitions``) and the schedule skips
        past it, so it must be cheap: it is read when the definitions load, in every process. A
        command also says "the data ends on 2022-12-28" before it starts a run past the data.
        """
        return None


def _last_new_york_date(timestamps: pd.Series) -> pd.Timestamp | None:
    if timestamps.empty:
        return None
    return timestamps.max().tz_convert("America/New_York").tz_localize(None).normalize()


@functools.lru_cache(maxsize=4)
def _wide_closes_last_date(path: str, mtime: float) -> pd.Timestamp | None:
    """The last date with any close in a wide closes file (read once per file version: ~30 ms for
    the embedded one, where stamping every bar at its close, as ``load_bars`` does, takes ~1 s)."""
    try:
        wide = pd.read_csv(path, index_col=0, parse_dates=True)
    except (OSError, ValueError) as exc:
        raise BarsFileError(f"cannot read bars file {path}: {exc}") from exc
    dates = wide.dropna(how="all").index
    return None if dates.empty else pd.Timestamp(dates.max()).normalize()


class EmbeddedBarSource(BarSource):
    """The vendored skfolio S&P 500 closes (closes only; other fields stay null)."""

    path: str = ""

    @property
    def source_name(self) -> str:
        return EMBEDDED_SOURCE

    def _path(self) -> Path:
        return Path(self.path) if self.path else EMBEDDED_BARS_FILE

    def load_bars(self, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        path = self._path()
        long = _read_wide_closes(str(path), path.stat().st_mtime)
        return conform_bars(_slice(long, symbols, start, end), self.source_name)

    def last_session(self) -> pd.Timestamp | None:
        """The dataset's last date (2022-12-28 for the vendored one), read from its data."""
        path = self._path()
        return _wide_closes_last_date(str(path), path.stat().st_mtime)


def _row_number(path: Path, index: int) -> int:
    """The 1-based row a person finds in the file: a CSV's line (the header is line 1), a Parquet row."""
    return index + (1 if path.suffix.lower() in {".parquet", ".pq"} else 2)


#: Columns a file may hold instead of ``timestamp``: UTC epoch numbers, the unit in the name.
EPOCH_COLUMNS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us", "epoch_ns": "ns"}
_EPOCH_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
#: Epoch numbers outside these years are a wrong unit, not a bar.
_EPOCH_YEARS = (pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
#: Zone names a timestamp may end with: New York's two (checked against the date) and UTC's.
_ZONE_NAMES = {"EDT": "-04:00", "EST": "-05:00", "UTC": "+00:00", "GMT": "+00:00"}
_NEW_YORK_OFFSETS = {"EDT": pd.Timedelta(hours=-4), "EST": pd.Timedelta(hours=-5)}
#: How a timestamp ends: with its offset (``…Z``, ``…+01:00``, ``…-0500``: zoned), or with a zone
#: name after the time (``… 10:00 EDT``; AM/PM are not zones). A bare number (an epoch? a
#: yyyymmdd?) is told apart first, by ``_BARE_NUMBER_RE``.
_TIMESTAMP_END_RE = re.compile(  # searched on the last 8 characters: end-anchored, fast on long files
    r"(?:(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)|(?<=[\d\s])(?P<name>[A-Za-z]{2,5}))$"
)
_BARE_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_CHARS = "0123456789+-.eE"
_END_KINDS = {"number": 1, "offset": 2, "name": 3}
_NOT_ZONE_NAMES = {"AM", "PM"}


def _timestamp_field(columns: Iterable[str], path: Path) -> str:
    """``timestamp``, or the one epoch column (``epoch_s`` …) a file holds instead of it."""
    columns = list(columns)
    epoch = [c for c in columns if c in EPOCH_COLUMNS]
    if epoch and "timestamp" in columns:
        raise BarsFileError(
            f"bars file {path} has both timestamp and {epoch[0]}: keep one (an epoch column's name gives its unit)"
        )
    if len(epoch) > 1:
        raise BarsFileError(f"bars file {path} has both {epoch[0]} and {epoch[1]}: keep one")
    return epoch[0] if epoch else "timestamp"


def _missing_columns(columns: Iterable[str], field: str) -> list[str]:
    present = set(columns)
    return [c for c in REQUIRED_FILE_COLUMNS if c not in present and not (c == "timestamp" and field != "timestamp")]


def _parse_datetimes(text: pd.Series, *, utc: bool) -> pd.Series:
    """ISO 8601 first (fast), other spellings ("12/28/2022 15:59") one by one; NaT where neither."""
    parsed = pd.to_datetime(text, utc=utc, format="ISO8601", errors="coerce")
    retry = parsed.isna() & text.notna()
    if retry.any():
        import warnings

        with warnings.catch_warnings():  # "could not infer format": expected for these rows
            warnings.simplefilter("ignore", UserWarning)
            parsed[retry] = pd.to_datetime(text[retry], utc=utc, format="mixed", errors="coerce")
    return parsed


def _epoch_timestamps(values: pd.Series, field: str, where: Callable[[int], str]) -> pd.Series:
    unit = EPOCH_COLUMNS[field]
    words = _EPOCH_UNIT_WORDS[unit]
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        i = int(numbers.isna().to_numpy().argmax())
        raise BarsFileError(
            f"{where(i)}: {values.iloc[i]!r} is not a number ({field} holds {words} since 1970-01-01 UTC)"
        )
    lo, hi = ((bound - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(1, unit=unit) for bound in _EPOCH_YEARS)
    outside = ((numbers < lo) | (numbers > hi)).to_numpy()
    if outside.any():
        i = int(outside.argmax())
        raise BarsFileError(
            f"{where(i)}: {values.iloc[i]} {words} since 1970 is outside 1900-2100: is the unit right "
            f"({', '.join(EPOCH_COLUMNS)} hold {', '.join(_EPOCH_UNIT_WORDS.values())})?"
        )
    return pd.Series(pd.to_datetime(numbers, unit=unit, utc=True), index=values.index)


def _file_timestamps(raw: pd.DataFrame, path: Path, field: str = "timestamp") -> pd.Series:
    """The ``timestamp`` (or epoch) column of a bars file as UTC instants, row by row.

    A zoned value is converted to UTC from its own offset (a New York file crossing a DST change
    has both ``-04:00`` and ``-05:00``); ``EDT``/``EST`` are New York's offsets (refused on a date
    when New York keeps the other), ``UTC``/``GMT`` are UTC, any other zone name is refused; a
    naive date-time is UTC — but a file mixing naive and zoned date-times is refused (which zone
    the naive rows mean is a guess); a date alone is a daily bar, stamped at its session's close.
    A column without any zone whose every value is at midnight is daily too. A bare number is
    refused (an epoch in which unit? a yyyymmdd?): epoch numbers go in a column whose name gives
    the unit (``epoch_s``, ``epoch_ms``, ``epoch_us``, ``epoch_ns``; UTC instants). A daily bar on
    a day that is not an NYSE session is refused naming the row.
    """
    values = raw[field]

    def where(i: int) -> str:
        return f"bars file {path}: row {_row_number(path, i)} (symbol {raw['symbol'].iloc[i]}), field {field}"

    if field != "timestamp":
        return _epoch_timestamps(values, field, where)
    if pd.api.types.is_datetime64_any_dtype(values):  # typed (Parquet): one zone or none for the column
        zoned = values.dt.tz is not None
        parsed = values.dt.tz_convert("UTC") if zoned else values.dt.tz_localize("UTC")
        date_only = pd.Series(not zoned and bool((values == values.dt.normalize()).all()), index=values.index)
    else:
        bare_number_hint = (
            "is a bare number (an epoch in which unit? a yyyymmdd date?): write ISO 8601 "
            "(2022-11-29T15:30:00Z; 2022-11-29 for a daily bar), or put UTC epoch numbers in a column "
            "named for their unit: epoch_s, epoch_ms, epoch_us or epoch_ns"
        )
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            if values.notna().any():
                i = int(values.notna().to_numpy().argmax())
                raise BarsFileError(f"{where(i)}: {values.iloc[i]} {bare_number_hint}")
            values = values.astype(object)  # an empty column (CSV reads it as NaN floats): unparseable below
        # the text is classified and parsed once per distinct value (a file of n symbols repeats
        # each timestamp n times); ``first[k]`` is the first row holding distinct value k
        codes, uniques = pd.factorize(values)
        first = dict(zip(*(a.tolist() for a in np.unique(codes, return_index=True))))
        rows_of_values = values
        values = pd.Series(uniques, dtype=object)
        strings_only = pd.api.types.infer_dtype(values, skipna=True) == "string"
        text = values if strings_only else values.astype("string")
        # one pass over the values' ends: a bare number, an offset (…Z, …-05:00) or a zone name
        kind = np.zeros(len(values), dtype=np.int8)  # 0 nothing, 1 number, 2 offset, 3 zone name
        names = pd.Series(None, index=values.index, dtype=object)  # the zone name, upper case
        search, number = _TIMESTAMP_END_RE.search, _BARE_NUMBER_RE.fullmatch
        for k, value in enumerate(text.tolist()):
            if not isinstance(value, str):
                continue
            value = value.strip()
            if not value.strip(_NUMBER_CHARS) and number(value):  # only number characters: is it one?
                kind[k] = 1
                continue
            found = search(value[-8:])
            if found is not None:
                group = found.lastgroup
                if group == "name":
                    word = found.group("name").upper()
                    if word in _NOT_ZONE_NAMES:
                        continue
                    names.iat[k] = word
                kind[k] = _END_KINDS[group]
        bare = kind == 1
        if bare.any():
            i = int(bare.argmax())
            raise BarsFileError(f"{where(first[i])}: {str(text.iloc[i]).strip()} {bare_number_hint}")
        named = kind == 3
        unknown = named & ~names.isin(list(_ZONE_NAMES)).to_numpy(dtype=bool)
        upper = names
        if unknown.any():
            i = int(unknown.argmax())
            word = _TIMESTAMP_END_RE.search(text.iloc[i].strip()[-8:]).group("name")
            raise BarsFileError(
                f"{where(first[i])}: zone name {word!r} in {text.iloc[i]!r} is not understood (EDT and EST "
                "are New York's, UTC and GMT are UTC; other names are ambiguous): write the offset, "
                "e.g. 2022-11-29T10:00:00-06:00"
            )
        if named.any():  # "… 10:00 EDT" → "… 10:00-04:00"
            offsets = upper[named].map(_ZONE_NAMES)
            text = text.copy()
            text[named] = text[named].str.replace(r"\s*[A-Za-z]+\s*$", "", regex=True) + offsets
            kind[named] = 2
        short = (text.str.len() <= 14).fillna(False).to_numpy(dtype=bool)  # only these can be a bare date
        matched = np.zeros(len(values), dtype=bool)
        matched[short] = text[short].str.match(_DATE_ONLY_RE).fillna(False).to_numpy(dtype=bool)
        date_only = pd.Series(matched, index=values.index)
        if not strings_only:  # Parquet/objects: datetime.date values are dates
            date_only |= values.map(lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime)).astype(bool)
        zoned = (kind == 2) & ~date_only.to_numpy()
        naive = ~zoned & ~date_only.to_numpy() & text.notna().to_numpy(dtype=bool)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        if zoned.any():
            parsed[zoned] = _parse_datetimes(text[zoned], utc=True)
        for rows in (naive, date_only.to_numpy()):  # naive date-times are UTC; a date's offset is moot
            if rows.any():
                parsed[rows] = _parse_datetimes(text[rows], utc=False).dt.tz_localize("UTC")
        if zoned.any() and naive.any() and parsed.notna().all():  # an unparseable row is named below
            i, j = int(naive.argmax()), int(zoned.argmax())
            raise BarsFileError(
                f"{where(first[i])}: {text.iloc[i]!r} has no zone while row {_row_number(path, first[j])} has one "
                f"({values.iloc[j]!r}); a file mixing naive and zoned date-times is ambiguous: give every "
                "date-time a zone (…Z for UTC) or none (naive date-times are UTC)"
            )
        if named.any():  # EDT/EST must be what New York kept that day
            ny_named = named & upper.isin(list(_NEW_YORK_OFFSETS)).to_numpy(dtype=bool) & parsed.notna().to_numpy()
            if ny_named.any():
                instants = parsed[ny_named]
                kept = instants.dt.tz_convert("America/New_York").dt.tz_localize(None) - instants.dt.tz_localize(None)
                said = upper[ny_named].map(_NEW_YORK_OFFSETS)
                wrong = (kept != said).to_numpy()
                if wrong.any():
                    i = int(np.flatnonzero(ny_named)[wrong.argmax()])
                    other = "EST" if upper.iloc[i] == "EDT" else "EDT"
                    raise BarsFileError(
                        f"{where(first[i])}: {values.iloc[i]!r} says {upper.iloc[i]} ({_ZONE_NAMES[upper.iloc[i]]}) but New "
                        f"York is on {other} ({_ZONE_NAMES[other]}) then: write the offset, or {other}"
                    )
        if not date_only.all() and not zoned.any() and parsed.notna().all() and (parsed == parsed.dt.normalize()).all():
            date_only[:] = True  # "2022-12-28 00:00:00" throughout, no zone: daily bars
        present = codes >= 0
        if len(values):
            parsed = pd.Series(parsed.array.take(np.where(present, codes, 0)), index=rows_of_values.index)
            date_only = pd.Series(
                date_only.to_numpy()[np.where(present, codes, 0)] & present, index=rows_of_values.index
            )
        else:  # no value at all: every row unparseable
            parsed = pd.Series(pd.NaT, index=rows_of_values.index, dtype="datetime64[ns, UTC]")
            date_only = pd.Series(False, index=rows_of_values.index)
        parsed[~present] = pd.NaT
        values = rows_of_values
    if parsed.isna().any():
        bad = int(parsed.isna().to_numpy().argmax())
        raise BarsFileError(
            f"bars file {path}: symbol {raw['symbol'].iloc[bad]} has an unparseable timestamp "
            f"{values.iloc[bad]!r} (row {_row_number(path, bad)})"
        )
    if not date_only.any():
        return parsed
    days = parsed[date_only].dt.tz_convert(None).dt.normalize()
    calendar = nyse_calendar()
    closes = {}
    for day in days.unique():
        day = pd.Timestamp(day)
        try:
            session = bool(calendar.is_session(day))
        except ValueError as exc:  # exchange_calendars: a date outside the calendar's bounds
            position = int(days.index[(days == day).to_numpy().argmax()])
            raise BarsFileError(
                f"bars file {path}: row {_row_number(path, position)} (symbol {raw['symbol'].iloc[position]}) is "
                f"dated {day.date()}, outside the NYSE calendar ({calendar.first_session.date()} → "
                f"{calendar.last_session.date()})"
            ) from exc
        if not session:
            position = int(days.index[(days == day).to_numpy().argmax()])  # raw has a RangeIndex
            raise BarsFileError(
                f"bars file {path}: row {_row_number(path, position)} (symbol {raw['symbol'].iloc[position]}) is "
                f"dated {day.date()}, which is not an NYSE session ({day.day_name()}; previous session "
                f"{_session_near(day, 'previous')}, next {_session_near(day, 'next')})"
            )
        closes[day] = calendar.session_close(day)
    out = parsed.copy()
    out[date_only] = days.map(closes)
    return out


def _session_near(day: pd.Timestamp, direction: str) -> str:
    try:
        return str(nyse_calendar().date_to_session(day, direction=direction).date())
    except ValueError:  # outside the calendar's range
        return "unknown"


def read_bars_file(path: str | Path) -> pd.DataFrame:
    """Read a user's CSV or Parquet bars file into the contract (without the source column filled).

    Required columns: symbol, timestamp, open, high, low, close, volume (trade_count and vwap
    optional; instead of timestamp, one of ``epoch_s``/``epoch_ms``/``epoch_us``/``epoch_ns``: UTC
    epoch numbers in the unit its name gives). Timestamps with a zone are converted to UTC, each
    row from its own offset (a file in New York time crossing a DST change mixes ``-04:00`` and
    ``-05:00``; ``EDT``/``EST`` are New York's, ``UTC``/``GMT`` UTC); naive timestamps are taken as
    UTC; date-only values (or a zone-less column whose every time is midnight) are daily bars,
    stamped at the session's close. A file with a header and no rows, an unparseable value, a
    daily bar on a non-session, naive date-times beside zoned ones, another zone name, EDT/EST on
    a date New York kept the other, or a bare number in ``timestamp`` raises ``BarsFileError``
    naming the file, row and field.
    """
    path = Path(path)
    if not path.exists():
        raise BarsFileError(f"bars file {path} does not exist (PAIRS_BARS_FILE)")
    raw, _header = _read_columns(path, None)
    field = _timestamp_field(raw.columns, path)
    missing = _missing_columns(raw.columns, field)
    if missing:
        raise BarsFileError(
            f"bars file {path} lacks required column(s) {', '.join(missing)} (has: {', '.join(raw.columns)})"
        )
    if raw.empty:
        raise BarsFileError(f"bars file {path} has no rows (only a header): nothing to load")
    raw = raw.reset_index(drop=True)
    if raw["symbol"].isna().any():
        raise BarsFileError(
            f"bars file {path}: row {_row_number(path, int(raw['symbol'].isna().idxmax()))} has no symbol"
        )
    timestamps = _file_timestamps(raw, path, field)
    if field != "timestamp":
        raw = raw.drop(columns=field)
    for column in ["open", "high", "low", "close", "volume", "trade_count", "vwap"]:
        if column in raw:
            numeric = pd.to_numeric(raw[column], errors="coerce")
            bad = numeric.isna() & raw[column].notna()
            if bad.any():
                row = int(bad.idxmax())
                raise BarsFileError(
                    f"bars file {path}: symbol {raw.loc[row, 'symbol']} has a non-numeric {column} "
                    f"{raw.loc[row, column]!r} (row {_row_number(path, row)})"
                )
            raw[column] = numeric
    raw["timestamp"] = timestamps.astype("datetime64[ns, UTC]")
    raw["symbol"] = raw["symbol"].astype(str).str.strip().str.upper()
    return raw


@functools.lru_cache(maxsize=4)
def _read_bars_file_cached(path: str, mtime: float) -> pd.DataFrame:
    return read_bars_file(path)


def _read_columns(path: Path, wanted: set[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """The ``wanted`` columns (matched stripped and in lower case; None: every column), named so,
    and every column name of the file (its header). An unreadable file or an extension that is not
    CSV or Parquet raises ``BarsFileError`` naming the file."""
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            header = [str(n) for n in pq.read_schema(path).names]
            columns = None if wanted is None else [n for n in header if n.strip().lower() in wanted]
            raw = pd.read_parquet(path, columns=columns)
        elif suffix in {".csv", ".gz", ".txt"}:
            if wanted is None:
                raw = pd.read_csv(path)
                header = [str(n) for n in raw.columns]
            else:
                header = [str(n) for n in pd.read_csv(path, nrows=0).columns]
                raw = pd.read_csv(path, usecols=lambda c: str(c).strip().lower() in wanted)
        else:
            raise BarsFileError(f"bars file {path}: unsupported extension {path.suffix!r} (use .csv or .parquet)")
    except BarsFileError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file; add the path
        raise BarsFileError(f"cannot parse bars file {path}: {type(exc).__name__}: {exc}") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    return raw.reset_index(drop=True), [c.strip().lower() for c in header]


@functools.lru_cache(maxsize=4)
def _bars_file_last_session(path: str, mtime: float) -> pd.Timestamp | None:
    """The New York date of a bars file's last bar, reading only its symbol and timestamp columns
    (once per file version), with the same checks and messages as ``read_bars_file``."""
    file = Path(path)
    raw, header = _read_columns(file, {"symbol", "timestamp", *EPOCH_COLUMNS})
    field = _timestamp_field(header, file)
    missing = _missing_columns(header, field)
    if missing:
        raise BarsFileError(
            f"bars file {file} lacks required column(s) {', '.join(missing)} (has: {', '.join(header)})"
        )
    if raw.empty:
        raise BarsFileError(f"bars file {file} has no rows (only a header): nothing to load")
    if raw["symbol"].isna().any():
        raise BarsFileError(
            f"bars file {file}: row {_row_number(file, int(raw['symbol'].isna().idxmax()))} has no symbol"
        )
    return _last_new_york_date(_file_timestamps(raw, file, field))


class FileBarSource(BarSource):
    """A user's CSV/Parquet bars file (``PAIRS_BARS_FILE``), daily or intraday."""

    path: str

    @property
    def source_name(self) -> str:
        return f"file:{Path(self.path).name}"

    def load_bars(self, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        path = Path(self.path)
        if not path.exists():
            raise BarsFileError(f"bars file {path} does not exist (PAIRS_BARS_FILE)")
        raw = _read_bars_file_cached(str(path), path.stat().st_mtime)
        sliced = _slice(raw, symbols, start, end)
        if sliced.empty:
            return empty_bars()
        return conform_bars(sliced, self.source_name)[BAR_COLUMNS]

    def last_session(self) -> pd.Timestamp | None:
        """The New York date of the file's last bar, read from the file once per version of it."""
        path = Path(self.path)
        if not path.exists():
            raise BarsFileError(f"bars file {path} does not exist (PAIRS_BARS_FILE)")
        return _bars_file_last_session(str(path), path.stat().st_mtime)
