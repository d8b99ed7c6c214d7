"""The cost planner and the busy-period history it reads (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from warmpool.scaling.cost import Arrival, plan
from warmpool.scaling.history import (
    DAY,
    MAX_PERIODS,
    Period,
    add_period,
    burst_arrivals,
    burst_threshold,
    gap_arrivals,
)

COMMON = {"cold_start_seconds": 30.0, "lead_seconds": 11.0, "pad_seconds": 25.0}
MONDAY = datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def test_predictable_arrivals_are_prewarmed_one_cold_start_early() -> None:
    made = plan([Arrival(600 + d) for d in (-5, 0, 5)], cold_start_cost=300, **COMMON)
    assert made is not None
    # From 600 - 5 (earliest sample) - 5 (their spacing: the next may fall outside) - 11 (lead)
    # to 605 + 5 + 25 (the time the metrics need to show the arrival).
    assert [(w.start, w.end, w.prewarm) for w in made.windows] == [(579, 635, True)]
    assert made.wants_replica(549, 30) and not made.wants_replica(548, 30)
    assert made.hold_seconds() == 0  # released at once
    assert made.expected_cold_requests == 0


def test_zero_cost_never_spends_gpu_time() -> None:
    made = plan([Arrival(x) for x in (60, 600, 605)], cold_start_cost=0, **COMMON)
    assert made is not None and made.windows == ()


def test_short_gaps_are_held_through() -> None:
    short = [Arrival(x) for x in (20, 25, 30, 35, 40, 45)]
    long = [Arrival(x) for x in (3000, 3010, 3020, 3030, 3040, 3050)]
    made = plan(short + long, cold_start_cost=300, **COMMON)
    assert made is not None
    assert made.hold_seconds() == 75  # the last short gap + spacing + pad
    assert [w.prewarm for w in made.windows] == [False, True]  # the long ones: pre-warmed


def test_requests_at_risk_weigh_the_choice() -> None:
    # Two spread-out arrival times: one with a single request, one with twenty at risk.
    arrivals = [Arrival(900 + d, requests=1) for d in range(6)]
    arrivals += [Arrival(2000 + d, requests=20) for d in range(6)]
    made = plan(arrivals, cold_start_cost=60, **COMMON)
    assert made is not None
    # Start: earliest sample - the margin (the 1 % prior over 6 samples) - the lead.
    assert [w.start for w in made.windows] == [pytest.approx(2000 - 0.01 * 2005 / 6 - 11)]


def test_burst_plan_only_prewarms_after_the_earliest_time() -> None:
    made = plan(
        [Arrival(300 + d) for d in range(6)] + [Arrival(900 + d) for d in range(6)],
        cold_start_cost=300,
        keep_alive=False,
        earliest_prewarm=500,
        **COMMON,
    )
    assert made is not None and all(w.prewarm and w.start >= 500 for w in made.windows)
    assert [w.start for w in made.windows] == [pytest.approx(900 - 0.01 * 905 / 6 - 11)]


def test_stray_requests_are_not_bursts() -> None:
    # Bursts: 8 requests at risk, 6 request-seconds served; strays: 1 and 0.5.
    periods = [Period(k * 900.0, 0, 8, 6) for k in range(10)]
    periods += [Period(k * 900.0 + 400, 0, 1, 0.5) for k in range(10)]
    threshold = burst_threshold(periods)
    assert 1.5 < threshold < 14


def test_periods_alike_are_all_bursts() -> None:
    periods = [Period(k * 300.0, 290, 1, 0.5) for k in range(10)]
    assert burst_threshold(periods) <= 1.5


def test_time_of_day_picks_samples_from_the_same_hour() -> None:
    # Ten days: a 09:00 start after a 20 h night gap, and a 13:00 start after a 2 h gap.
    periods = []
    for day in range(10):
        base = MONDAY + day * DAY
        periods.append(Period(base + 9 * 3600, 20 * 3600, 5, 600))
        periods.append(Period(base + 13 * 3600, 7200, 5, 600))
    morning = gap_arrivals(periods, MONDAY + 10 * DAY - 11 * 3600)  # 13:00 the day before
    assert {a.after_seconds for a in morning} == {20 * 3600}
    noon = gap_arrivals(periods, MONDAY + 10 * DAY + 11 * 3600)
    assert {a.after_seconds for a in noon} == {7200}
    weights = [a.weight for a in noon]
    assert weights == sorted(weights, reverse=True)  # the most recent weigh most


def test_burst_intervals_skip_arrivals_already_past() -> None:
    periods = [Period(k * 900.0, 0, 5, 30, burst_interval=900) for k in range(1, 6)]
    assert [a.after_seconds for a in burst_arrivals(periods, 4500, 100)] == [900] * 5
    assert burst_arrivals(periods, 4500, 950) == []


def test_history_is_bounded_and_keeps_quiet_hours() -> None:
    periods: list[Period] = [Period(MONDAY + 3 * 3600, 5000, 1, 0)]  # one at 03:00
    for k in range(3 * MAX_PERIODS):  # a busy afternoon, every 10 s
        periods = add_period(periods, Period(MONDAY + 14 * 3600 + 10 * k, 40, 1, 0))
    assert len(periods) == MAX_PERIODS
    assert periods[0].start == MONDAY + 3 * 3600


@pytest.mark.parametrize(
    "item", [None, [1, 2], [1, 2, 3, "x", 5, 1], [1, -2, 3, 4, 5, 1], [float("nan")] * 6]
)
def test_malformed_period_is_dropped(item: object) -> None:
    assert Period.from_list(item) is None
