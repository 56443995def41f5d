"""Bar sources for ``raw_bars``: the embedded dataset, a user's file, (and Alpaca, see alpaca_source).

Every source returns the bars contract (``resources.bars``) for the requested symbols and UTC
interval. Daily bars given as dates are stamped at the session's close (16:00 New York, earlier on
half days) so that the as-of rule "no bar after the as-of session's close" is a timestamp compare.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable
from pathlib import Path

import dagster as dg
import pandas as pd

from pairs_assets.errors import BarsFileError
from resources.bars import BAR_COLUMNS, conform_bars, empty_bars

REQUIRED_FILE_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]


def _stamp_daily_at_close(dates: pd.Series, session_close: Callable[[pd.Timestamp], pd.Timestamp]) -> pd.Series:
    unique = pd.Series(pd.to_datetime(dates.unique()))
    mapping = {d: session_close(d) for d in unique}
    return pd.to_datetime(dates).map(mapping)


def _default_session_close(day: pd.Timestamp) -> pd.Timestamp:
    from pairs_assets.partitions import nyse_calendar

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


class EmbeddedBarSource(BarSource):
    """The vendored skfolio S&P 500 closes (closes only; other fields stay null)."""

    path: str = ""

    @property
    def source_name(self) -> str:
        from pairs_assets.settings import EMBEDDED_SOURCE

        return EMBEDDED_SOURCE

    def _path(self) -> Path:
        from pairs_assets.settings import EMBEDDED_BARS_FILE

        return Path(self.path) if self.path else EMBEDDED_BARS_FILE

    def load_bars(self, symbols: Iterable[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        path = self._path()
        long = _read_wide_closes(str(path), path.stat().st_mtime)
        return conform_bars(_slice(long, symbols, start, end), self.source_name)


def read_bars_file(path: str | Path) -> pd.DataFrame:
    """Read a user's CSV or Parquet bars file into the contract (without the source column filled).

    Required columns: symbol, timestamp, open, high, low, close, volume (trade_count and vwap
    optional). Timestamps with a zone are converted to UTC; naive timestamps are taken as UTC;
    date-only values (every time at midnight, no zone) are daily bars and stamped at the close.
    """
    path = Path(path)
    if not path.exists():
        raise BarsFileError(f"bars file {path} does not exist (PAIRS_BARS_FILE)")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            raw = pd.read_parquet(path)
        elif path.suffix.lower() in {".csv", ".gz", ".txt"}:
            raw = pd.read_csv(path)
        else:
            raise BarsFileError(f"bars file {path}: unsupported extension {path.suffix!r} (use .csv or .parquet)")
    except BarsFileError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file; add the path
        raise BarsFileError(f"cannot parse bars file {path}: {type(exc).__name__}: {exc}") from exc
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in REQUIRED_FILE_COLUMNS if c not in raw.columns]
    if missing:
        raise BarsFileError(
            f"bars file {path} lacks required column(s) {', '.join(missing)} "
            f"(has: {', '.join(raw.columns)})"
        )
    if raw["symbol"].isna().any():
        raise BarsFileError(f"bars file {path}: row {int(raw['symbol'].isna().idxmax()) + 2} has no symbol")
    ts = pd.to_datetime(raw["timestamp"], errors="coerce", utc=False, format="mixed")
    if ts.isna().any():
        bad_row = int(ts.isna().idxmax())
        raise BarsFileError(
            f"bars file {path}: symbol {raw.loc[bad_row, 'symbol']} has an unparseable timestamp "
            f"{raw.loc[bad_row, 'timestamp']!r} (row {bad_row + 2})"
        )
    for column in ["open", "high", "low", "close", "volume", "trade_count", "vwap"]:
        if column in raw:
            numeric = pd.to_numeric(raw[column], errors="coerce")
            bad = numeric.isna() & raw[column].notna()
            if bad.any():
                row = int(bad.idxmax())
                raise BarsFileError(
                    f"bars file {path}: symbol {raw.loc[row, 'symbol']} has a non-numeric {column} "
                    f"{raw.loc[row, column]!r} (row {row + 2})"
                )
            raw[column] = numeric
    if ts.dt.tz is None and (ts == ts.dt.normalize()).all():
        raw["timestamp"] = _stamp_daily_at_close(ts, _default_session_close)
    elif ts.dt.tz is None:
        raw["timestamp"] = ts.dt.tz_localize("UTC")
    else:
        raw["timestamp"] = ts.dt.tz_convert("UTC")
    raw["symbol"] = raw["symbol"].astype(str).str.strip().str.upper()
    return raw


@functools.lru_cache(maxsize=4)
def _read_bars_file_cached(path: str, mtime: float) -> pd.DataFrame:
    return read_bars_file(path)


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
