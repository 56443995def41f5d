"""Real-world bars files: New York local time across DST, dates among zoned rows, header-only, weekends."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pairs_assets.errors import BarsFileError
from resources.bar_sources import FileBarSource, read_bars_file

UTC = "UTC"
EVERYTHING = (pd.Timestamp("1995-01-01", tz=UTC), pd.Timestamp("2030-01-01", tz=UTC))
HEADER = "symbol,timestamp,open,high,low,close,volume\n"


def _write(tmp_path, name: str, rows: list[str]) -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))
    return str(path)


def test_new_york_local_time_across_the_autumn_dst_change_loads_to_the_right_utc_instants(tmp_path):
    # 2022-11-06: New York leaves EDT (-04:00) for EST (-05:00); the file is written in local time
    path = _write(tmp_path, "ny_minutes.csv", [
        "KO,2022-11-04T09:30:00-04:00,60.0,60.2,59.9,60.1,1000",
        "KO,2022-11-04T15:59:00-04:00,60.1,60.3,60.0,60.2,1200",
        "KO,2022-11-07T09:30:00-05:00,60.5,60.6,60.4,60.5,900",
        "KO,2022-11-07T15:59:00-05:00,60.6,60.8,60.5,60.7,1100",
        "PEP,2022-11-07 15:59:00-05:00,180.0,180.5,179.5,180.2,500",  # a space instead of T
    ])
    bars = FileBarSource(path=path).load_bars(["KO", "PEP"], *EVERYTHING)
    assert bars.sort_values(["symbol", "timestamp"])["timestamp"].tolist() == [
        pd.Timestamp("2022-11-04 13:30", tz=UTC),
        pd.Timestamp("2022-11-04 19:59", tz=UTC),
        pd.Timestamp("2022-11-07 14:30", tz=UTC),
        pd.Timestamp("2022-11-07 20:59", tz=UTC),
        pd.Timestamp("2022-11-07 20:59", tz=UTC),
    ]
    assert str(bars["timestamp"].dtype) == "datetime64[ns, UTC]"
    # every bar sits inside its own session, as it does in New York
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    assert set(local.dt.strftime("%H:%M")) == {"09:30", "15:59"}


def test_spring_dst_change_in_a_parquet_file_of_strings(tmp_path):
    path = tmp_path / "ny.parquet"
    pd.DataFrame({
        "symbol": ["KO", "KO"],
        "timestamp": ["2023-03-10T10:00:00-05:00", "2023-03-13T10:00:00-04:00"],  # 2023-03-12: EST → EDT
        "open": 1.0, "high": 1.0, "low": 1.0, "close": [1.0, 1.1], "volume": 1.0,
    }).to_parquet(path)
    bars = read_bars_file(path)
    assert bars["timestamp"].tolist() == [pd.Timestamp("2023-03-10 15:00", tz=UTC), pd.Timestamp("2023-03-13 14:00", tz=UTC)]


def test_a_date_only_row_among_zoned_rows_is_a_daily_bar_at_the_session_close(tmp_path):
    path = _write(tmp_path, "mixed.csv", [
        "KO,2022-11-23,60.0,60.2,59.9,60.1,1000",  # a full session (16:00 EST)
        "KO,2022-11-25,60.1,60.3,60.0,60.2,1200",  # the day after Thanksgiving closes at 13:00
        "KO,2022-11-28T10:00:00-05:00,60.5,60.6,60.4,60.5,900",
        "KO,2022-11-28T15:00:00Z,60.6,60.8,60.5,60.7,1100",
        "KO,2022-11-29 15:30:00,60.6,60.8,60.5,60.7,1100",  # naive: UTC
    ])
    assert read_bars_file(path)["timestamp"].tolist() == [
        pd.Timestamp("2022-11-23 21:00", tz=UTC),
        pd.Timestamp("2022-11-25 18:00", tz=UTC),
        pd.Timestamp("2022-11-28 15:00", tz=UTC),
        pd.Timestamp("2022-11-28 15:00", tz=UTC),
        pd.Timestamp("2022-11-29 15:30", tz=UTC),
    ]


def test_daily_files_keep_their_meaning(tmp_path):
    """Dates alone, or zone-less midnights throughout, are daily bars; a zoned midnight is an instant."""
    midnights = _write(tmp_path, "midnights.csv", ["KO,2022-12-27 00:00:00,1,1,1,1,1", "KO,2022-12-28 00:00:00,1,1,1,1,1"])
    assert read_bars_file(midnights)["timestamp"].tolist() == [pd.Timestamp("2022-12-27 21:00", tz=UTC), pd.Timestamp("2022-12-28 21:00", tz=UTC)]
    zoned = _write(tmp_path, "zoned.csv", ["KO,2022-12-28T00:00:00-05:00,1,1,1,1,1"])
    assert read_bars_file(zoned)["timestamp"].tolist() == [pd.Timestamp("2022-12-28 05:00", tz=UTC)]
    dates = tmp_path / "dates.parquet"
    pd.DataFrame({"symbol": ["KO"], "timestamp": [dt.date(2022, 12, 28)], "open": 1.0, "high": 1.0, "low": 1.0,
                  "close": 1.0, "volume": 1.0}).to_parquet(dates)
    assert read_bars_file(dates)["timestamp"].tolist() == [pd.Timestamp("2022-12-28 21:00", tz=UTC)]


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_a_header_only_file_is_a_clear_error_naming_it(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text(HEADER)
    else:
        pd.DataFrame({c: pd.Series(dtype="float64") for c in HEADER.strip().split(",")}).to_parquet(path)
    with pytest.raises(BarsFileError, match=rf"bars file .*{name} has no rows \(only a header\)"):
        FileBarSource(path=str(path)).load_bars(["KO"], *EVERYTHING)


def test_a_weekend_dated_row_names_the_file_row_and_date(tmp_path):
    path = _write(tmp_path, "weekend.csv", [
        "KO,2022-11-04,60.0,60.2,59.9,60.1,1000",
        "PEP,2022-11-04,180.0,180.5,179.5,180.2,500",
        "PEP,2022-11-05,180.0,180.5,179.5,180.2,500",
    ])
    with pytest.raises(BarsFileError) as caught:
        FileBarSource(path=path).load_bars(["KO", "PEP"], *EVERYTHING)
    message = str(caught.value)
    assert message.startswith(f"bars file {path}: row 4 (symbol PEP) is dated 2022-11-05, which is not an NYSE session")
    assert "Saturday; previous session 2022-11-04, next 2022-11-07" in message


def test_a_date_outside_the_calendar_names_the_row(tmp_path):
    path = _write(tmp_path, "old.csv", ["KO,1970-01-05,1,1,1,1,1"])
    with pytest.raises(BarsFileError, match=r"row 2 \(symbol KO\) is dated 1970-01-05, outside the NYSE calendar"):
        read_bars_file(path)


def test_an_unparseable_timestamp_among_good_ones_names_its_row(tmp_path):
    path = _write(tmp_path, "bad.csv", ["KO,2022-11-04T09:30:00-04:00,1,1,1,1,1", "KO,yesterday,1,1,1,1,1"])
    with pytest.raises(BarsFileError, match=r"symbol KO has an unparseable timestamp 'yesterday' \(row 3\)"):
        read_bars_file(path)
