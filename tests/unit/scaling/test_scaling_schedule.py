"""Cron windows in their time zones, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from warmpool.api.spec import Schedule
from warmpool.scaling.schedule import active_floor, latest_start


def schedule(cron: str, zone: str = "Europe/Berlin", floor: int = 2, minutes: int = 60) -> Schedule:
    return Schedule(cron=cron, timezone=zone, warm_floor=floor, duration_minutes=minutes)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "floor"),
    [
        (utc(2026, 6, 1, 5, 59, 59), 0),  # 07:59:59 CEST: before the window
        (utc(2026, 6, 1, 6, 0, 0), 2),  # 08:00 CEST: the start is inside
        (utc(2026, 6, 1, 6, 59, 59), 2),
        (utc(2026, 6, 1, 7, 0, 0), 0),  # start + duration is outside
        (utc(2026, 1, 5, 7, 30), 2),  # winter: 08:30 CET = 07:30 UTC
        (utc(2026, 1, 5, 6, 30), 0),  # 07:30 CET
    ],
)
def test_window_is_start_inclusive_end_exclusive_in_local_time(now: datetime, floor: int) -> None:
    assert active_floor([schedule("0 8 * * *")], now)[0] == floor


def test_spring_forward_nonexistent_start_is_shifted_by_the_gap() -> None:
    # 2026-03-29 02:30 does not exist in Berlin (02:00 -> 03:00): the window starts 03:30 CEST.
    s = schedule("30 2 * * *")
    start = latest_start(s, utc(2026, 3, 29, 1, 45))
    assert start is not None and start.astimezone(UTC) == utc(2026, 3, 29, 1, 30)
    assert active_floor([s], utc(2026, 3, 29, 1, 29))[0] == 0
    assert active_floor([s], utc(2026, 3, 29, 2, 29))[0] == 2
    assert active_floor([s], utc(2026, 3, 29, 2, 30))[0] == 0  # 60 elapsed minutes


def test_fall_back_ambiguous_start_fires_once_at_first_occurrence() -> None:
    # 2026-10-25 02:30 happens twice in Berlin (CEST 00:30 UTC, then CET 01:30 UTC).
    s = schedule("30 2 * * *", minutes=30)
    assert active_floor([s], utc(2026, 10, 25, 0, 45))[0] == 2
    # During the repeated hour the window (30 elapsed minutes) is already over.
    assert active_floor([s], utc(2026, 10, 25, 1, 45))[0] == 0


def test_duration_is_elapsed_time_across_a_dst_change() -> None:
    # Starts 01:00 CET on spring-forward day, 3 hours: ends 05:00 CEST = 03:00 UTC.
    s = schedule("0 1 * * *", minutes=180)
    assert active_floor([s], utc(2026, 3, 29, 2, 59))[0] == 2
    assert active_floor([s], utc(2026, 3, 29, 3, 0))[0] == 0


def test_highest_active_floor_wins_and_is_named() -> None:
    schedules = [
        schedule("0 8 * * *", floor=2, minutes=120),  # 06:00-08:00 UTC
        schedule("0 7 * * *", "UTC", floor=5, minutes=120),  # 07:00-09:00 UTC
    ]
    floor, reason = active_floor(schedules, utc(2026, 6, 1, 7, 30))
    assert floor == 5 and reason.startswith("schedules[1]")


def test_weekday_schedule_in_new_york() -> None:
    s = schedule("0 9 * * 1-5", "America/New_York", floor=3, minutes=480)
    assert active_floor([s], utc(2026, 6, 1, 14, 0))[0] == 3  # Monday 10:00 EDT
    assert active_floor([s], utc(2026, 6, 6, 14, 0))[0] == 0  # Saturday


def test_invalid_cron_is_reported_not_raised() -> None:
    bad = Schedule(cron="61 * * * *", timezone="UTC", warm_floor=1, duration_minutes=5)
    floor, reason = active_floor([bad, schedule("0 8 * * *")], utc(2026, 6, 1, 6, 30))
    assert floor == 2 and "schedules[0]" in reason and "invalid cron" in reason


def test_next_boundary_is_the_end_or_the_next_start() -> None:
    from warmpool.scaling.schedule import next_boundary

    s = schedule("0 8 * * *", minutes=60)  # 06:00-07:00 UTC in June
    assert next_boundary([s], utc(2026, 6, 1, 6, 30)) == utc(2026, 6, 1, 7, 0)
    assert next_boundary([s], utc(2026, 6, 1, 7, 0)) == utc(2026, 6, 2, 6, 0)
    assert next_boundary([], utc(2026, 6, 1, 7, 0)) is None
