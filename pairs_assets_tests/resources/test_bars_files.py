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
    path = _write(
        tmp_path,
        "ny_minutes.csv",
        [
            "KO,2022-11-04T09:30:00-04:00,60.0,60.2,59.9,60.1,1000",
            "KO,2022-11-04T15:59:00-04:00,60.1,60.3,60.0,60.2,1200",
            "KO,2022-11-07T09:30:00-05:00,60.5,60.6,60.4,60.5,900",
            "KO,2022-11-07T15:59:00-05:00,60.6,60.8,60.5,60.7,1100",
            "PEP,2022-11-07 15:59:00-05:00,180.0,180.5,179.5,180.2,500",  # a space instead of T
        ],
    )
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
    pd.DataFrame(
        {
            "symbol": ["KO", "KO"],
            "timestamp": ["2023-03-10T10:00:00-05:00", "2023-03-13T10:00:00-04:00"],  # 2023-03-12: EST → EDT
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": [1.0, 1.1],
            "volume": 1.0,
        }
    ).to_parquet(path)
    bars = read_bars_file(path)
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2023-03-10 15:00", tz=UTC),
        pd.Timestamp("2023-03-13 14:00", tz=UTC),
    ]


def test_a_date_only_row_among_zoned_rows_is_a_daily_bar_at_the_session_close(tmp_path):
    path = _write(
        tmp_path,
        "mixed.csv",
        [
            "KO,2022-11-23,60.0,60.2,59.9,60.1,1000",  # a full session (16:00 EST)
            "KO,2022-11-25,60.1,60.3,60.0,60.2,1200",  # the day after Thanksgiving closes at 13:00
            "KO,2022-11-28T10:00:00-05:00,60.5,60.6,60.4,60.5,900",
            "KO,2022-11-28T15:00:00Z,60.6,60.8,60.5,60.7,1100",
            "KO,2022-11-29T09:30:00+09:00,60.6,60.8,60.5,60.7,1100",  # an offset east of UTC
            "KO,2022-11-30,60.6,60.8,60.5,60.7,1100",  # a date is its New York session, whatever the offsets
        ],
    )
    assert read_bars_file(path)["timestamp"].tolist() == [
        pd.Timestamp("2022-11-23 21:00", tz=UTC),
        pd.Timestamp("2022-11-25 18:00", tz=UTC),
        pd.Timestamp("2022-11-28 15:00", tz=UTC),
        pd.Timestamp("2022-11-28 15:00", tz=UTC),
        pd.Timestamp("2022-11-29 00:30", tz=UTC),
        pd.Timestamp("2022-11-30 21:00", tz=UTC),
    ]


def test_naive_date_times_are_utc_and_dates_among_them_daily_bars(tmp_path):
    path = _write(
        tmp_path,
        "naive.csv",
        [
            "KO,2022-11-28 15:30:00,1,1,1,1,1",
            "KO,2022-11-29,1,1,1,1,1",
            "KO,2022-11-30T20:00:00,1,1,1,1,1",
        ],
    )
    assert read_bars_file(path)["timestamp"].tolist() == [
        pd.Timestamp("2022-11-28 15:30", tz=UTC),
        pd.Timestamp("2022-11-29 21:00", tz=UTC),
        pd.Timestamp("2022-11-30 20:00", tz=UTC),
    ]


# --- ambiguous timestamps are refused (issue 21 item 8) ---------------------------------------------
# Before: naive rows among zoned ones took the zoned rows' offset (read as New York time, 4-5 h
# off; naive midnights among zoned rows became instants after the close: "no bars"); EDT/EST
# were dropped and the bar read as UTC; epoch integers were read as nanoseconds (1970-01-01).


@pytest.mark.parametrize("zoned_first", [True, False])
def test_naive_and_zoned_date_times_in_one_file_are_refused_naming_file_row_and_field(tmp_path, zoned_first):
    rows = ["KO,2022-11-28T10:00:00-05:00,1,1,1,1,1", "PEP,2022-11-29 15:30:00,1,1,1,1,1"]
    path = _write(tmp_path, "mixed.csv", rows if zoned_first else rows[::-1])
    with pytest.raises(BarsFileError) as caught:
        read_bars_file(path)
    message = str(caught.value)
    naive_row, zoned_row = (3, 2) if zoned_first else (2, 3)
    assert message.startswith(
        f"bars file {path}: row {naive_row} (symbol PEP), field timestamp: '2022-11-29 15:30:00' has no zone "
        f"while row {zoned_row} has one ('2022-11-28T10:00:00-05:00')"
    )
    assert "\n" not in message and "naive" in message and "UTC" in message


def test_naive_midnights_among_zoned_rows_are_refused_not_read_as_no_bars(tmp_path):
    path = _write(
        tmp_path, "daily_mixed.csv", ["KO,2022-11-28 00:00:00,1,1,1,1,1", "KO,2022-11-29T16:00:00-05:00,1,1,1,1,1"]
    )
    with pytest.raises(
        BarsFileError, match=r"row 2 \(symbol KO\), field timestamp: '2022-11-28 00:00:00' has no zone while row 3"
    ):
        FileBarSource(path=path).load_bars(["KO"], *EVERYTHING)
    with pytest.raises(BarsFileError, match=r"row 2 \(symbol KO\), field timestamp: .* has no zone"):
        FileBarSource(path=path).last_session()


def test_edt_and_est_are_new_york_time(tmp_path):
    path = _write(
        tmp_path,
        "named.csv",
        [
            "KO,2022-07-28 10:00:00 EDT,1,1,1,1,1",
            "KO,2022-11-29 10:00:00 EST,1,1,1,1,1",
            "KO,2022-11-30T15:59:00EST,1,1,1,1,1",
            "KO,2022-12-01 16:00:00 UTC,1,1,1,1,1",
            "KO,2022-12-02 16:00:00 GMT,1,1,1,1,1",
        ],
    )
    assert read_bars_file(path)["timestamp"].tolist() == [
        pd.Timestamp("2022-07-28 14:00", tz=UTC),
        pd.Timestamp("2022-11-29 15:00", tz=UTC),
        pd.Timestamp("2022-11-30 20:59", tz=UTC),
        pd.Timestamp("2022-12-01 16:00", tz=UTC),
        pd.Timestamp("2022-12-02 16:00", tz=UTC),
    ]


def test_edt_on_a_winter_date_is_refused(tmp_path):
    path = _write(
        tmp_path, "wrong_season.csv", ["KO,2022-07-28 10:00:00 EDT,1,1,1,1,1", "KO,2022-01-10 10:00:00 EDT,1,1,1,1,1"]
    )
    with pytest.raises(BarsFileError) as caught:
        read_bars_file(path)
    assert str(caught.value).startswith(
        f"bars file {path}: row 3 (symbol KO), field timestamp: '2022-01-10 10:00:00 EDT' says EDT (-04:00) "
        "but New York is on EST (-05:00) then"
    )


@pytest.mark.parametrize("name", ["CST", "PST", "ET", "CET", "BST"])
def test_a_zone_name_other_than_edt_est_utc_gmt_is_refused_not_dropped(tmp_path, name):
    path = _write(
        tmp_path, "cst.csv", ["KO,2022-11-28 10:00:00-05:00,1,1,1,1,1", f"KO,2022-11-29 10:00:00 {name},1,1,1,1,1"]
    )
    with pytest.raises(BarsFileError) as caught:
        read_bars_file(path)
    assert str(caught.value).startswith(
        f"bars file {path}: row 3 (symbol KO), field timestamp: zone name {name!r} in '2022-11-29 10:00:00 {name}' "
        "is not understood"
    )


@pytest.mark.parametrize("value", ["1669734000", "1669734000000", "20221128", "1669734000.5"])
def test_a_bare_number_in_the_timestamp_column_is_refused(tmp_path, value):
    path = _write(tmp_path, "epoch.csv", [f"KO,{value},1,1,1,1,1"])
    with pytest.raises(BarsFileError) as caught:
        read_bars_file(path)
    message = str(caught.value)
    assert message.startswith(f"bars file {path}: row 2 (symbol KO), field timestamp: {value} is a bare number")
    assert "epoch_s" in message and "epoch_ms" in message
    with pytest.raises(BarsFileError, match="is a bare number"):  # not "the data ends on 1969-12-31"
        FileBarSource(path=path).last_session()


def test_a_bare_number_among_date_strings_is_refused(tmp_path):
    path = _write(tmp_path, "some_epoch.csv", ["KO,2022-11-28T10:00:00Z,1,1,1,1,1", "KO,1669820400,1,1,1,1,1"])
    with pytest.raises(BarsFileError, match=r"row 3 \(symbol KO\), field timestamp: 1669820400 is a bare number"):
        read_bars_file(path)


def test_an_integer_timestamp_column_in_parquet_is_refused(tmp_path):
    path = tmp_path / "epoch.parquet"
    pd.DataFrame(
        {"symbol": ["KO"], "timestamp": [1669734000], "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    ).to_parquet(path)
    with pytest.raises(BarsFileError, match=r"row 1 \(symbol KO\), field timestamp: 1669734000 is a bare number"):
        read_bars_file(path)


@pytest.mark.parametrize(
    ("column", "scale"), [("epoch_s", 1), ("epoch_ms", 1_000), ("epoch_us", 1_000_000), ("epoch_ns", 10**9)]
)
def test_epoch_numbers_load_when_the_column_names_their_unit(tmp_path, column, scale):
    path = tmp_path / "epoch.csv"
    path.write_text(
        f"symbol,{column},open,high,low,close,volume\nKO,{1669735800 * scale},1,1,1,1,1\nKO,{1669822200 * scale},1,1,1,1.1,1\n"
    )
    bars = FileBarSource(path=str(path)).load_bars(["KO"], *EVERYTHING)
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2022-11-29 15:30", tz=UTC),
        pd.Timestamp("2022-11-30 15:30", tz=UTC),
    ]
    assert FileBarSource(path=str(path)).last_session() == pd.Timestamp("2022-11-30")


def test_an_epoch_column_in_the_wrong_unit_or_beside_a_timestamp_column_is_refused(tmp_path):
    path = tmp_path / "wrong_unit.csv"
    path.write_text("symbol,epoch_s,open,high,low,close,volume\nKO,1669735800,1,1,1,1,1\nKO,1669822200000,1,1,1,1,1\n")
    with pytest.raises(BarsFileError) as caught:
        read_bars_file(path)
    assert str(caught.value).startswith(
        f"bars file {path}: row 3 (symbol KO), field epoch_s: 1669822200000 seconds since 1970 is outside 1900-2100"
    )
    both = tmp_path / "both.csv"
    both.write_text("symbol,timestamp,epoch_ms,open,high,low,close,volume\nKO,2022-11-29,1669735800000,1,1,1,1,1\n")
    with pytest.raises(BarsFileError, match=r"has both timestamp and epoch_ms: keep one"):
        read_bars_file(both)
    words = tmp_path / "words.csv"
    words.write_text("symbol,epoch_ms,open,high,low,close,volume\nKO,soon,1,1,1,1,1\n")
    with pytest.raises(BarsFileError, match=r"row 2 \(symbol KO\), field epoch_ms: 'soon' is not a number"):
        read_bars_file(words)


def test_daily_files_keep_their_meaning(tmp_path):
    """Dates alone, or zone-less midnights throughout, are daily bars; a zoned midnight is an instant."""
    midnights = _write(
        tmp_path, "midnights.csv", ["KO,2022-12-27 00:00:00,1,1,1,1,1", "KO,2022-12-28 00:00:00,1,1,1,1,1"]
    )
    assert read_bars_file(midnights)["timestamp"].tolist() == [
        pd.Timestamp("2022-12-27 21:00", tz=UTC),
        pd.Timestamp("2022-12-28 21:00", tz=UTC),
    ]
    zoned = _write(tmp_path, "zoned.csv", ["KO,2022-12-28T00:00:00-05:00,1,1,1,1,1"])
    assert read_bars_file(zoned)["timestamp"].tolist() == [pd.Timestamp("2022-12-28 05:00", tz=UTC)]
    dates = tmp_path / "dates.parquet"
    pd.DataFrame(
        {
            "symbol": ["KO"],
            "timestamp": [dt.date(2022, 12, 28)],
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    ).to_parquet(dates)
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
    path = _write(
        tmp_path,
        "weekend.csv",
        [
            "KO,2022-11-04,60.0,60.2,59.9,60.1,1000",
            "PEP,2022-11-04,180.0,180.5,179.5,180.2,500",
            "PEP,2022-11-05,180.0,180.5,179.5,180.2,500",
        ],
    )
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


def test_rows_are_named_in_a_file_whose_symbols_share_timestamps(tmp_path):
    """Each distinct timestamp is classified once; the error still names the first row holding it."""
    path = _write(
        tmp_path,
        "shared.csv",
        [
            "KO,2022-11-28T15:00:00Z,1,1,1,1,1",
            "PEP,2022-11-28T15:00:00Z,1,1,1,1,1",
            "PEP,2022-11-29 15:00:00,1,1,1,1,1",
            "KO,2022-11-29 15:00:00,1,1,1,1,1",
        ],
    )
    with pytest.raises(
        BarsFileError, match=r"row 4 \(symbol PEP\), field timestamp: '2022-11-29 15:00:00' has no zone while row 2"
    ):
        read_bars_file(path)
    gap = _write(
        tmp_path,
        "shared_gap.csv",
        [
            "KO,2022-11-28T10:00:00-05:00,1,1,1,1,1",
            "PEP,2022-11-28T10:00:00-05:00,1,1,1,1,1",
            "KO,2022-11-29 10:00 EST,1,1,1,1,1",
            "PEP,,1,1,1,1,1",
        ],
    )
    with pytest.raises(
        BarsFileError,
        match=r"symbol PEP has an unparseable timestamp <NA> \(row 5\)|symbol PEP has an unparseable timestamp nan \(row 5\)",
    ):
        read_bars_file(gap)
    good = _write(
        tmp_path,
        "shared_fixed.csv",
        [
            "KO,2022-11-28T10:00:00-05:00,1,1,1,1,1",
            "PEP,2022-11-28T10:00:00-05:00,1,1,1,1,1",
            "KO,2022-11-29 10:00 EST,1,1,1,1,1",
        ],
    )
    assert read_bars_file(good)["timestamp"].tolist() == [pd.Timestamp("2022-11-28 15:00", tz=UTC)] * 2 + [
        pd.Timestamp("2022-11-29 15:00", tz=UTC)
    ]
