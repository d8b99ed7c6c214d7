"""Roll-outs (pure): the revision being rolled out and how far it got, and the kstatus
conditions (Reconciling, Stalled, Progressing) that report it.

The revision is the pod template's hash (annotation `warmpool.dev/revision` on the
Deployment's template and on every pod made from it); the Deployment controller's progress
deadline says when a roll-out is stuck.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from warmpool.api.status import ConditionType, RolloutPrepull, RolloutStatus
from warmpool.contract import ObjView
from warmpool.controller.pool.coldstart import condition_true
from warmpool.controller.pool.pods import (
    MAX_MESSAGE,
    ConditionValue,
    PodCounts,
    is_warm,
    live_pods,
)
from warmpool.controller.prepull.gate import prepull_condition
from warmpool.render.labels import REVISION_ANNOTATION


def pod_revision(pod: ObjView) -> str | None:
    """The pod template revision a pod was created from."""
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)


def template_revision(deployment: Mapping[str, Any] | None) -> str | None:
    """The revision of a Deployment's pod template."""
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)


def rollout_status(
    deployment: ObjView | None, pods: Sequence[ObjView], warmup_enabled: bool
) -> RolloutStatus | None:
    """status.rollout: the Deployment's template revision and its pods, by how far they got."""
    revision = template_revision(deployment)
    if not revision:
        return None
    live = live_pods(pods)
    updated = [pod for pod in live if pod_revision(pod) == revision]
    return RolloutStatus(
        revision=str(revision),
        updated_replicas=len(updated),
        ready_replicas=sum(condition_true(p, "ContainersReady") for p in updated),
        warm_replicas=sum(is_warm(p, warmup_enabled) for p in updated),
        old_replicas=len(live) - len(updated),
    )


def deadline_exceeded(deployment: ObjView | None) -> str | None:
    """The Deployment controller's message when the pool's Deployment made no progress within
    its progressDeadlineSeconds (Progressing=False, ProgressDeadlineExceeded), else None."""
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return str(condition.get("message") or "progress deadline exceeded")
    return None


def progress_conditions(
    deployment: ObjView | None,
    degraded: str | None,
    counts: PodCounts,
    desired: int,
    rollout: RolloutStatus | None,
    weights: ConditionValue,
    waiting: str = "",
    prepull: RolloutPrepull | None = None,
) -> dict[ConditionType, ConditionValue]:
    """Reconciling, Stalled (kstatus: abnormal-true, never both True) and Progressing.

    A roll-out that strategy Auto switched to replacing in place is still progressing
    (`ReplacingInPlace`, kstatus InProgress); it is Stalled only if even that makes no progress
    by the deadline. `waiting` says that a surged replica waits for a GPU, and until when.
    `prepull`: a change of the weights held back until it is pre-pulled (or released by the
    timeout) sets Progressing (and, while held, Reconciling) instead."""
    rolling = rollout is not None and rollout.old_replicas > 0
    stuck = deadline_exceeded(deployment)
    if degraded:
        stalled = ConditionValue("True", "InvalidSpec", degraded[:MAX_MESSAGE])
    elif weights.reason == "PrefetchFailed":
        stalled = ConditionValue("True", "PrefetchFailed", weights.message)
    elif stuck is not None:
        reason = "RolloutStalled" if rolling else "ProgressDeadlineExceeded"
        stalled = ConditionValue("True", reason, stuck[:MAX_MESSAGE])
    else:
        stalled = ConditionValue("False", "Progressing", "")
    if stalled.status == "True":
        reconciling = ConditionValue("False", "Stalled", "the pool cannot progress: see Stalled")
    elif rolling and rollout is not None:
        reconciling = ConditionValue(
            "True",
            "RollingOut",
            f"revision {rollout.revision}: {rollout.warm_replicas}/{desired} warm, "
            f"{rollout.old_replicas} old replica(s) to leave",
        )
    elif counts.total < desired:
        reconciling = ConditionValue("True", "ScalingUp", f"{counts.total}/{desired} replicas")
    elif counts.total > desired:
        reconciling = ConditionValue("True", "ScalingDown", f"{counts.total}/{desired} replicas")
    elif counts.warm < desired:
        reconciling = ConditionValue("True", "WarmingUp", f"{counts.warm}/{desired} warm")
    else:
        reconciling = ConditionValue("False", "Reconciled", f"{counts.warm}/{desired} warm")
    if rollout is None:
        progressing = ConditionValue("Unknown", "NoDeployment", "no server Deployment seen yet")
    elif stalled.reason == "RolloutStalled":
        progressing = ConditionValue("False", "RolloutStalled", stalled.message)
    elif rolling and rollout is not None and rollout.fallback:
        progressing = ConditionValue("True", "ReplacingInPlace", rollout.fallback)
    elif rolling:
        note = f"{reconciling.message}; {waiting}" if waiting else reconciling.message
        progressing = ConditionValue("True", "RollingOut", note[:MAX_MESSAGE])
    else:
        progressing = ConditionValue(
            "True", "RolloutComplete", f"every replica runs revision {rollout.revision}"
        )
    held = prepull_condition(prepull, rolling)  # controller/prepull/gate.py
    if held is not None and stalled.status != "True" and rollout is not None:
        if prepull is not None and prepull.held:
            reconciling = ConditionValue("True", *held)
        progressing = ConditionValue("True", *held)
    return {
        ConditionType.RECONCILING: reconciling,
        ConditionType.STALLED: stalled,
        ConditionType.PROGRESSING: progressing,
    }


def deployment_for_status(cached: ObjView | None, rendered: ObjView | None) -> ObjView | None:
    """The server Deployment status is computed from: the watch cache's, unless this sync just
    applied a template the cache has not seen yet; then the applied one (its revision), so the
    first status already names the revision and the watch event that follows writes nothing."""
    if rendered is None:
        return cached
    if cached is not None and template_revision(cached) == template_revision(rendered):
        return cached
    return rendered
