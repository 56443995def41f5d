"""The paper book's close schedule: the tick's run requests at 16:30 New York, built like the 6 AM schedule's."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from pairs_assets.definitions import build_definitions, defs
from pairs_assets.settings import Paths

NY = ZoneInfo("America/New_York")


def _tick(day: dt.date, definitions: dg.Definitions = defs):
    """The schedule's tick at 16:30 on ``day`` (default: the process's definitions, on the embedded data)."""
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(day.year, day.month, day.day, 16, 30, tzinfo=NY),
            repository_def=definitions.get_repository_def(),
        )
        return definitions.get_schedule_def("paper_book_schedule").evaluate_tick(context)


def test_schedule_is_1630_new_york_weekdays_on_the_paper_book_job_and_stopped():
    schedule = defs.get_schedule_def("paper_book_schedule")
    assert schedule.cron_schedule == "30 16 * * 1-5"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == "paper_book_job"
    # off by default, like the 6 AM schedule and the signal sensor (the live chain)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.get_schedule_def("daily_pairs_schedule").default_status == schedule.default_status


def test_a_session_requests_its_own_partition_once():
    data = _tick(dt.date(2022, 12, 13))
    (request,) = data.run_requests
    assert (request.partition_key, request.run_key) == ("2022-12-13", "paper_book:2022-12-13")
    assert request.job_name in (None, "paper_book_job")
    # the key is a partition of the paper_book asset the job selects
    assert "2022-12-13" in defs.get_assets_def("paper_book").partitions_def.get_partition_keys()


def test_an_early_close_session_is_marked_too():
    # 2022-11-25 (the day after Thanksgiving) closed at 13:00: still a session, marked at the 16:30 tick
    assert [r.partition_key for r in _tick(dt.date(2022, 11, 25)).run_requests] == ["2022-11-25"]


def test_holiday_and_weekend_skip_with_reason():
    data = _tick(dt.date(2022, 12, 26))  # Christmas observed
    assert not data.run_requests
    assert data.skip_message == "2022-12-26 is not an NYSE session: no close to mark the paper book at"


def test_the_books_last_session_is_the_one_after_the_datas_last():
    # the embedded data ends on 2022-12-28; the signal job's last partition trades 2022-12-29
    assert [r.partition_key for r in _tick(dt.date(2022, 12, 29)).run_requests] == ["2022-12-29"]
    for day in (dt.date(2022, 12, 30), dt.date(2026, 12, 7)):
        data = _tick(day)
        assert not data.run_requests
        assert data.skip_message == (
            f"the paper book's last session is 2022-12-29 (the session after the bar source's last): the {day} "
            "close has no partition (load newer bars, or use PAIRS_BAR_SOURCE=alpaca)"
        )


def test_open_ended_source_has_todays_partition_at_the_close(tmp_path):
    """Alpaca: the book's partitions run to the session in progress, so today's exists at 16:30 (a plain
    open-ended daily partition set would only get it after midnight)."""
    alpaca = build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path), "PAIRS_BAR_SOURCE": "alpaca"}))
    data = _tick(dt.date(2023, 1, 17), alpaca)  # past the embedded data; in the past on any machine's clock
    assert [r.partition_key for r in data.run_requests] == ["2023-01-17"]
    at_tick = dt.datetime(2023, 1, 17, 16, 30, tzinfo=NY)
    book = alpaca.get_assets_def("paper_book").partitions_def
    assert book.get_partition_keys(current_time=at_tick)[-1] == "2023-01-17"  # the session in progress
    # the daily partitions stay on the last completed session (Monday 2023-01-16 was a holiday)
    daily = alpaca.get_assets_def("trading_config").partitions_def.get_partitions_def_for_dimension("date")
    assert daily.get_partition_keys(current_time=at_tick)[-1] == "2023-01-13"
