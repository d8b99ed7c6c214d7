"""The pure scaling policy: bursts, thresholds, clock skew, restarts, missing data, prediction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from warmpool.api.spec import PredictiveSpec, ScalingSpec
from warmpool.scaling.history import MAX_PERIODS, Period
from warmpool.scaling.policy import Decision, Observation, Sample, cold_start_cost, decide
from warmpool.scaling.state import MAX_RECOMMENDATIONS, PolicyState

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
INTERVAL = 10.0  # evaluation interval


def spec(**fields: Any) -> ScalingSpec:
    base: dict[str, Any] = {
        "warmFloor": 0,
        "maxReplicas": 8,
        "scaleToZeroAfterSeconds": 60,
        "scaleDownDelaySeconds": 120,
        "target": {"type": "Concurrency", "value": 4},
        "predictive": {"enabled": False},
    }
    base.update(fields)
    return ScalingSpec.model_validate(base)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def observe(
    seconds: float,
    demand: float | None,
    current: int,
    *,
    ready: int | None = None,
    wake: float | None = None,
    sample_at: float | None = None,
) -> Observation:
    when = at(sample_at if sample_at is not None else seconds).timestamp()
    return Observation(
        samples=[Sample(when, demand)],
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        wake_at=at(wake).timestamp() if wake is not None else None,
        interval_seconds=INTERVAL,
    )


class Driver:
    """Feeds one demand per interval through decide(), carrying state and replicas along."""

    def __init__(self, scaling: ScalingSpec, replicas: int = 0) -> None:
        self.spec, self.replicas, self.state = scaling, replicas, PolicyState()
        self.last: Decision | None = None

    def step(self, seconds: float, demand: float | None, **kwargs: Any) -> Decision:
        decision = decide(
            self.spec, observe(seconds, demand, self.replicas, **kwargs), at(seconds), self.state
        )
        self.state, self.replicas, self.last = decision.state, decision.desired, decision
        return decision

    def advance(self, seconds: float, demand: float | None, **kwargs: Any) -> Decision:
        """Evaluate every interval since the previous step (zero demand), then at `seconds`."""
        assert self.state.last_eval_at is not None
        t = self.state.last_eval_at - T0.timestamp() + INTERVAL
        while t < seconds:
            self.step(t, 0.0)
            t += INTERVAL
        return self.step(seconds, demand, **kwargs)

    def run(self, start: float, end: float, demand: float | None) -> Decision:
        t = start
        decision = self.step(t, demand)
        while t + INTERVAL <= end:
            t += INTERVAL
            decision = self.step(t, demand)
        return decision


def test_burst_scales_up_at_once() -> None:
    driver = Driver(spec(), replicas=1)
    driver.step(0, 1.0)
    decision = driver.step(10, 30.0)  # 30 in flight / 4 per replica
    assert decision.desired == 8  # capped at maxReplicas
    assert decision.metrics_available and decision.observed_demand == 30.0


def test_scale_down_waits_for_the_stabilization_window() -> None:
    driver = Driver(spec(scaleDownDelaySeconds=120), replicas=1)
    driver.step(0, 20.0)
    assert driver.replicas == 5
    # Demand drops to one replica's worth: the 5 recommended at t=0 win until the window ends.
    assert driver.step(60, 3.0).desired == 5
    assert "stabilization window" in driver.last.reason  # type: ignore[union-attr]
    assert driver.step(110, 3.0).desired == 5
    assert driver.step(120, 3.0).desired == 1  # t=0 is out of (0, 120]


def test_highest_recommendation_in_window_wins() -> None:
    driver = Driver(spec(scaleDownDelaySeconds=100), replicas=1)
    driver.step(0, 12.0)  # 3
    driver.step(50, 28.0)  # 7
    driver.step(60, 8.0)  # 2
    assert driver.step(140, 8.0).desired == 7  # 50 still inside (40, 140]
    assert driver.step(150, 8.0).desired == 2


def test_idle_exactly_the_timeout_scales_to_zero() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=0)
    driver.step(0, 1.0)  # traffic at t=0
    assert driver.advance(50, 0.0).desired == 1
    decision = driver.step(59.999, 0.0)
    assert decision.desired == 1, decision.reason
    decision = driver.step(60, 0.0)  # idle == timeout: "after 60 s idle" has elapsed
    assert decision.desired == 0, decision.reason
    assert "idle 60s >= scaleToZeroAfterSeconds 60s" in decision.reason


def test_never_to_zero_when_timeout_unset() -> None:
    driver = Driver(spec(warmFloor=0, scaleToZeroAfterSeconds=None), replicas=1)
    assert driver.run(0, 3600, 0.0).desired == 1


def test_warm_floor_holds_replicas_without_traffic() -> None:
    driver = Driver(spec(warmFloor=2, scaleToZeroAfterSeconds=None), replicas=2)
    decision = driver.run(0, 900, 0.0)
    assert decision.desired == 2 and decision.effective_floor == 2


def test_fresh_state_counts_idle_from_first_evaluation() -> None:
    # An operator that starts with no state must not scale a pool to zero at once.
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=1)
    assert driver.step(0, 0.0).desired == 1
    assert driver.advance(50, 0.0).desired == 1
    assert driver.advance(60, 0.0).desired == 0


def test_missing_data_holds_replicas_and_never_scales_to_zero() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=3)
    driver.step(0, 10.0)
    unavailable = Observation(
        samples=None,
        current_replicas=3,
        ready_replicas=3,
        unavailable_reason="connection refused",
        interval_seconds=INTERVAL,
    )
    for t in range(10, 610, 10):
        decision = decide(driver.spec, unavailable, at(t), driver.state)
        driver.state = decision.state
        assert decision.desired == 3
        assert not decision.metrics_available
        assert "metrics unavailable (connection refused): holding 3" in decision.reason
    # Data back and idle: the idle timer restarts after the outage (unknown is not idle).
    assert driver.step(610, 0.0).desired == 1
    assert driver.advance(650, 0.0).desired == 1
    assert driver.advance(660, 0.0).desired == 0


def test_unobserved_time_is_not_idle_time() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=1)
    driver.step(0, 1.0)
    # The operator was down for an hour: the first window after it covers only 2 minutes.
    decision = driver.step(3600, 0.0)
    assert decision.desired == 1, decision.reason
    assert driver.state.last_unknown_at is not None


def test_unobserved_time_never_wakes_a_pool_at_zero() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=0)
    driver.step(0, 0.0)
    assert driver.step(3600, 0.0).desired == 0


@pytest.mark.parametrize(
    "samples",
    [
        [],  # the query matched nothing
        [Sample(at(0).timestamp(), None)],  # latest sample NaN
        [Sample(at(0).timestamp() - 600, 0.0)],  # latest sample stale
        [Sample(float("nan"), 1.0)],
    ],
)
def test_unknown_samples_hold(samples: list[Sample]) -> None:
    state = PolicyState(last_request_at=at(-3600).timestamp(), observed_since=at(-7200).timestamp())
    decision = decide(
        spec(), Observation(samples=samples, current_replicas=2, ready_replicas=2), at(0), state
    )
    assert decision.desired == 2 and not decision.metrics_available


def test_missing_data_at_zero_stays_at_zero_but_wake_raises() -> None:
    unavailable = Observation(samples=None, current_replicas=0, ready_replicas=0)
    assert decide(spec(), unavailable, at(0), PolicyState()).desired == 0
    woken = Observation(
        samples=None, current_replicas=0, ready_replicas=0, wake_at=at(-1).timestamp()
    )
    assert decide(spec(), woken, at(0), PolicyState()).desired == 1


def test_samples_from_the_future_do_not_release() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=1)
    # A sample 10 minutes ahead of the operator's clock: counts as traffic now, not later idle.
    decision = driver.step(0, 2.0, sample_at=600)
    assert decision.desired == 1
    assert driver.state.last_request_at == at(0).timestamp()
    assert driver.advance(30, 0.0).desired == 1
    assert driver.advance(60, 0.0).desired == 0


def test_clock_going_backwards_does_not_scale_down() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=2)
    driver.step(1000, 5.0)
    # The clock jumps back an hour, with zero demand: replicas are held, not released.
    decision = driver.step(1000 - 3600, 0.0)
    assert decision.desired == 2
    assert "clock went back" in decision.reason
    # ... and the next evaluations in the past never count negative idle as idleness.
    assert driver.step(1000 - 3600 + 90, 0.0).desired == 2


def test_wake_scales_a_pool_at_zero_to_one_at_once() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=0), replicas=0)
    driver.step(0, 0.0)
    decision = driver.step(10, 0.0, wake=9.5)  # metrics do not show the held request yet
    assert decision.desired == 1, decision.reason
    assert driver.state.last_request_at == at(9.5).timestamp()


def test_stale_wake_does_not_keep_a_pool_up() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=0)
    driver.step(0, 0.0, wake=-5)
    assert driver.replicas == 1
    driver.advance(30, 0.0, wake=-5)
    assert driver.advance(60, 0.0, wake=-5).desired == 0


def test_state_round_trips_through_json_and_resumes_idle_timer() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=0)
    driver.step(0, 3.0)
    driver.advance(50, 0.0)
    # "Operator restart": the state goes through status.scalerState (JSON) and back.
    stored = json.loads(json.dumps(driver.state.to_dict()))
    restored = PolicyState.from_dict(stored)
    assert restored == driver.state
    decision = decide(driver.spec, observe(60, 0.0, 1), at(60), restored)
    assert decision.desired == 0, decision.reason  # idle timer resumed from t=0


def test_state_size_is_bounded() -> None:
    driver = Driver(spec(predictive={"enabled": True}), replicas=0)
    for k in range(2 * MAX_PERIODS):
        driver.step(k * 100, 2.0)
        driver.step(k * 100 + 50, 0.0)
    state = driver.state
    for i in range(10 * MAX_RECOMMENDATIONS):
        state.add_recommendation(float(i), 10 * MAX_RECOMMENDATIONS - i, 1e9)
    assert len(state.periods) == MAX_PERIODS
    assert len(state.recommendations) == MAX_RECOMMENDATIONS
    assert len(json.dumps(state.to_dict())) < 16384


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "garbage",
        {"version": 99},
        {"version": 1, "gaps": [600.0], "lastRequestAt": 5.0},  # the old layout: relearn
        {"version": 2, "periods": "x", "lastRequestAt": "y"},
    ],
)
def test_malformed_state_starts_afresh(stored: object) -> None:
    state = PolicyState.from_dict(stored)
    assert state.last_request_at is None and state.periods == []


def test_requests_per_second_target() -> None:
    driver = Driver(spec(target={"type": "RequestsPerSecond", "value": 10}), replicas=1)
    assert driver.step(0, 35.0).desired == 4


def periodic_run(period: int, cost: float = 300, periods: int = 6) -> dict[int, Decision]:
    """One-request bursts every `period` s; the decisions of the last period by offset."""
    scaling = spec(
        scaleToZeroAfterSeconds=30, predictive={"enabled": True, "coldStartCostSeconds": cost}
    )
    driver = Driver(scaling, replicas=0)
    last: dict[int, Decision] = {}
    for k in range(periods):
        for offset in range(0, period, int(INTERVAL)):
            decision = driver.step(k * period + offset, 0.5 if offset == 0 else 0.0)
            if k == periods - 1:
                last[offset] = decision
    return last


def test_predictive_releases_at_once_and_prewarms_one_cold_start_before_the_next_request() -> None:
    last = periodic_run(600)
    # Released at the first idle evaluation (the next request is 600 s away: holding costs
    # more than the pre-warm), back one cold start (30 s) + the lead (11 s) before 600 s.
    assert [last[o].desired for o in range(10, 560, 10)] == [0] * 55
    assert [last[o].desired for o in range(560, 600, 10)] == [1] * 4
    assert "after last burst: pre-warm 588-626s" in last[560].reason
    assert last[560].effective_floor == 1


def test_prediction_needs_history() -> None:
    last = periodic_run(600, periods=2)  # one finished busy period: not enough
    assert all(last[o].desired == 0 for o in range(40, 600, 10))
    assert "prediction learning (1 busy periods)" in last[100].reason


def test_zero_cost_never_prewarms_and_a_high_cost_keeps_warm() -> None:
    def warm_seconds(cost: float) -> int:
        scaling = spec(
            scaleToZeroAfterSeconds=30,
            predictive={"enabled": True, "coldStartCostSeconds": cost},
        )
        state = PolicyState()
        start = at(0).timestamp() - 20 * 1000
        for k, gap in enumerate((100, 250, 400, 700, 1100, 1600) * 2):
            state.periods.append(Period(start + k * 1000, gap, 1, 0))
        state.last_request_at = state.observed_since = at(0).timestamp()
        return sum(
            decide(scaling, observe(t, 0.0, 1), at(t), state).desired for t in range(10, 2000, 10)
        )

    # Spread-out gaps: covering them costs more the more of them it covers.
    assert warm_seconds(0) == 0
    assert warm_seconds(1e5) >= warm_seconds(3000) > warm_seconds(300)


def test_a_stray_request_does_not_move_the_burst_anchor() -> None:
    """Bursts every 900 s (several requests), a stray single request 400 s after each: the
    pool is still pre-warmed before the next burst, counted from the burst, not the stray."""
    scaling = spec(scaleToZeroAfterSeconds=30, predictive={"enabled": True})
    driver = Driver(scaling, replicas=0)
    decisions: dict[int, Decision] = {}
    for k in range(16):  # the first bursts start cold; strays look alike until learned
        for offset in range(0, 900, int(INTERVAL)):
            demand = 6.0 if offset < 30 else 0.5 if offset == 400 else 0.0
            ready = 0 if driver.replicas == 0 else None
            decisions[offset] = driver.step(k * 900 + offset, demand, ready=ready)
    assert decisions[880].desired == 1, decisions[880].reason
    assert "after last burst: pre-warm" in decisions[880].reason
    # Anchored on the last burst (15 x 900 s), not on the stray 400 s after it.
    assert decisions[880].state.burst_plan_at == at(15 * 900).timestamp()


def test_deprecated_coverage_maps_to_a_cold_start_cost() -> None:
    assert cold_start_cost(PredictiveSpec(), 30) == 300
    assert cold_start_cost(PredictiveSpec(coverage=0.95), 30) == pytest.approx(570)
    assert cold_start_cost(PredictiveSpec(coverage=1.0), 30) == 3000
    assert cold_start_cost(PredictiveSpec(coverage=0.5, coldStartCostSeconds=42), 30) == 42


def test_schedule_raises_floor_in_its_window() -> None:
    scaling = spec(
        warmFloor=0,
        scaleToZeroAfterSeconds=60,
        schedules=[
            {
                "cron": "0 8 * * 1-5",
                "timezone": "Europe/Berlin",
                "warmFloor": 3,
                "durationMinutes": 60,
            }
        ],
    )
    # 2026-06-01 is a Monday; 08:30 Berlin (CEST) = 06:30 UTC.
    inside = datetime(2026, 6, 1, 6, 30, tzinfo=UTC)
    decision = decide(scaling, observe(0, 0.0, 0), inside, PolicyState())
    assert decision.desired == 3 and decision.effective_floor == 3
    assert "schedules[0]" in decision.reason
    outside = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # 09:00 Berlin: window [08:00, 09:00)
    assert decide(scaling, observe(0, 0.0, 0), outside, PolicyState()).effective_floor == 0


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(spec(), observe(0, 0.0, 0), datetime(2026, 1, 1), PolicyState())


def test_backlog_held_during_a_cold_start_is_not_held_by_the_window() -> None:
    driver = Driver(spec(scaleDownDelaySeconds=300), replicas=1)
    # Nothing ready yet: 40 requests wait for the cold start; scale up for them at once...
    assert driver.step(0, 40.0, ready=0).desired == 8
    assert driver.step(10, 40.0, ready=0).desired == 8
    # ... but once replicas are warm and the backlog drained, do not keep 8 for 300 s.
    driver.step(20, 6.0, ready=8)  # the backlog drains (one interval of grace)
    assert driver.step(30, 2.0, ready=8).desired == 1
    # Warm-time recommendations are held as usual.
    driver.step(40, 12.0, ready=8)
    assert driver.step(50, 2.0, ready=8).desired == 3


def test_next_change_points_at_the_idle_timeout_and_prewarm() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=1)
    decision = driver.step(0, 1.0)
    assert decision.next_change_at == at(60).timestamp()
    last = periodic_run(600)
    assert last[40].next_change_at is not None
    # The burst plan's window starts at 587.5 s: its replica one cold start (30 s) earlier.
    assert last[40].next_change_at - last[0].state.last_request_at == 557.5  # type: ignore[operator]


def test_large_clock_correction_is_taken_after_one_held_round() -> None:
    driver = Driver(spec(scaleToZeroAfterSeconds=60), replicas=2)
    driver.step(7200, 5.0)
    # The clock is corrected two hours back: this round holds...
    assert driver.step(0, 0.0).desired == 2
    # ... then time counts on the new clock (not frozen until t=7200 comes round): the
    # stabilization window (120 s) and the idle timeout (60 s) run from the correction.
    assert driver.advance(110, 0.0).desired == 2
    assert driver.advance(120, 0.0).desired == 0
