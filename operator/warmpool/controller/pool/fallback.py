"""Strategy Auto (pure): surge while a GPU can be found, replace in place when none can.

A surged replica of a new revision that the scheduler keeps `Unschedulable` for lack of the
pool's GPU resource ("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.") for
spec.rollout.surgeTimeoutSeconds will not fit: no free GPU, no placeholder to preempt (a
preemption in flight shows as `status.nominatedNodeName`, and is waited for), no node an
autoscaler added in that window. The roll-out then falls back to Replace for the rest of that
revision: an old replica leaves and its successor takes the freed GPU.

The timer is the pod's own `PodScheduled=False` transition time, so it survives an operator
restart; the fallback is remembered in status.rollout (`strategy`, `fallback`) for the
revision it was made for, so a restart does not switch a half-replaced roll-out back to
surging. The operator notices the timeout at the pool's next refresh (every scaling tick, or a
pod event): at most one --scaling-interval late, with no timer per pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from warmpool.api.spec import InferencePoolSpec
from warmpool.api.status import RolloutStatus
from warmpool.contract import ObjView, parse_time
from warmpool.controller.pool.coldstart import condition
from warmpool.controller.pool.pods import live_pods
from warmpool.controller.pool.rollout import pod_revision, template_revision


@dataclass(frozen=True)
class RolloutPlan:
    """How the Deployment's current revision rolls out."""

    strategy: Literal["Surge", "Replace"]
    revision: str | None
    """The Deployment's template revision the plan was made for."""
    fallback: str = ""
    """Why Auto replaces in place (empty: it did not fall back)."""
    waiting: str = ""
    """A surged replica waits for a GPU: when Auto falls back if none comes."""

    @property
    def replace_revision(self) -> str | None:
        """The revision to render with the Replace strategy (Auto fell back for it)."""
        return self.revision if self.fallback else None


def gpu_starved_since(pod: ObjView, resource_name: str) -> datetime | None:
    """Since when the scheduler has found no node with a free `resource_name` for `pod`; None
    when the pod is scheduled, unschedulable for another reason, or preempting a victim (its
    nominated node frees the GPU: a headroom placeholder is leaving)."""
    if (pod.get("status") or {}).get("nominatedNodeName"):
        return None
    scheduled = condition(pod, "PodScheduled")
    if (
        scheduled is None
        or scheduled.get("status") != "False"
        or scheduled.get("reason") != "Unschedulable"
        or f"Insufficient {resource_name}" not in str(scheduled.get("message") or "")
    ):
        return None
    return parse_time(scheduled.get("lastTransitionTime"))


def plan_rollout(
    spec: InferencePoolSpec,
    deployment: ObjView | None,
    pods: Sequence[ObjView],
    previous: RolloutStatus | None,
    now: datetime,
) -> RolloutPlan:
    """The strategy of the Deployment's current revision: spec.rollout.strategy, with Auto
    resolved to Surge, or to Replace once a surged replica went without a GPU for
    surgeTimeoutSeconds (and from then on for that revision)."""
    rollout = spec.rollout
    revision = template_revision(deployment)
    if rollout.strategy != "Auto":
        return RolloutPlan(rollout.strategy, revision)
    if revision and previous is not None and previous.revision == revision and previous.fallback:
        return RolloutPlan("Replace", revision, fallback=previous.fallback)
    surge = RolloutPlan("Surge", revision)
    gpu = spec.server.gpu
    live = live_pods(pods)
    if not revision or gpu.count == 0 or all(pod_revision(p) == revision for p in live):
        return surge  # no roll-out (a scale-up has nothing to replace), or no GPU to wait for
    starved = [
        since
        for pod in live
        if pod_revision(pod) == revision
        and (since := gpu_starved_since(pod, gpu.resource_name)) is not None
    ]
    if not starved:
        return surge
    since = min(starved)
    timeout = rollout.surge_timeout_seconds
    deadline = since + timedelta(seconds=timeout)
    if now < deadline:
        waiting = (
            f"a surged replica waits for a free {gpu.resource_name} since "
            f"{since:%Y-%m-%dT%H:%M:%SZ}; replacing in place from {deadline:%Y-%m-%dT%H:%M:%SZ}"
            " if none comes"
        )
        return RolloutPlan("Surge", revision, waiting=waiting)
    drop = rollout.max_unavailable
    fallback = (
        f"no free {gpu.resource_name} for a surged replica after {timeout} s: replacing in "
        f"place, warm replicas drop by up to {drop} while each successor warms up"
    )
    return RolloutPlan("Replace", revision, fallback=fallback)


def with_plan(
    rollout: RolloutStatus, plan: RolloutPlan | None, previous: RolloutStatus | None
) -> RolloutStatus:
    """status.rollout with the revision's strategy and fallback: the plan's when it was made
    for this revision; for a template applied in this very sync, the strategy its revision
    starts with (a fallback belongs to the revision before); without a plan (a Degraded pool,
    nothing applied), what the previous status said for the same revision."""
    update: dict[str, object]
    if plan is not None and plan.revision == rollout.revision:
        update = {"strategy": plan.strategy, "fallback": plan.fallback}
    elif plan is not None:
        fresh = "Replace" if plan.strategy == "Replace" and not plan.fallback else "Surge"
        update = {"strategy": fresh, "fallback": ""}
    elif previous is not None and previous.revision == rollout.revision:
        update = {"strategy": previous.strategy, "fallback": previous.fallback}
    else:
        return rollout
    return rollout.model_copy(update=update)
