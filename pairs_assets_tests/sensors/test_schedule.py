import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from pairs_assets.definitions import defs

NY = ZoneInfo("America/New_York")
SECTORS = ["consumer", "energy", "financial", "healthcare", "industrial", "technology"]


def _tick(day: dt.date):
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(day.year, day.month, day.day, 6, 0, tzinfo=NY),
            repository_def=defs.get_repository_def(),
        )
        return defs.get_schedule_def("daily_pairs_schedule").evaluate_tick(context)


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
    data = _tick(dt.date(2023, 1, 17))  # Monday 2023-01-16 was Martin Luther King Jr. Day
    assert {r.partition_key for r in data.run_requests} == {f"2023-01-13|{s}" for s in SECTORS}


def test_holiday_tick_skips_with_reason():
    data = _tick(dt.date(2023, 1, 16))
    assert not data.run_requests
    assert "2023-01-16 is not an NYSE session" in data.skip_message


def test_monday_requests_friday():
    data = _tick(dt.date(2022, 12, 12))
    assert {r.partition_key for r in data.run_requests} == {f"2022-12-09|{s}" for s in SECTORS}
