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
6. The predictive floor keeps or brings back one replica inside the learned warm window
   (`warmpool.scaling.histogram`).
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

from warmpool.api.spec import ScalingSpec
from warmpool.scaling.histogram import WarmWindow, warm_window
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

    if observation.wake_at is not None:
        # First: the wake is the precise start of the traffic the samples show a bit later.
        _note_traffic(state, min(observation.wake_at, now_s), interval)
    demand, unknown_reason = _current_demand(observation, now_s, interval, state, previous_eval)

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

    idle_from = max(
        t
        for t in (state.last_request_at, state.last_unknown_at, state.observed_since)
        if t is not None
    )
    idle = max(0.0, now_s - idle_from)
    timeout = spec.scale_to_zero_after_seconds

    window = _prediction(spec, state, observation, interval)
    since_request = (
        round(max(0.0, now_s - state.last_request_at), 3)
        if state.last_request_at is not None
        else None
    )
    predictive_floor = 0
    if window is not None and since_request is not None and window.wants_replica(since_request):
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
    if window is not None:
        state_word = "wants a replica" if predictive_floor else "idle"
        parts.append(f"prediction {state_word} ({window.describe()})")
    elif spec.predictive.enabled and timeout is not None:
        parts.append(f"prediction learning ({len(state.gaps)} idle gaps)")
    if effective_floor == 0 and above_one <= 1:
        parts.append(idle_reason)
    reason = f"desired {desired}: " + "; ".join(parts + reasons)

    next_change = _next_change(spec, state, window, idle_from, now_s, desired)
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
            _note_traffic(state, sample.at, interval)
    return max(0.0, latest.value), ""


def _note_traffic(state: PolicyState, at: float, interval: float) -> None:
    """Traffic seen at `at`: learn the idle gap it ends, move the last-request time."""
    last = state.last_request_at
    if last is not None and at <= last:
        return
    if last is not None and (state.last_unknown_at is None or state.last_unknown_at < last):
        gap = at - last
        # A gap of about one sample interval is continuous traffic, not idleness; gaps the idle
        # timer covers never release the pool, so they say nothing about pre-warming.
        if gap > GAP_THRESHOLD_INTERVALS * interval:
            state.add_gap(gap)
    state.last_request_at = at


def _prediction(
    spec: ScalingSpec, state: PolicyState, observation: Observation, interval: float
) -> WarmWindow | None:
    timeout = spec.scale_to_zero_after_seconds
    if not spec.predictive.enabled or timeout is None:
        return None
    learned = [gap for gap in state.gaps if gap > timeout]
    return warm_window(
        learned,
        spec.predictive.coverage,
        max(observation.cold_start_seconds, 0.0),
        interval,
        float(timeout),
    )


def _next_change(
    spec: ScalingSpec,
    state: PolicyState,
    window: WarmWindow | None,
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
    if window is not None and state.last_request_at is not None:
        candidates.append(state.last_request_at + window.start_seconds)
        candidates.append(state.last_request_at + window.end_seconds)
    if desired >= 2 and state.recommendations:
        candidates.append(state.recommendations[0][0] + spec.scale_down_delay_seconds)
    # A boundary within a millisecond of now was decided now (float noise of epoch seconds).
    future = [t for t in candidates if t > now_s + 1e-3]
    return min(future) if future else None
