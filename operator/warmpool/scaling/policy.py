"""The scaling policy: traffic, floors and idle history in, desired replicas out. PURE.

No I/O, no clock, no clients: the operator (through `warmpool.scaling.service`) and the
benchmark simulator (`benchmarks/autoscale.py`) call the same `decide()` with the same inputs.

Rules, in order of precedence (docs/scaling.md has the full story):

1. Missing data (metrics unavailable, no sample, the latest sample missing or stale): hold the
   current replicas (raised to the floor; a wake raises a pool at zero to one). Never scale
   down, never to zero, on data we do not have.
2. Time going backwards (now earlier than the previous evaluation): no scale-down this round;
   after a jump back of more than 10 minutes the new clock is taken (stored times move back
   to now, so idle time restarts) instead of freezing scale-down until the old time returns.
   Samples from the future count as traffic *now*; they can only keep replicas, never release.
3. Effective floor = max(warmFloor, active schedule floors, predictive floor).
4. Traffic: `ceil(demand / target.value)`; scale-up at once (no delay), scale-down through the
   stabilization window (highest recommendation within scaleDownDelaySeconds wins) for replicas
   above one.
5. The last replica (when the effective floor is 0) goes only after `scaleToZeroAfterSeconds`
   of idle time (idle >= the timeout: exactly equal releases); unset never goes to zero.
6. The predictive floor keeps or brings back one replica inside a warm window of the cheapest
   plan for the pool's history (`warmpool.scaling.cost`, samples from
   `warmpool.scaling.history`): one plan after the last request, one anchored on the last
   burst's start, each computed once per idle period under the cold-start cost
   `predictive.coldStartCostSeconds`.
7. A wake request (the activator's annotation) counts as a request at its time, and a pool at
   zero woken since the previous evaluation, or within the wake hold (scaleToZeroAfterSeconds,
   else `DEFAULT_WAKE_HOLD_SECONDS`), gets one replica at once: the hold covers an evaluation
   that ran between the activator's stamp and the annotation's arrival, and a Deployment whose
   new replicas the watch has not shown yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from warmpool.api.spec import PredictiveSpec, ScalingSpec
from warmpool.scaling.cost import Plan, Window, plan
from warmpool.scaling.history import (
    Period,
    add_period,
    burst_arrivals,
    burst_threshold,
    gap_arrivals,
    size,
)
from warmpool.scaling.schedule import active_floor, next_boundary
from warmpool.scaling.state import PolicyState

#: Default cold-start estimate when the pool has not reported one (status.lastColdStart).
DEFAULT_COLD_START_SECONDS = 30.0
#: Default evaluation interval of the operator's timer.
DEFAULT_INTERVAL_SECONDS = 10.0
#: Two samples of traffic this many intervals apart or closer are one busy period: the gap
#: between them is sampling granularity, not idleness.
GAP_THRESHOLD_INTERVALS = 1.5
#: A clock that goes back further than this is taken as corrected, not as skew.
CLOCK_RESET_SECONDS = 600.0
#: How long a wake request keeps a pool without scaleToZeroAfterSeconds at >= 1 replica.
DEFAULT_WAKE_HOLD_SECONDS = 300
#: Demand below this is no traffic (floating-point noise of rate() over idle counters).
_EPSILON = 1e-9
#: GPU-seconds one request waiting on a cold start is worth when nothing else is set.
DEFAULT_COLD_START_COST_SECONDS = 300.0
#: Busy periods needed before planning: two agreeing ones are the smallest evidence of a
#: pattern, and a wrong plan costs at most one extra warm window.
MIN_PERIODS = 2
#: Cap of the cost the deprecated `coverage` maps to (coverage 1), in cold starts.
_COVERAGE_ONE_COLD_STARTS = 100.0


@dataclass(frozen=True)
class Sample:
    """Demand at a time, in the target's unit; `value` None means unknown at that time."""

    at: float
    value: float | None


@dataclass(frozen=True)
class Observation:
    """What the caller saw this round."""

    #: Demand samples (any order); None when the metrics source is unavailable.
    samples: Sequence[Sample] | None
    current_replicas: int
    ready_replicas: int
    #: Why the samples are None (query error, timeout, Prometheus down).
    unavailable_reason: str = ""
    #: Latest wake request from the activator (epoch seconds), if any.
    wake_at: float | None = None
    #: Expected time from a new replica to a warm one (the pool's last measured cold start).
    cold_start_seconds: float = DEFAULT_COLD_START_SECONDS
    #: Time between evaluations; a sample newer than 3 intervals (>= 60 s) counts as current.
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS


@dataclass(frozen=True)
class Decision:
    """The policy's answer."""

    desired: int
    reason: str
    effective_floor: int
    metrics_available: bool
    observed_demand: float | None
    state: PolicyState
    #: Earliest time (epoch s) the decision could change without new traffic; None = only on
    #: new traffic or a schedule. The operator may requeue then; the simulator skips to it.
    next_change_at: float | None = None
    #: False when spec.replicas is set: an external owner scales the pool, the policy stands
    #: aside (`warmpool.scaling.service.evaluate` answers without calling `decide`).
    owned: bool = True


def decide(
    spec: ScalingSpec, observation: Observation, now: datetime, state: PolicyState
) -> Decision:
    """Decide the pool's replicas; never raises for odd inputs, never mutates `state`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_s = now.timestamp()
    state = state.copy()
    interval = max(observation.interval_seconds, 1.0)
    reasons: list[str] = []

    previous_eval = state.last_eval_at
    backwards = previous_eval is not None and now_s < previous_eval
    woken = _woken(observation.wake_at, state.last_eval_at, now_s, spec.scale_to_zero_after_seconds)
    if previous_eval is not None and backwards:
        reasons.append(f"clock went back {previous_eval - now_s:.0f}s: no scale-down")
        if previous_eval - now_s > CLOCK_RESET_SECONDS:
            # A large jump back: the stored times came from a wrong clock. Take the new clock
            # from here on (every stored time moves back to now: idle restarts, safe), so
            # scale-down is not frozen until the old clock's time comes round again.
            _clamp_times(state, now_s)
            previous_eval = None
    if state.observed_since is None:
        state.observed_since = now_s
    if not backwards or previous_eval is None:
        state.last_eval_at = now_s

    schedule_floor, schedule_reason = (
        active_floor(spec.schedules, now) if spec.schedules else (0, "")
    )
    base_floor = max(spec.warm_floor, schedule_floor)
    if schedule_reason:
        reasons.append(schedule_reason)

    cold_start = max(observation.cold_start_seconds, 0.0)
    if observation.wake_at is not None:
        # First: the wake is the precise start of the traffic the samples show a bit later.
        _note_traffic(state, min(observation.wake_at, now_s), interval, cold_start, wake=True)
    demand, unknown_reason = _current_demand(
        observation, now_s, interval, state, previous_eval, cold_start
    )

    if demand is None:
        # Missing data: hold. The idle timer restarts after the outage (unknown is not idle).
        state.last_unknown_at = now_s
        desired = max(observation.current_replicas, base_floor, 1 if woken else 0)
        desired = min(desired, spec.max_replicas)
        reasons.insert(0, f"metrics unavailable ({unknown_reason}): holding {desired}")
        return Decision(desired, "; ".join(reasons), base_floor, False, None, state)

    target = spec.target.value
    now_recommendation = min(math.ceil(demand / target - _EPSILON), spec.max_replicas)
    now_recommendation = max(now_recommendation, 0)
    delay = spec.scale_down_delay_seconds
    if observation.ready_replicas == 0:
        state.last_cold_at = now_s
    if state.last_cold_at is not None and 0 <= now_s - state.last_cold_at <= 2 * interval:
        # Demand while nothing is warm (and one interval after) is mostly the backlog held for
        # the cold start: scale up for it at once, but do not hold those replicas through the
        # stabilization window; the backlog drains as soon as replicas are warm.
        stabilized = max(now_recommendation, state.window_max(now_s, delay))
    else:
        stabilized = state.add_recommendation(now_s, now_recommendation, delay)
    active = demand > _EPSILON
    if state.busy_start is not None and state.busy_cold is None:
        state.busy_cold = observation.ready_replicas == 0
    cold_now = state.last_cold_at is not None and 0 <= now_s - state.last_cold_at <= 2 * interval
    if active and state.busy_start is not None and not cold_now and previous_eval is not None:
        # The traffic a busy period carries, counted while warm (held requests are not
        # traffic served; they already count in its weight).
        state.busy_mass += demand * min(max(now_s - previous_eval, 0.0), interval)

    idle_from = max(
        t
        for t in (state.last_request_at, state.last_unknown_at, state.observed_since)
        if t is not None
    )
    idle = max(0.0, now_s - idle_from)
    timeout = spec.scale_to_zero_after_seconds

    plans = _plans(spec, state, cold_start, interval, active or woken)
    hold = next((p.hold_seconds() for kind, _, p in plans if kind == "request"), None)
    predictive_floor = 0
    if any(p.wants_replica(round(now_s - at, 3), cold_start) for _, at, p in plans):
        predictive_floor = 1
    effective_floor = max(base_floor, predictive_floor)

    if timeout is None:
        keep_one, idle_reason = True, "scaleToZeroAfterSeconds unset: never to zero"
    elif active:
        keep_one, idle_reason = True, f"demand {demand:.3g}"
    elif woken:
        keep_one, idle_reason = True, "woken by the activator"
    elif observation.current_replicas == 0:
        # The idle timer keeps the last replica; it never brings one back (unknown time
        # restarts the timer, and that must not wake a pool at zero).
        keep_one, idle_reason = False, "at zero and idle"
    elif hold is not None:
        # A learned plan decides how long the last replica stays (it may release before the
        # idle timer when the next request is far, or hold longer when it is near).
        keep_one = idle < hold
        idle_reason = f"idle {idle:.0f}s {'<' if keep_one else '>='} planned hold {hold:.0f}s"
    elif idle < timeout:
        keep_one, idle_reason = True, f"idle {idle:.0f}s < scaleToZeroAfterSeconds {timeout}s"
    else:
        keep_one, idle_reason = False, f"idle {idle:.0f}s >= scaleToZeroAfterSeconds {timeout}s"

    above_one = stabilized if stabilized >= 2 else now_recommendation
    desired = max(effective_floor, 1 if keep_one else 0, above_one)
    if backwards:
        desired = max(desired, observation.current_replicas)
    desired = min(desired, spec.max_replicas)

    parts = [f"demand {demand:.3g}/{target:g} per replica -> {now_recommendation}"]
    if stabilized > now_recommendation and stabilized >= 2:
        parts.append(f"held at {stabilized} by the {delay}s stabilization window")
    if base_floor:
        parts.append(f"warm floor {base_floor}")
    if plans:
        state_word = "wants a replica" if predictive_floor else "idle"
        lam = cold_start_cost(spec.predictive, cold_start)
        described = "; ".join(f"after last {kind}: {p.describe()}" for kind, _, p in plans)
        parts.append(f"prediction {state_word} at {lam:g} GPU-s per cold request ({described})")
    elif spec.predictive.enabled and timeout is not None and len(state.periods) < MIN_PERIODS:
        parts.append(f"prediction learning ({len(state.periods)} busy periods)")
    if effective_floor == 0 and above_one <= 1:
        parts.append(idle_reason)
    reason = f"desired {desired}: " + "; ".join(parts + reasons)

    next_change = _next_change(spec, state, plans, cold_start, idle_from, now_s, desired)
    return Decision(
        desired=desired,
        reason=reason[:1024],
        effective_floor=effective_floor,
        metrics_available=True,
        observed_demand=demand,
        state=state,
        next_change_at=next_change,
    )


def _clamp_times(state: PolicyState, now_s: float) -> None:
    """Move every stored time later than `now_s` back to it."""
    for name in ("last_request_at", "last_eval_at", "observed_since", "last_unknown_at"):
        value = getattr(state, name)
        if value is not None and value > now_s:
            setattr(state, name, now_s)
    state.last_cold_at = None
    state.recommendations = [(min(t, now_s), r) for t, r in state.recommendations]


def _woken(
    wake_at: float | None, last_eval_at: float | None, now_s: float, hold: int | None
) -> bool:
    """A wake newer than the previous evaluation or within the wake hold (a future-dated one
    counts as now)."""
    if wake_at is None:
        return False
    hold_seconds = DEFAULT_WAKE_HOLD_SECONDS if hold is None else max(hold, 1)
    fresh = last_eval_at is None or min(wake_at, now_s) > last_eval_at or wake_at > now_s
    return fresh or now_s - wake_at < hold_seconds


def _current_demand(
    observation: Observation,
    now_s: float,
    interval: float,
    state: PolicyState,
    previous_eval: float | None,
    cold_start: float,
) -> tuple[float | None, str]:
    """Demand now, learning idle gaps from the samples; None (with why) when unknown."""
    if observation.samples is None:
        return None, observation.unavailable_reason or "no metrics source"
    ordered = sorted(
        (Sample(min(s.at, now_s), s.value) for s in observation.samples if math.isfinite(s.at)),
        key=lambda s: s.at,
    )
    if not ordered:
        return None, "no samples"
    latest = ordered[-1]
    stale_after = max(3 * interval, 60.0)
    if latest.value is None or not math.isfinite(latest.value):
        return None, "latest sample missing"
    if now_s - latest.at > stale_after:
        return None, f"latest sample {now_s - latest.at:.0f}s old"
    if previous_eval is not None and ordered[0].at - previous_eval > 2 * interval + 1:
        # Time nobody observed (the operator was down longer than the lookback window):
        # unknown, like an outage. Idle time restarts; no gap is learned across it.
        state.last_unknown_at = max(state.last_unknown_at or 0.0, ordered[0].at - interval)
    for sample in ordered:
        if sample.value is None or not math.isfinite(sample.value):
            state.last_unknown_at = max(state.last_unknown_at or sample.at, sample.at)
        elif sample.value > _EPSILON:
            _note_traffic(state, sample.at, interval, cold_start)
            _note_weight(state, sample, interval, cold_start)
    return max(0.0, latest.value), ""


def _note_weight(state: PolicyState, sample: Sample, interval: float, cold_start: float) -> None:
    """Demand in a busy period's first cold start is the requests it put at risk: for a pool
    at zero, the activator's held count (the default queries add it to the demand)."""
    start = state.busy_start
    if start is None or sample.value is None or not start <= sample.at <= start + cold_start:
        return
    # Up to two intervals after the cold start: the samples that show it come that late.
    if sample.at <= start + cold_start + 2 * interval:
        state.busy_weight = max(state.busy_weight, float(math.ceil(sample.value - _EPSILON)))


def _note_traffic(
    state: PolicyState, at: float, interval: float, cold_start: float, *, wake: bool = False
) -> None:
    """Traffic seen at `at`: end the busy period before it when the pause was longer than
    sampling granularity, start a new one, move the last-request time.

    Periods are timed by the samples that show them, a wake's period by its first sample: a
    wake is exact but only cold starts have one, while a warm pool's traffic shows a few
    seconds late; timing both the same way keeps burst intervals unbiased."""
    if not wake and state.busy_from_wake and state.busy_start is not None:
        if at >= state.busy_start:
            state.busy_gap += at - state.busy_start if state.busy_gap else 0.0
            state.busy_start = at
        state.busy_from_wake = False
    last = state.last_request_at
    if last is not None and at <= last:
        return
    # Just after a cold start the held requests have gone to the new replica, whose rate()
    # needs two scrapes of its series to show them: a pause then is the metrics', not the
    # traffic's, and must not split the period (its weight is in the first part, its traffic
    # in the second).
    after_cold = (
        last is not None
        and state.last_cold_at is not None
        and state.last_cold_at >= last
        and at - last <= (GAP_THRESHOLD_INTERVALS + 3) * interval
    )
    if last is None or (at - last > GAP_THRESHOLD_INTERVALS * interval and not after_cold):
        # A pause of about one sample interval is continuous traffic, not idleness.
        _finish_period(state, cold_start)
        known = last is not None and (state.last_unknown_at is None or state.last_unknown_at < last)
        state.busy_start = at
        # A gap spanning unknown time is not learned (0 = unknown).
        state.busy_gap = at - last if known and last is not None else 0.0
        state.busy_weight, state.busy_mass, state.busy_cold = 1.0, 0.0, None
        state.busy_from_wake = wake
    state.last_request_at = at


def _finish_period(state: PolicyState, cold_start: float) -> None:
    """Move the busy period in progress into the history (a burst also moves the anchor)."""
    start, last = state.busy_start, state.last_request_at
    if start is None or last is None:
        return
    burst = _is_burst(state, cold_start)
    interval = start - state.last_burst_at if burst and state.last_burst_at is not None else 0.0
    cold = state.busy_cold is not False
    period = Period(start, state.busy_gap, state.busy_weight, state.busy_mass, interval, cold)
    state.periods = add_period(state.periods, period)
    if burst:
        state.last_burst_at = start
    state.busy_start = None


def _is_burst(state: PolicyState, cold_start: float) -> bool:
    """Whether the busy period in progress carries enough traffic to anchor a plan."""
    if state.busy_start is None or state.last_request_at is None:
        return False
    return size(state.busy_weight, state.busy_mass) >= burst_threshold(state.periods)


def cold_start_cost(predictive: PredictiveSpec, cold_start: float) -> float:
    """λ in GPU-seconds: set, mapped from the deprecated coverage, or the default."""
    if predictive.cold_start_cost_seconds is not None:
        return predictive.cold_start_cost_seconds
    if predictive.coverage is not None:
        c = predictive.coverage
        odds = c / (1 - c) if c < 1 else _COVERAGE_ONE_COLD_STARTS
        return max(cold_start, 1.0) * min(odds, _COVERAGE_ONE_COLD_STARTS)
    return DEFAULT_COLD_START_COST_SECONDS


def _plans(
    spec: ScalingSpec, state: PolicyState, cold_start: float, interval: float, busy: bool
) -> list[tuple[str, float, Plan]]:
    """The warm plans in force ("request", "burst"), each with its reference time (computed
    once per idle period, kept in the state; none while learning or with prediction off)."""
    timeout = spec.scale_to_zero_after_seconds
    last = state.last_request_at
    if not spec.predictive.enabled or timeout is None or last is None:
        return []
    if len(state.periods) < MIN_PERIODS:
        return []
    lam = cold_start_cost(spec.predictive, cold_start)
    common = {
        "cold_start_cost": lam,
        "cold_start_seconds": cold_start,
        "lead_seconds": interval + 1.0,
        # The metrics show an arrival at a warm replica up to a scrape, a rate window's
        # second sample and an evaluation later: keep the window open that long.
        "pad_seconds": 2 * interval + 5.0,
    }
    if busy or state.request_plan_at == last:
        # Plans are made once per idle period (at its first evaluation) and kept.
        return _stored_plans(state, last)
    # The plan anchored on the last burst first: bursts it is likely to catch need no hold.
    anchor = state.busy_start if _is_burst(state, cold_start) else state.last_burst_at
    burst_miss = 1.0
    state.burst_plan_at, state.burst_plan = None, []
    if anchor is not None:
        elapsed = last - anchor
        samples = burst_arrivals(state.periods, anchor, elapsed)
        # A window may start now (the replica is still up at the start of an idle period).
        made = plan(samples, keep_alive=False, earliest_prewarm=elapsed, **common)
        state.burst_plan_at, state.burst_plan = anchor, _store(made)
        at_risk = sum(a.weight * a.requests for a in samples) / max(
            sum(a.weight for a in samples), 1e-9
        )
        if made is not None and at_risk > 0:
            burst_miss = min(1.0, made.expected_cold_requests / at_risk)
    # After a cold start, held until the metrics can confirm idleness: a new replica's first
    # rate() needs two scrapes of its series, so its traffic shows late (never longer than the
    # idle timer itself). A replica that was warm shows its traffic at once.
    was_cold = state.last_cold_at is not None and last - state.last_cold_at <= 3 * interval
    made = plan(
        gap_arrivals(state.periods, last, burst_miss, cold_start + 2 * interval),
        keep_alive=True,
        min_hold=min(float(timeout), 2 * interval) if was_cold else 0.0,
        **common,
    )
    state.request_plan_at, state.request_plan = last, _store(made)
    return _stored_plans(state, last)


def _stored_plans(state: PolicyState, last: float) -> list[tuple[str, float, Plan]]:
    out: list[tuple[str, float, Plan]] = []
    if state.request_plan_at == last:
        out.append(("request", last, _load(state.request_plan)))
    if state.burst_plan_at is not None and state.burst_plan:
        out.append(("burst", state.burst_plan_at, _load(state.burst_plan)))
    return out


def _store(made: Plan | None) -> list[list[float]]:
    if made is None:
        return []
    return [[w.start, w.end, 1.0 if w.prewarm else 0.0] for w in made.windows]


def _load(stored: list[list[float]]) -> Plan:
    windows = tuple(Window(s, e, bool(p)) for s, e, p in stored)
    return Plan(windows, 0.0, 0.0, 0)


def _next_change(
    spec: ScalingSpec,
    state: PolicyState,
    plans: Sequence[tuple[str, float, Plan]],
    cold_start: float,
    idle_from: float,
    now_s: float,
    desired: int,
) -> float | None:
    """Earliest future time the decision may change with no new traffic (None: never)."""
    candidates: list[float] = []
    if spec.schedules:
        boundary = next_boundary(spec.schedules, datetime.fromtimestamp(now_s, UTC))
        if boundary is not None:
            candidates.append(boundary.timestamp())
    if spec.scale_to_zero_after_seconds is not None:
        candidates.append(idle_from + spec.scale_to_zero_after_seconds)
    for _, at, made in plans:
        candidates.extend(at + offset for offset in made.boundaries(cold_start))
    if desired >= 2 and state.recommendations:
        candidates.append(state.recommendations[0][0] + spec.scale_down_delay_seconds)
    # A boundary within a millisecond of now was decided now (float noise of epoch seconds).
    future = [t for t in candidates if t > now_s + 1e-3]
    return min(future) if future else None
