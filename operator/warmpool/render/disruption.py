"""Disruption and roll-out: the pool's PodDisruptionBudget, the autoscaler hints on a cold
replica, the Deployment strategy, termination grace and drain (pure).

The hints (`karpenter.sh/do-not-disrupt`, `cluster-autoscaler.kubernetes.io/safe-to-evict`)
are set on the pod template, so a replica carries them from birth; the operator removes them
from a pod once its warm gate opens (docs/disruption.md says why the operator, not the warm-up
sidecar: the sidecar's rights stay `pods/status` only).
"""

from __future__ import annotations

from warmpool.api.resource import InferencePool
from warmpool.render.common import Obj, object_meta
from warmpool.render.config import RenderConfig
from warmpool.render.labels import INFERENCE_SERVER, server_selector

#: Karpenter does not voluntarily disrupt a node that runs a pod with this annotation.
KARPENTER_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
#: The cluster autoscaler does not scale down a node that runs a pod with this set to "false".
CLUSTER_AUTOSCALER_SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
#: The hints a replica carries while it cold-starts, and their values.
COLD_START_HINTS: dict[str, str] = {
    KARPENTER_DO_NOT_DISRUPT: "true",
    CLUSTER_AUTOSCALER_SAFE_TO_EVICT: "false",
}


def pdb_name(pool: InferencePool) -> str:
    """Name of the pool's PodDisruptionBudget: the pool's."""
    return pool.metadata.name


def build_pod_disruption_budget(pool: InferencePool, *, warm_floor: int) -> Obj | None:
    """PodDisruptionBudget `<pool>` with minAvailable = `warm_floor` (the effective floor the
    scaler holds now); None when the floor is 0 or the pool opts out.

    A replica counts as available when it is Ready, and a replica is Ready only once warm (the
    readiness gate): evictions never take the warm replicas below the floor. Replicas that are
    not warm yet may always be evicted (AlwaysAllow): they serve nothing, and a drain must not
    wait for them (the autoscaler hints keep autoscalers off them instead).
    """
    if warm_floor <= 0 or not pool.spec.disruption.pod_disruption_budget:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(pool, pdb_name(pool), INFERENCE_SERVER),
        "spec": {
            "minAvailable": warm_floor,
            "selector": {"matchLabels": server_selector(pool.metadata.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def cold_start_hints(pool: InferencePool) -> dict[str, str]:
    """Annotations of a new replica's pod template (empty when the pool opts out)."""
    return dict(COLD_START_HINTS) if pool.spec.disruption.protect_cold_starts else {}


def drain_seconds(pool: InferencePool, config: RenderConfig) -> int:
    """preStop sleep of the server: the pool's drainSeconds, else the operator's."""
    configured = pool.spec.disruption.drain_seconds
    return config.drain_seconds if configured is None else configured


def termination_grace_seconds(pool: InferencePool, config: RenderConfig) -> int:
    """The pool's grace period, else the drain sleep plus Triton's exit timeout plus 5 s."""
    configured = pool.spec.disruption.termination_grace_period_seconds
    if configured is not None:
        return configured
    return drain_seconds(pool, config) + config.server_exit_timeout_seconds + 5


def deployment_strategy(pool: InferencePool, *, fell_back: bool = False) -> Obj:
    """RollingUpdate per spec.rollout: Surge never drops a warm replica before its successor is
    warm (maxUnavailable 0); Replace frees GPUs first (maxSurge 0) for a cluster with none spare.
    Auto surges, and replaces once `fell_back` (the operator found no GPU for a surged replica
    of this revision within surgeTimeoutSeconds: controller/pool/fallback.py decides, so this
    stays pure)."""
    rollout = pool.spec.rollout
    if rollout.strategy == "Replace" or (rollout.strategy == "Auto" and fell_back):
        rolling = {"maxSurge": 0, "maxUnavailable": rollout.max_unavailable}
    else:
        rolling = {"maxSurge": rollout.max_surge, "maxUnavailable": 0}
    return {"type": "RollingUpdate", "rollingUpdate": rolling}


def progress_deadline_seconds(pool: InferencePool, config: RenderConfig) -> int:
    """The Deployment's progressDeadlineSeconds: the pool's, else the operator's."""
    configured = pool.spec.rollout.progress_deadline_seconds
    return config.progress_deadline_seconds if configured is None else configured
