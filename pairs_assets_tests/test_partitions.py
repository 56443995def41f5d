import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.errors import InsufficientHistoryError


def test_sessions_exclude_weekends_holidays_and_closures():
    keys = set(partitions.session_partitions_def().get_partition_keys())
    assert "2022-12-28" in keys and "1990-01-02" in keys
    for not_a_session in ["2022-12-26", "2023-01-16", "2001-09-11", "2012-10-29", "2022-12-24"]:
        assert not_a_session not in keys
    assert len([k for k in keys if k.startswith("2022")]) == 251  # NYSE sessions in 2022


def test_multi_partition_keys_read_date_then_sector():
    multi = partitions.daily_partitions_def()
    assert [d.name for d in multi.partitions_defs] == ["date", "sector"]
    assert "2022-12-28|technology" in multi.get_partition_keys()


def test_previous_and_next_session_are_holiday_aware():
    assert partitions.previous_session("2023-01-17") == pd.Timestamp("2023-01-13")  # MLK Monday
    assert partitions.next_session("2022-12-23") == pd.Timestamp("2022-12-27")
    assert partitions.session_close_utc("2022-11-25") == pd.Timestamp("2022-11-25 18:00", tz="UTC")  # half day


def test_window_at_start_of_history_is_a_clear_error():
    with pytest.raises(InsufficientHistoryError, match=r"partition 1990-02-01: the window needs 60 sessions but only 23"):
        partitions.window_sessions("1990-02-01", 60)
    window = partitions.window_sessions("2022-12-28", 60)
    assert len(window) == 60 and window[-1] == pd.Timestamp("2022-12-28")
