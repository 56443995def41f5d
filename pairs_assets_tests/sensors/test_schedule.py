import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from pairs_assets.definitions import build_definitions, defs
from pairs_assets.settings import Paths

NY = ZoneInfo("America/New_York")
SECTORS = ["consumer", "energy", "financial", "healthcare", "industrial", "technology"]


def _tick(day: dt.date, definitions: dg.Definitions = defs):
    """The schedule's tick at 06:00 on ``day`` (default: the process's definitions, on the embedded data)."""
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(day.year, day.month, day.day, 6, 0, tzinfo=NY),
            repository_def=definitions.get_repository_def(),
        )
        return definitions.get_schedule_def("daily_pairs_schedule").evaluate_tick(context)


def test_schedule_is_6am_new_york_weekdays():
    schedule = defs.get_schedule_def("daily_pairs_schedule")
    assert schedule.cron_schedule == "0 6 * * 1-5"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == "daily_pairs"


def test_normal_tuesday_requests_monday_for_every_sector():
    data = _tick(dt.date(2022, 12, 13))
    assert [r.partition_key for r in data.run_requests] == [f"2022-12-12|{s}" for s in SECTORS]
    assert [r.run_key for r in data.run_requests] == [f"2022-12-12|{s}" for s in SECTORS]
    assert data.run_requests[0].tags["pairs/effective_session"] == "2022-12-13"


def test_tuesday_after_monday_holiday_requests_friday():
    data = _tick(dt.date(2022, 1, 18))  # Monday 2022-01-17 was Martin Luther King Jr. Day
    assert {r.partition_key for r in data.run_requests} == {f"2022-01-14|{s}" for s in SECTORS}


def test_holiday_tick_skips_with_reason():
    data = _tick(dt.date(2023, 1, 16))
    assert not data.run_requests
    assert "2023-01-16 is not an NYSE session" in data.skip_message


def test_monday_requests_friday():
    data = _tick(dt.date(2022, 12, 12))
    assert {r.partition_key for r in data.run_requests} == {f"2022-12-09|{s}" for s in SECTORS}


def test_last_session_of_the_data_is_requested():
    data = _tick(dt.date(2022, 12, 29))  # the embedded data's last session is 2022-12-28
    assert {r.partition_key for r in data.run_requests} == {f"2022-12-28|{s}" for s in SECTORS}


def test_tick_past_the_bar_source_skips_naming_its_last_session():
    for day, requested in [(dt.date(2022, 12, 30), "2022-12-29"), (dt.date(2026, 12, 7), "2026-12-04")]:
        data = _tick(day)
        assert not data.run_requests
        assert data.skip_message == (
            f"the bar source's last session is 2022-12-28: the {day} tick would request {requested}, past the data "
            "(no partition; load newer bars, or use PAIRS_BAR_SOURCE=alpaca)"
        )


def test_open_ended_source_requests_past_the_embedded_data(tmp_path):
    """Alpaca's data runs to today: its schedule has no last session (its partitions no end)."""
    alpaca = build_definitions(Paths.from_env({"PAIRS_HOME": str(tmp_path), "PAIRS_BAR_SOURCE": "alpaca"}))
    data = _tick(dt.date(2023, 1, 17), alpaca)  # past the embedded data; in the past on any machine's clock
    assert {r.partition_key for r in data.run_requests} == {f"2023-01-13|{s}" for s in SECTORS}
