"""The pool's status from what the cluster reports (pure: no clock, no client).

Inputs are the pool, its server pods (from the watch cache), the scaling decision (the policy's
`Decision`, rendered here into status.scaling, desiredReplicas, scalerState and the
MetricsAvailable condition) and, when the spec cannot be served, the Degraded message.
Conditions keep their lastTransitionTime while their status stays the same, and `status_patch`
returns None when nothing changed, so an idle pool is never written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from warmpool.api.status import (
    ColdStart,
    Condition,
    ConditionType,
    InferencePoolStatus,
    Phase,
    RolloutPrepull,
    RolloutStatus,
    ScalingStatus,
)
from warmpool.contract import POOL_LABEL, ObjView
from warmpool.controller.pool.coldstart import condition_true
from warmpool.controller.pool.fallback import RolloutPlan, with_plan
from warmpool.controller.pool.pods import (
    MAX_MESSAGE,
    ConditionValue,
    PodCounts,
    count_pods,
    live_pods,
)
from warmpool.controller.pool.rollout import progress_conditions, rollout_status
from warmpool.controller.prepull.gate import rollout_with_prepull
from warmpool.render.deployment import PREFETCH_CONTAINER
from warmpool.scaling.policy import Decision
from warmpool.scaling.state import lasting_part


@dataclass(frozen=True)
class StatusInputs:
    """Everything `compute_status` reads."""

    name: str
    generation: int
    warmup_enabled: bool
    pods: Sequence[ObjView]
    previous: InferencePoolStatus
    now: datetime
    scaling: Decision | None = None
    degraded: str | None = None
    last_cold_start: ColdStart | None = None
    deployment: ObjView | None = None
    """The pool's server Deployment as the watch cache holds it (revision, Progressing)."""
    activator: bool = False
    """Whether an activator holds requests for pools at zero (the operator's setting)."""
    plan: RolloutPlan | None = None
    """How the Deployment's revision rolls out (strategy Auto resolved); None: not decided
    (a Degraded pool), the previous status's word stands."""
    prepull: RolloutPrepull | None = None
    """The pre-pull gate's record of a change of the weights (controller/prepull/gate.py)."""


def phase_of(counts: PodCounts, desired: int, degraded: bool) -> Phase:
    if degraded:
        return Phase.DEGRADED
    if counts.warm >= 1:
        return Phase.READY
    if desired == 0:
        return Phase.SCALED_TO_ZERO
    if counts.initialized >= 1:
        return Phase.WARMING_UP
    if counts.scheduled >= 1:
        return Phase.PREFETCHING
    return Phase.PENDING


def _prefetch_status(pod: ObjView) -> ObjView | None:
    for item in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if item.get("name") == PREFETCH_CONTAINER:
            return dict(item)
    return None


def _failure(container: ObjView) -> str | None:
    """The termination message of a failed prefetch (current or last run)."""
    for state_key in ("state", "lastState"):
        terminated = (container.get(state_key) or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            message = str(terminated.get("message") or terminated.get("reason") or "").strip()
            return message or f"exit code {terminated.get('exitCode')}"
    return None


def weights_cached(pods: Sequence[ObjView]) -> ConditionValue:
    """WeightsCached from the prefetch init containers (the termination message on failure)."""
    live = live_pods(pods)
    if not live:
        return ConditionValue("Unknown", "NoPods", "no replica to observe")
    done = 0
    for pod in live:
        container = _prefetch_status(pod)
        terminated = ((container or {}).get("state") or {}).get("terminated") or {}
        if (terminated and terminated.get("exitCode") == 0) or condition_true(pod, "Initialized"):
            done += 1
            continue
        failure = _failure(container) if container else None
        if failure is not None:
            name = (pod.get("metadata") or {}).get("name", "")
            return ConditionValue("False", "PrefetchFailed", f"pod {name}: {failure}"[:MAX_MESSAGE])
    if done:
        return ConditionValue("True", "Prefetched", f"weights verified on {done}/{len(live)} pods")
    return ConditionValue("False", "Prefetching", f"prefetch running on {len(live)} pods")


def metrics_condition(decision: Decision | None) -> ConditionValue:
    """MetricsAvailable: whether the decision could read the pool's traffic."""
    if decision is None:
        return ConditionValue("Unknown", "NotEvaluated", "no scaling decision yet")
    if not decision.owned:
        return ConditionValue("Unknown", "ExternalOwner", "replicas are set externally")
    if decision.metrics_available:
        return ConditionValue("True", "TrafficRead", "demand read from Prometheus")
    return ConditionValue(
        "False", "MetricsUnavailable", "traffic could not be read: see status.scaling.reason"
    )


def scaling_status(
    decision: Decision, previous: InferencePoolStatus, now: datetime
) -> ScalingStatus:
    """status.scaling from the decision (the times it does not change are kept)."""
    last_request = decision.state.last_request_at
    return ScalingStatus(
        owner="warmpool" if decision.owned else "external",
        reason=decision.reason[:MAX_MESSAGE],
        effective_warm_floor=decision.effective_floor,
        observed_demand=decision.observed_demand,
        last_scale_time=(
            now
            if decision.desired != previous.desired_replicas
            else previous.scaling.last_scale_time
        ),
        last_request_time=(
            datetime.fromtimestamp(last_request, UTC)
            if last_request
            else previous.scaling.last_request_time
        ),
    )


def desired_conditions(
    inputs: StatusInputs,
    counts: PodCounts,
    desired: int,
    reason: str,
    rollout: RolloutStatus | None,
) -> dict[ConditionType, ConditionValue]:
    warm, degraded = counts.warm, inputs.degraded
    if warm >= 1:
        ready = ConditionValue("True", "Serving", f"{warm} warm replica(s) receive traffic")
    elif desired == 0 and inputs.activator:
        ready = ConditionValue(
            "True",
            "ScaledToZeroBehindActivator",
            "no replica runs; the activator holds requests and wakes the pool",
        )
    elif desired == 0:
        ready = ConditionValue(
            "False",
            "ScaledToZeroNoActivator",
            "no replica runs and no activator holds requests: they fail until it scales up",
        )
    else:
        ready = ConditionValue("False", "NoWarmReplica", f"0/{desired} replicas warm")
    if desired >= 1 and warm >= desired:
        warm_cond = ConditionValue("True", "AllWarm", f"{warm}/{desired} replicas warm")
    elif desired == 0:
        warm_cond = ConditionValue("False", "NoReplicas", "desired replicas is 0")
    else:
        warm_cond = ConditionValue("False", "WarmingUp", f"{warm}/{desired} replicas warm")
    if desired == 0 and counts.total == 0:
        zero = ConditionValue("True", "ScaledToZero", reason or "desired replicas is 0")
    elif desired == 0:
        zero = ConditionValue("False", "ScalingToZero", f"{counts.total} pod(s) terminating")
    else:
        zero = ConditionValue("False", "Running", f"desired replicas {desired}")
    if degraded:
        degraded_cond = ConditionValue("True", "InvalidSpec", degraded[:MAX_MESSAGE])
    else:
        degraded_cond = ConditionValue("False", "AsExpected", "")
    weights = weights_cached(inputs.pods)
    return {
        ConditionType.READY: ready,
        ConditionType.WEIGHTS_CACHED: weights,
        ConditionType.WARM: warm_cond,
        ConditionType.SCALED_TO_ZERO: zero,
        ConditionType.METRICS_AVAILABLE: metrics_condition(inputs.scaling),
        ConditionType.DEGRADED: degraded_cond,
        **progress_conditions(
            inputs.deployment,
            inputs.degraded,
            counts,
            desired,
            rollout,
            weights,
            waiting_for_gpu(inputs.plan, rollout),
            inputs.prepull,
        ),
    }


def waiting_for_gpu(plan: RolloutPlan | None, rollout: RolloutStatus | None) -> str:
    """The plan's word that a surged replica waits for a GPU, when it is about this revision
    (not about the one before a template applied in this sync)."""
    if plan is None or rollout is None or plan.revision != rollout.revision:
        return ""
    return plan.waiting


def merge_conditions(
    previous: Sequence[Condition],
    values: Mapping[ConditionType, ConditionValue],
    *,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """Conditions in a fixed order; lastTransitionTime changes only when status does."""
    before = {item.type: item for item in previous}
    merged: list[Condition] = []
    for kind, value in values.items():
        old = before.get(kind.value)
        since = old.last_transition_time if old is not None and old.status == value.status else now
        merged.append(
            Condition(
                type=kind.value,
                status=value.status,
                reason=value.reason,
                message=value.message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return merged


def compute_status(inputs: StatusInputs) -> InferencePoolStatus:
    """The status the pool should have now."""
    previous = inputs.previous
    counts = count_pods(inputs.pods, inputs.warmup_enabled)
    decision = inputs.scaling
    scaler_state: dict[str, Any] | None
    if decision is not None and inputs.degraded is None:
        desired = decision.desired
        scaling = scaling_status(decision, previous, inputs.now)
        scaler_state = decision.state.to_dict()
        reason = decision.reason
    else:  # a Degraded pool keeps its last decision: nothing is applied while it is Degraded
        desired = previous.desired_replicas
        scaling = previous.scaling
        scaler_state = previous.scaler_state
        reason = ""
    rollout = rollout_status(inputs.deployment, inputs.pods, inputs.warmup_enabled)
    if rollout is not None:
        rollout = with_plan(rollout, inputs.plan, previous.rollout)
    conditions = merge_conditions(
        previous.conditions,
        desired_conditions(inputs, counts, desired, reason, rollout),
        now=inputs.now,
        generation=inputs.generation,
    )
    return InferencePoolStatus(
        phase=phase_of(counts, desired, inputs.degraded is not None),
        replicas=counts.total,
        ready_replicas=counts.ready,
        warm_replicas=counts.warm,
        desired_replicas=desired,
        cached_nodes=previous.cached_nodes,
        selector=f"{POOL_LABEL}={inputs.name}",
        observed_generation=inputs.generation,
        conditions=conditions,
        last_cold_start=inputs.last_cold_start or previous.last_cold_start,
        rollout=rollout_with_prepull(
            rollout or previous.rollout,
            inputs.prepull,
            previous=previous.rollout,
            degraded=inputs.degraded is not None,
        ),
        scaling=scaling,
        scaler_state=scaler_state,
    )


def parse_status(raw: Mapping[str, Any] | None) -> InferencePoolStatus:
    """The public status of a live pool (kopf's `status.kopf` left out); default when unreadable."""
    public = {key: value for key, value in (raw or {}).items() if key != "kopf"}
    try:
        return InferencePoolStatus.model_validate(public)
    except ValidationError:
        return InferencePoolStatus()


#: Status fields other writers own: kopf's progress, and cachedNodes (the pre-pull reconciler,
#: controller/prepull/). This module's patches never carry them, so the writers never race.
FOREIGN_FIELDS = frozenset({"kopf", "cachedNodes"})


def dump_status(status: InferencePoolStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(
        by_alias=True, exclude_none=True, mode="json", exclude={"kopf", "cached_nodes"}
    )
    return dumped


_NUMBER = re.compile(r"\d+(\.\d+)?")


def _comparable(status: InferencePoolStatus) -> InferencePoolStatus:
    """The status as compared for "did it change": without kopf's part, the volatile keys of
    scalerState (`scaling.state.VOLATILE_KEYS`), and the numbers in the scaling reason ("idle
    35s < ..." grows every tick; the wording changes only with the decision, and the numbers
    are refreshed with the next write)."""
    state = lasting_part(status.scaler_state)
    scaling = status.scaling.model_copy(update={"reason": _NUMBER.sub("#", status.scaling.reason)})
    return status.model_copy(
        update={"kopf": None, "scaler_state": state, "scaling": scaling, "cached_nodes": 0}
    )


def status_patch(raw: Mapping[str, Any] | None, new: InferencePoolStatus) -> dict[str, Any] | None:
    """The merge patch of `status` that turns `raw` into `new`; None when they are equal.

    Equality is on the parsed model (not the raw JSON), so formatting differences of times never
    cause a write, and ignores the volatile keys of scalerState. Keys of the old public status
    the new one lacks are removed (null).
    """
    old_public = {key: value for key, value in (raw or {}).items() if key not in FOREIGN_FIELDS}
    if old_public and _comparable(parse_status(old_public)) == _comparable(new):
        return None
    body: dict[str, Any] = dump_status(new)
    for key in old_public:
        if key not in body:
            body[key] = None
    return {"status": body}
