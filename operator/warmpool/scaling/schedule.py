"""Cron windows that raise the warm floor, read in their own time zones (pure).

A schedule `{cron, timezone, warmFloor, durationMinutes}` is active during
`[start, start + duration)` for every `start` the cron expression matches on the wall clock of
`timezone`. The duration is elapsed time, so a window spanning a DST change lasts exactly
`durationMinutes`. Wall-clock starts the zone skips (spring forward, e.g. 02:30 in
Europe/Berlin on the last Sunday of March) are shifted forward by the gap (03:30); starts the
zone repeats (fall back) fire once, at their first occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from warmpool.api.spec import Schedule

#: How far past `now` (wall clock) the search for the latest start begins: covers a fall-back
#: hour, where a start later on the wall clock can be earlier in elapsed time.
_SEARCH_AHEAD = timedelta(hours=2)
#: Bound on candidates walked back (a `* * * * *` schedule matches every minute of those hours).
_MAX_CANDIDATES = 200


class ScheduleError(ValueError):
    """A schedule's cron expression cannot be evaluated."""


def latest_start(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest window start at or before `now` (aware, in the schedule's zone), if any."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(schedule.timezone)
    wall_now = now.astimezone(zone).replace(tzinfo=None)
    try:
        # croniter walks naive wall-clock times: no DST arithmetic inside croniter.
        walker = croniter(schedule.cron, wall_now + _SEARCH_AHEAD)
    except (ValueError, KeyError) as error:
        raise ScheduleError(f"invalid cron {schedule.cron!r}: {error}") from error
    for _ in range(_MAX_CANDIDATES):
        wall: datetime = walker.get_prev(datetime)
        start = _localize(wall, zone)
        if start <= now:
            return start
    return None


def active_floor(schedules: Sequence[Schedule], now: datetime) -> tuple[int, str]:
    """The highest warm floor among active windows, and which window gives it ("" if none).

    A schedule whose cron cannot be evaluated is skipped and named in the reason, so one bad
    entry never disables the others.
    """
    floor, reason = 0, ""
    errors: list[str] = []
    for index, schedule in enumerate(schedules):
        try:
            start = latest_start(schedule, now)
        except ScheduleError as error:
            errors.append(f"schedules[{index}]: {error}")
            continue
        if start is None:
            continue
        # Elapsed-time arithmetic: aware datetimes in one zone add on the wall clock.
        end = start.astimezone(UTC) + timedelta(minutes=schedule.duration_minutes)
        if now < end and schedule.warm_floor > floor:
            floor = schedule.warm_floor
            reason = (
                f"schedules[{index}] ({schedule.cron} {schedule.timezone}) until "
                f"{end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
    if errors:
        reason = "; ".join([reason, *errors]) if reason else "; ".join(errors)
    return floor, reason


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """Attach `zone` to a wall-clock time, moving nonexistent times forward by the DST gap."""
    aware = wall.replace(tzinfo=zone, fold=0)
    round_trip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != wall:
        # In a spring-forward gap: fold=0 reads it with the offset before the change, which
        # lands after the gap, i.e. shifted forward by the gap's length.
        return aware.astimezone(UTC).astimezone(zone)
    return aware


def next_boundary(schedules: Sequence[Schedule], now: datetime) -> datetime | None:
    """The next time any window starts or ends after `now` (when the floor may change)."""
    candidates: list[datetime] = []
    for schedule in schedules:
        try:
            start = latest_start(schedule, now)
            zone = ZoneInfo(schedule.timezone)
            wall_now = now.astimezone(zone).replace(tzinfo=None)
            upcoming = _localize(croniter(schedule.cron, wall_now).get_next(datetime), zone)
        except (ScheduleError, ValueError, KeyError):
            continue
        if start is not None:
            end = start.astimezone(UTC) + timedelta(minutes=schedule.duration_minutes)
            if end > now:
                candidates.append(end)
        if upcoming > now:
            candidates.append(upcoming.astimezone(UTC))
    return min(candidates, default=None)
