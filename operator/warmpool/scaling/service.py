"""The replica decision of a pool: read demand, run the pure policy, remember its state.

scaling/ owns the decision from end to end; its one shape is the policy's `Decision`, which
the operator renders into `replicas` and the pool's status (`status.scaling`,
`status.desiredReplicas`, `status.scalerState`, the MetricsAvailable condition). Who owns
`replicas` comes first: while `spec.replicas` is set (kubectl scale, HPA or KEDA through the
scale subresource) it is the answer and the policy stands aside (`Decision.owned` False). The
activator's wake request is handed to the policy, which alone decides what it does.

The policy is stateful (`PolicyState`, stored in `status.scalerState`). A `Scaler` keeps each
pool's latest state in memory, because parts of it change on every evaluation (the evaluation
time, the stabilization window) and writing those alone would cost a status write per pool per
tick: status carries them along with the next real change (`state.VOLATILE_KEYS`). Pod and
Deployment events reuse the last decision instead of evaluating again, so the policy sees one
evaluation per tick.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from warmpool.api.resource import InferencePool
from warmpool.contract import WAKE_ANNOTATION, PoolKey, parse_time
from warmpool.scaling.policy import (
    DEFAULT_COLD_START_SECONDS,
    DEFAULT_INTERVAL_SECONDS,
    Decision,
    Observation,
    decide,
)
from warmpool.scaling.prometheus import DemandWindow, PrometheusReader, TrafficReader
from warmpool.scaling.state import PolicyState

#: Triggers that evaluate the policy; the others (pod and Deployment events) reuse the last
#: decision.
EVALUATING = frozenset({"create", "update", "resume", "wake", "tick"})


def wake_time(pool: InferencePool) -> datetime | None:
    """The activator's wake request (annotation `warmpool.dev/wake-requested-at`), if valid."""
    return parse_time(pool.metadata.annotations.get(WAKE_ANNOTATION))


async def evaluate(
    pool: InferencePool,
    state: PolicyState,
    now: datetime,
    reader: TrafficReader | None,
    *,
    current_replicas: int,
    ready_replicas: int,
    cold_start_seconds: float | None = None,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
) -> Decision:
    """Decide the pool's replicas now from `state` (the policy's memory, returned updated in
    the decision). Never raises for metrics trouble (see the reason).

    `cold_start_seconds`: the pool's last measured cold start (status.lastColdStart), the
    policy's estimate of how long a new replica takes to be warm."""
    spec = pool.spec.scaling
    if pool.spec.replicas is not None:
        return Decision(
            desired=pool.spec.replicas,
            reason=f"spec.replicas={pool.spec.replicas}: scaled by an external owner",
            effective_floor=0,
            metrics_available=True,
            observed_demand=None,
            state=state,
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
    wake = wake_time(pool)
    observation = Observation(
        samples=samples,
        current_replicas=current_replicas,
        ready_replicas=ready_replicas,
        unavailable_reason=unavailable,
        wake_at=wake.timestamp() if wake else None,
        cold_start_seconds=(
            DEFAULT_COLD_START_SECONDS if cold_start_seconds is None else cold_start_seconds
        ),
        interval_seconds=interval_seconds,
    )
    return decide(spec, observation, now, state)


class Scaler:
    """Evaluates pools with the policy; remembers each pool's state and last decision."""

    def __init__(self, reader: TrafficReader | None, *, interval_seconds: float) -> None:
        self._reader = reader
        self._interval = interval_seconds
        self._decisions: dict[PoolKey, Decision] = {}

    @classmethod
    def from_settings(
        cls, prometheus_url: str | None, traffic_query: str | None, interval_seconds: float
    ) -> Scaler:
        # One sample per evaluation: the policy's window lines up with the timer's cadence.
        reader = PrometheusReader(
            prometheus_url, default_query=traffic_query, step_seconds=interval_seconds
        )
        return cls(reader, interval_seconds=interval_seconds)

    def forget(self, key: PoolKey) -> None:
        self._decisions.pop(key, None)

    async def decision_for(
        self,
        pool: InferencePool,
        stored_state: dict[str, Any] | None,
        now: datetime,
        trigger: str,
        *,
        current_replicas: int,
        ready_replicas: int,
        cold_start_seconds: float | None = None,
    ) -> Decision:
        """The pool's decision for `trigger`: evaluated, or the last one for an event.

        `stored_state`: status.scalerState as the pool holds it, used until this scaler has
        evaluated the pool once (after a restart); from then on its own, newer state wins."""
        key = PoolKey(pool.metadata.namespace, pool.metadata.name)
        last = self._decisions.get(key)
        if trigger not in EVALUATING and last is not None:
            return last
        state = last.state if last is not None else PolicyState.from_dict(stored_state)
        decision = await evaluate(
            pool,
            state,
            now,
            self._reader,
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
            cold_start_seconds=cold_start_seconds,
            interval_seconds=self._interval,
        )
        self._decisions[key] = decision
        return decision
