"""One scaling evaluation of a pool: read demand, run the pure policy, return the decision.

No kopf here: the operator's timer calls `evaluate()` and writes `replicas`,
`status.scaling`, `status.desiredReplicas`, `status.scalerState` and the MetricsAvailable
condition from the returned `ScalingDecision`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from warmpool.api.resource import WAKE_ANNOTATION, InferencePool
from warmpool.scaling.policy import (
    DEFAULT_COLD_START_SECONDS,
    DEFAULT_INTERVAL_SECONDS,
    Observation,
    decide,
)
from warmpool.scaling.prometheus import DemandWindow, TrafficReader
from warmpool.scaling.state import PolicyState


@dataclass(frozen=True)
class ScalingDecision:
    """What the operator writes back after one evaluation."""

    desired: int
    #: Human-readable why (status.scaling.reason, <= 1024 characters).
    reason: str
    #: Warm floor in force now, schedules and prediction included.
    effective_floor: int
    #: False when demand could not be read: set MetricsAvailable=False with `reason`.
    metrics_available: bool
    observed_demand: float | None
    #: The JSON dict to store in status.scalerState.
    new_state: dict[str, Any]
    #: Last traffic seen (status.scaling.lastRequestTime).
    last_request_time: datetime | None = None
    #: Earliest time the decision may change without new traffic (requeue hint).
    next_change_at: datetime | None = None
    #: False when spec.replicas is set: an external owner scales the pool.
    owned: bool = True


def wake_time(pool: InferencePool) -> datetime | None:
    """The activator's wake request (annotation `warmpool.dev/wake-requested-at`), if valid."""
    raw = pool.metadata.annotations.get(WAKE_ANNOTATION)
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def evaluate(
    pool: InferencePool,
    now: datetime,
    reader: TrafficReader | None,
    current_replicas: int,
    ready_replicas: int,
    *,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
) -> ScalingDecision:
    """Decide the pool's replicas now. Never raises for metrics trouble (see the reason)."""
    spec = pool.spec.scaling
    state = PolicyState.from_dict(pool.status.scaler_state)
    if pool.spec.replicas is not None:
        return ScalingDecision(
            desired=pool.spec.replicas,
            reason=f"spec.replicas={pool.spec.replicas}: scaled by an external owner",
            effective_floor=0,
            metrics_available=True,
            observed_demand=None,
            new_state=state.to_dict(),
            owned=False,
        )
    if reader is None:
        samples, unavailable = None, "no metrics source configured (--prometheus-url)"
    else:
        result = await reader.read(
            pool.metadata.namespace,
            pool.metadata.name,
            now=now,
            target_type=spec.target.type,
            query=spec.metrics.query,
            url=spec.metrics.prometheus_url,
        )
        if isinstance(result, DemandWindow):
            samples, unavailable = result.samples, ""
        else:
            samples, unavailable = None, result.reason
    last_cold = pool.status.last_cold_start
    wake = wake_time(pool)
    observation = Observation(
        samples=samples,
        current_replicas=current_replicas,
        ready_replicas=ready_replicas,
        unavailable_reason=unavailable,
        wake_at=wake.timestamp() if wake else None,
        cold_start_seconds=last_cold.total_seconds if last_cold else DEFAULT_COLD_START_SECONDS,
        interval_seconds=interval_seconds,
    )
    decision = decide(spec, observation, now, state)
    last_request = decision.state.last_request_at
    return ScalingDecision(
        desired=decision.desired,
        reason=decision.reason,
        effective_floor=decision.effective_floor,
        metrics_available=decision.metrics_available,
        observed_demand=decision.observed_demand,
        new_state=decision.state.to_dict(),
        last_request_time=datetime.fromtimestamp(last_request, UTC) if last_request else None,
        next_change_at=(
            datetime.fromtimestamp(decision.next_change_at, UTC)
            if decision.next_change_at
            else None
        ),
    )
