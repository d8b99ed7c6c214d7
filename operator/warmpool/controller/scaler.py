"""The operator's side of the traffic-driven scaler: calls `warmpool.scaling.service.evaluate`
at the tick cadence and turns its decision into what status and the Deployment need.

The policy is stateful (`status.scalerState`). Its latest state lives here, in memory, because
parts of it change on every evaluation (the evaluation time, the stabilization window) and
writing those alone would cost a status write per pool per tick; status carries them along with
the next real change (see `status.SCALER_STATE_VOLATILE`). Pod and Deployment events reuse the
last decision instead of evaluating again, so the policy sees one evaluation per tick.
"""

from __future__ import annotations

from datetime import datetime

from warmpool.api.resource import InferencePool
from warmpool.api.status import InferencePoolStatus, ScalingStatus
from warmpool.controller.cache import PoolKey
from warmpool.controller.status import ConditionValue, ScalingOutcome
from warmpool.scaling.prometheus import PrometheusReader, TrafficReader
from warmpool.scaling.service import ScalingDecision, evaluate

#: Triggers that evaluate the policy; the others ("observe") reuse the last decision.
EVALUATING = frozenset({"create", "update", "resume", "wake", "tick"})


def to_outcome(
    decision: ScalingDecision, previous: InferencePoolStatus, now: datetime
) -> ScalingOutcome:
    """The status side of a decision (pure)."""
    if not decision.owned:
        metrics = ConditionValue("Unknown", "ExternalOwner", "replicas are set externally")
    elif decision.metrics_available:
        metrics = ConditionValue("True", "TrafficRead", "demand read from Prometheus")
    else:
        metrics = ConditionValue(
            "False", "MetricsUnavailable", "traffic could not be read: see status.scaling.reason"
        )
    changed = decision.desired != previous.desired_replicas
    scaling = ScalingStatus(
        owner="warmpool" if decision.owned else "external",
        reason=decision.reason[:1024],
        effective_warm_floor=decision.effective_floor,
        observed_demand=decision.observed_demand,
        last_scale_time=now if changed else previous.scaling.last_scale_time,
        last_request_time=decision.last_request_time or previous.scaling.last_request_time,
    )
    return ScalingOutcome(
        desired_replicas=decision.desired,
        scaling=scaling,
        metrics=metrics,
        scaler_state=decision.new_state,
    )


class PolicyScaler:
    """Evaluates pools with the scaling policy; remembers each pool's state and last outcome."""

    def __init__(self, reader: TrafficReader | None, *, interval_seconds: float) -> None:
        self._reader = reader
        self._interval = interval_seconds
        self._outcomes: dict[PoolKey, ScalingOutcome] = {}
        self._states: dict[PoolKey, dict[str, object]] = {}

    @classmethod
    def from_settings(
        cls, prometheus_url: str | None, traffic_query: str | None, interval_seconds: float
    ) -> PolicyScaler:
        # One sample per evaluation: the policy's window lines up with the timer's cadence.
        reader = PrometheusReader(
            prometheus_url, default_query=traffic_query, step_seconds=interval_seconds
        )
        return cls(reader, interval_seconds=interval_seconds)

    def forget(self, key: PoolKey) -> None:
        self._outcomes.pop(key, None)
        self._states.pop(key, None)

    async def decide(
        self,
        pool: InferencePool,
        previous: InferencePoolStatus,
        now: datetime,
        trigger: str,
        *,
        current_replicas: int,
        ready_replicas: int,
    ) -> ScalingOutcome:
        key = (pool.metadata.namespace, pool.metadata.name)
        if trigger not in EVALUATING and key in self._outcomes:
            return self._outcomes[key]
        state = self._states.get(key, previous.scaler_state)
        observed = pool.model_copy(
            update={"status": previous.model_copy(update={"scaler_state": state})}
        )
        decision = await evaluate(
            observed,
            now,
            self._reader,
            current_replicas,
            ready_replicas,
            interval_seconds=self._interval,
        )
        outcome = to_outcome(decision, previous, now)
        self._states[key] = decision.new_state
        self._outcomes[key] = outcome
        return outcome
