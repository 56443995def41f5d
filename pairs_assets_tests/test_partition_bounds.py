"""The daily partitions end where the bar source ends (issue 16 item 5).

The embedded dataset and a user's file bound the ``date`` dimension at their last session, read
cheaply (the embedded closes' dates; a file's symbol and timestamp columns) once per file version;
Alpaca runs to today (open-ended). The definitions are built from explicit ``Paths``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.definitions import build_definitions
from pairs_assets.errors import BarsFileError, PartitionKeyError
from pairs_assets.settings import Paths
from resources import bar_sources
from resources.alpaca_source import AlpacaBarSource
from resources.bar_sources import EmbeddedBarSource, FileBarSource


def _raw_bars_partitions(p: Paths):
    return build_definitions(p).resolve_assets_def("raw_bars").partitions_def


def _last_date(daily) -> str:
    return daily.get_partitions_def_for_dimension("date").get_last_partition_key()


def test_embedded_source_ends_the_partitions_at_2022_12_28(tmp_path):
    assert EmbeddedBarSource().last_session() == pd.Timestamp("2022-12-28")
    daily = _raw_bars_partitions(Paths.from_env({"PAIRS_HOME": str(tmp_path)}))
    assert _last_date(daily) == "2022-12-28"
    assert daily.get_partition_keys()[-1] == "2022-12-28|technology"
    assert daily.get_num_partitions() == 8313 * 6  # 1990-01-02 → 2022-12-28 × 6 sectors (was 55,794 on 2026-12-06)
    with pytest.raises(PartitionKeyError, match=r"2023-01-03 is past the last partition 2022-12-28"):
        partitions.check_partition_key("2023-01-03|energy", daily)


def test_file_source_ends_the_partitions_at_its_last_bar(tmp_path):
    bars = tmp_path / "bars.csv"
    rows = [f"{s},{d},1,1,1,1,1" for d in ("2022-11-03", "2022-11-04") for s in ("KO", "PEP")]
    bars.write_text("symbol,timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    assert FileBarSource(path=str(bars)).last_session() == pd.Timestamp("2022-11-04")
    daily = _raw_bars_partitions(Paths.from_env({"PAIRS_HOME": str(tmp_path), "PAIRS_BARS_FILE": str(bars)}))
    assert _last_date(daily) == "2022-11-04"
    with pytest.raises(PartitionKeyError, match=r"2022-11-07 is past the last partition 2022-11-04"):
        partitions.check_partition_key("2022-11-07|energy", daily)


def test_file_last_session_of_intraday_and_parquet_bars(tmp_path):
    intraday = tmp_path / "ny.csv"  # New York times: the last bar's New York date, not its UTC date
    intraday.write_text(
        "Symbol,Timestamp,Open,High,Low,Close,Volume\n"
        "KO,2022-11-07T15:59:00-05:00,1,1,1,1,1\nKO,2022-11-07T19:30:00-05:00,1,1,1,1,1\n"
    )
    assert FileBarSource(path=str(intraday)).last_session() == pd.Timestamp("2022-11-07")
    parquet = tmp_path / "bars.parquet"
    frame = pd.DataFrame(
        {
            "symbol": ["KO", "KO"],
            "timestamp": pd.to_datetime(["2022-12-27", "2022-12-28"]),
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )
    frame.to_parquet(parquet)
    assert FileBarSource(path=str(parquet)).last_session() == pd.Timestamp("2022-12-28")


def test_file_last_session_is_read_once_per_version_of_the_file(tmp_path):
    bars = tmp_path / "bars.csv"
    bars.write_text("symbol,timestamp,open,high,low,close,volume\nKO,2022-11-04,1,1,1,1,1\n")
    source = FileBarSource(path=str(bars))
    source.last_session()
    misses = bar_sources._bars_file_last_session.cache_info().misses
    assert source.last_session() == pd.Timestamp("2022-11-04")
    assert bar_sources._bars_file_last_session.cache_info().misses == misses  # served from the cache


def test_file_last_session_refuses_what_the_load_would_refuse(tmp_path):
    no_volume = tmp_path / "no_volume.csv"
    no_volume.write_text("symbol,timestamp,open,high,low,close\nKO,2022-11-04,1,1,1,1\n")
    with pytest.raises(BarsFileError, match=r"lacks required column\(s\) volume"):
        FileBarSource(path=str(no_volume)).last_session()
    weekend = tmp_path / "weekend.csv"
    weekend.write_text(
        "symbol,timestamp,open,high,low,close,volume\nKO,2022-12-23,1,1,1,1,1\nKO,2022-12-24,1,1,1,1,1\n"
    )
    with pytest.raises(BarsFileError, match=r"row 3 \(symbol KO\) is dated 2022-12-24, which is not an NYSE session"):
        FileBarSource(path=str(weekend)).last_session()


def test_alpaca_stays_open_ended(tmp_path):
    assert AlpacaBarSource().last_session() is None
    daily = _raw_bars_partitions(Paths.from_env({"PAIRS_HOME": str(tmp_path), "PAIRS_BAR_SOURCE": "alpaca"}))
    assert partitions.last_session_of(daily) is None
    assert _last_date(daily) > "2023-01-03"  # past the embedded data, up to the last completed session
