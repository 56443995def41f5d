import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.errors import InsufficientHistoryError, PartitionKeyError

SECTORS = ["energy", "technology"]


def test_sessions_exclude_weekends_holidays_and_closures():
    keys = set(partitions.session_partitions_def("1990-01-02").get_partition_keys())
    assert "2022-12-28" in keys and "1990-01-02" in keys
    for not_a_session in ["2022-12-26", "2023-01-16", "2001-09-11", "2012-10-29", "2022-12-24"]:
        assert not_a_session not in keys
    assert len([k for k in keys if k.startswith("2022")]) == 251  # NYSE sessions in 2022


def test_multi_partition_keys_read_date_then_sector():
    multi = partitions.daily_partitions_def("1990-01-02", SECTORS)
    assert [d.name for d in multi.partitions_defs] == ["date", "sector"]
    assert "2022-12-28|technology" in multi.get_partition_keys()
    assert partitions.daily_partitions_def("1990-01-02", SECTORS) is multi  # built once per input


def test_partitions_come_from_their_inputs_only():
    """Two histories and two universes in one process: each definition has its own first session and sectors."""
    early = partitions.daily_partitions_def("1985-06-03", ["energy"])
    late = partitions.daily_partitions_def("2020-01-01", SECTORS)  # a holiday: the first session is the 2nd
    assert partitions.history_start_of(early) == pd.Timestamp("1985-06-03")
    assert partitions.history_start_of(late) == pd.Timestamp("2020-01-02")
    assert partitions.sectors_of(early) == ["energy"] and partitions.sectors_of(late) == SECTORS
    assert partitions.check_partition_key("1985-06-03|energy", early) == ("1985-06-03", "energy")
    with pytest.raises(PartitionKeyError, match=r"1985-06-03 precedes the first partition 2020-01-02"):
        partitions.check_partition_key("1985-06-03|energy", late)
    with pytest.raises(PartitionKeyError, match=r"unknown sector 'technology' \(known: energy\)"):
        partitions.check_partition_key("2022-12-28|technology", early)


def test_calendar_helpers_answer_before_1990():
    assert partitions.is_session("1987-10-19") and not partitions.is_session("1987-10-18")
    assert partitions.previous_session("1985-01-02") == pd.Timestamp("1984-12-31")
    assert len(partitions.sessions_in_range("1985-01-01", "1985-01-31")) == 22  # 23 weekdays, New Year's Day closed


def test_previous_and_next_session_are_holiday_aware():
    assert partitions.previous_session("2023-01-17") == pd.Timestamp("2023-01-13")  # MLK Monday
    assert partitions.next_session("2022-12-23") == pd.Timestamp("2022-12-27")
    assert partitions.session_close_utc("2022-11-25") == pd.Timestamp("2022-11-25 18:00", tz="UTC")  # half day


def test_window_at_start_of_history_is_a_clear_error():
    with pytest.raises(
        InsufficientHistoryError, match=r"partition 1990-02-01: the window needs 60 sessions but only 23"
    ):
        partitions.window_sessions("1990-02-01", 60, history_start="1990-01-02")
    window = partitions.window_sessions("2022-12-28", 60, history_start="1990-01-02")
    assert len(window) == 60 and window[-1] == pd.Timestamp("2022-12-28")
    assert len(partitions.window_sessions("1990-02-01", 60, history_start="1989-01-03")) == 60


def test_the_formation_schedule_is_the_exchange_calendar_s_not_the_history_start_s():
    """Every 21st NYSE session counted from the fixed epoch 1990-01-02 (issue 18 item 3): the same
    whatever the history start, which takes no part in it any more."""
    from pairs_assets.quant.stages import FORMATION_EPOCH

    every = 21
    assert partitions.formation_session("2022-12-28", 1) == pd.Timestamp("2022-12-28")
    calendar = partitions.sessions_in_range(FORMATION_EPOCH, "2022-12-28")
    for day in calendar[::97]:
        i = calendar.get_loc(day)
        assert partitions.formation_session(day, every) == calendar[i - i % every]
        # history starts that used to shift the schedule by one and by 20 sessions
        for start in ("1990-01-03", "1990-01-31", "1993-06-01"):
            schedule = partitions.formation_schedule(every, "2022-12-28", since=start)
            if day >= pd.Timestamp(start):
                assert schedule(day) == calendar[i - i % every]
    # the phase shifts the blocks; the formation session never follows its as-of session
    assert partitions.formation_session("2022-12-28", every) == pd.Timestamp("2022-12-02")
    assert partitions.formation_session("2022-12-28", every, phase=3) == pd.Timestamp("2022-12-07")
    assert (
        partitions.formation_session("2022-12-06", every, phase=3) == calendar[calendar.get_loc("2022-12-07") - every]
    )
    # before the epoch the blocks continue backwards
    before = partitions.sessions_in_range("1989-01-03", FORMATION_EPOCH)
    formed = partitions.formation_session("1989-06-01", every)
    assert (len(before) - 1 - before.get_loc(formed)) % every == 0 and formed <= pd.Timestamp("1989-06-01")


def test_a_bad_formation_phase_is_refused():
    from pairs_assets.settings import StrategySettings

    with pytest.raises(ValueError, match="formation_phase must be below reselect_every"):
        StrategySettings(reselect_every=21, formation_phase=21)
    with pytest.raises(ValueError, match="0 <= phase < every"):
        partitions.formation_schedule(21, "2022-12-28", phase=-1)


def test_dates_end_at_the_given_last_session_and_refuse_keys_past_it():
    daily = partitions.daily_partitions_def("2022-01-03", SECTORS, "2022-12-28")
    dates = daily.get_partitions_def_for_dimension("date")
    assert dates.get_last_partition_key() == "2022-12-28"
    assert partitions.last_session_of(daily) == pd.Timestamp("2022-12-28")
    assert daily.get_partition_keys()[-1] == "2022-12-28|technology"
    assert len(daily.get_partition_keys()) == 249 * len(
        SECTORS
    )  # 2022 has 251 sessions; the 29th and 30th are past the end
    assert partitions.check_partition_key("2022-12-28|energy", daily) == ("2022-12-28", "energy")
    with pytest.raises(
        PartitionKeyError,
        match=r"partition 2022-12-29\|energy: 2022-12-29 is past the last partition 2022-12-28 \(the bar source's last",
    ):
        partitions.check_partition_key("2022-12-29|energy", daily)
    assert (
        partitions.daily_partitions_def("2022-01-03", SECTORS, pd.Timestamp("2022-12-28")) is daily
    )  # keyed on inputs
    assert partitions.daily_partitions_def("2022-01-03", SECTORS) is not daily


def test_last_session_before_a_holiday_weekend_and_on_a_non_session():
    # Friday 2022-12-30, then the weekend and Monday 2023-01-02 (New Year's Day observed)
    friday = partitions.session_partitions_def("2022-12-01", "2022-12-30")
    assert friday.get_partition_keys()[-2:] == ["2022-12-29", "2022-12-30"]
    saturday = partitions.session_partitions_def("2022-12-01", "2022-12-31")  # a bar source's last *date*
    assert saturday.get_last_partition_key() == "2022-12-30"


def test_open_ended_dates_run_past_any_data():
    daily = partitions.daily_partitions_def("2022-01-03", SECTORS)
    assert partitions.last_session_of(daily) is None
    assert daily.get_partitions_def_for_dimension("date").get_last_partition_key() > "2023-01-03"
    assert partitions.check_partition_key("2023-01-03|energy", daily) == ("2023-01-03", "energy")


def test_a_source_ending_before_the_history_start_is_a_clear_error():
    with pytest.raises(PartitionKeyError, match=r"last session 2022-12-28 precedes the history start 2023-01-03"):
        partitions.daily_partitions_def("2023-01-03", SECTORS, "2022-12-28")
