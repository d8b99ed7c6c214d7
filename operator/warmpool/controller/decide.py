"""The replicas decision as the operator applies it (pure).

Who owns `replicas` comes first: while `spec.replicas` is set (kubectl scale, HPA or KEDA through
the scale subresource) it is the answer and the built-in scaler stands aside (owner
`external`). Otherwise the built-in scaler decides (owner `warmpool`); a wake request from the
activator lifts a pool at zero to at least one replica at once and counts as traffic.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from warmpool.api.resource import WAKE_ANNOTATION, InferencePool
from warmpool.api.status import InferencePoolStatus, ScalingStatus
from warmpool.controller.coldstart import parse_time
from warmpool.controller.status import ConditionValue, ScalingOutcome

#: How long a wake request keeps a pool without scale-to-zero settings at >= 1 replica.
DEFAULT_WAKE_HOLD_SECONDS = 300


def wake_requested_at(pool: InferencePool) -> datetime | None:
    return parse_time(pool.metadata.annotations.get(WAKE_ANNOTATION))


def last_request_time(pool: InferencePool, previous: InferencePoolStatus) -> datetime | None:
    """The later of the last traffic seen and the last wake request."""
    times = [t for t in (previous.scaling.last_request_time, wake_requested_at(pool)) if t]
    return max(times) if times else None


def wake_hold(pool: InferencePool, now: datetime) -> bool:
    """Whether a recent wake request holds the pool at >= 1 replica."""
    woke = wake_requested_at(pool)
    if woke is None:
        return False
    hold = pool.spec.scaling.scale_to_zero_after_seconds
    seconds = DEFAULT_WAKE_HOLD_SECONDS if hold is None else max(hold, 1)
    return now - woke < timedelta(seconds=seconds)


def external_outcome(
    pool: InferencePool, previous: InferencePoolStatus, now: datetime
) -> ScalingOutcome:
    replicas = pool.spec.replicas or 0
    return _outcome(
        pool,
        previous,
        now,
        desired=replicas,
        owner="external",
        reason=f"spec.replicas={replicas} is set (scale subresource); "
        "the built-in scaler stands aside",
        floor=previous.scaling.effective_warm_floor,
        metrics=ConditionValue("Unknown", "ExternalOwner", "replicas are set externally"),
    )


def floor_outcome(
    pool: InferencePool, previous: InferencePoolStatus, now: datetime
) -> ScalingOutcome:
    """The decision without the traffic-driven scaler: the warm floor, lifted by a wake."""
    floor = pool.spec.scaling.warm_floor
    desired, reason = floor, f"warm floor {floor}"
    if desired == 0 and wake_hold(pool, now):
        desired, reason = 1, "wake requested by the activator"
    return _outcome(
        pool,
        previous,
        now,
        desired=desired,
        owner="warmpool",
        reason=reason,
        floor=floor,
        metrics=ConditionValue("Unknown", "NotEvaluated", "traffic-driven scaling not evaluated"),
    )


def _outcome(
    pool: InferencePool,
    previous: InferencePoolStatus,
    now: datetime,
    *,
    desired: int,
    owner: str,
    reason: str,
    floor: int,
    metrics: ConditionValue,
) -> ScalingOutcome:
    changed = desired != previous.desired_replicas
    scaling = ScalingStatus(
        owner="external" if owner == "external" else "warmpool",
        reason=reason[:1024],
        effective_warm_floor=floor,
        observed_demand=previous.scaling.observed_demand,
        last_scale_time=now if changed else previous.scaling.last_scale_time,
        last_request_time=last_request_time(pool, previous),
    )
    return ScalingOutcome(desired_replicas=desired, scaling=scaling, metrics=metrics)


def apply_wake(outcome: ScalingOutcome, pool: InferencePool, now: datetime) -> ScalingOutcome:
    """A wake request lifts a built-in decision of 0 to 1 (never an external one)."""
    if outcome.scaling.owner != "warmpool" or outcome.desired_replicas >= 1:
        return outcome
    if not wake_hold(pool, now):
        return outcome
    scaling = outcome.scaling.model_copy(
        update={"reason": "wake requested by the activator", "last_scale_time": now}
    )
    return ScalingOutcome(
        desired_replicas=1,
        scaling=scaling,
        metrics=outcome.metrics,
        scaler_state=outcome.scaler_state,
    )
