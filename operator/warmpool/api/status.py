"""The observed state of an InferencePool: `status`, written only by the operator."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from warmpool.api.base import APIModel


class Phase(StrEnum):
    """Where the pool stands, at a glance (printer column)."""

    PENDING = "Pending"
    PREFETCHING = "Prefetching"
    WARMING_UP = "WarmingUp"
    READY = "Ready"
    SCALED_TO_ZERO = "ScaledToZero"
    DEGRADED = "Degraded"


class ConditionType(StrEnum):
    """Condition types of an InferencePool."""

    READY = "Ready"
    WEIGHTS_CACHED = "WeightsCached"
    WARM = "Warm"
    SCALED_TO_ZERO = "ScaledToZero"
    METRICS_AVAILABLE = "MetricsAvailable"
    DEGRADED = "Degraded"
    # The kstatus conventions (sigs.k8s.io/cli-utils/pkg/kstatus): abnormal-true conditions
    # that GitOps tools read without knowing the kind. Never both True at once.
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    # Like a Deployment's: True while a revision rolls out and once it has, False when stuck.
    PROGRESSING = "Progressing"


class Condition(APIModel):
    """A condition in the Kubernetes convention (metav1.Condition)."""

    type: str = Field(max_length=316)
    """Condition type: Ready, WeightsCached, Warm, ScaledToZero, MetricsAvailable, Degraded,
    Reconciling, Stalled, Progressing."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition."""
    reason: str = Field(max_length=1024)
    """CamelCase reason for the last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable detail."""
    last_transition_time: datetime
    """When the status last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was computed from."""


class ColdStart(APIModel):
    """Where the time of one cold start went, phase by phase."""

    pod: str = Field(max_length=253)
    """Pod that started cold."""
    started_at: datetime
    """Pod creation time."""
    total_seconds: float
    """Creation to warm (gate open)."""
    scheduling_seconds: float
    """Creation to scheduled on a node, less node provisioning."""
    prefetch_seconds: float
    """Scheduled to init containers done (weights fetched and verified), less image pulls."""
    server_start_seconds: float
    """Init done to Triton ready (load into memory), less image pulls."""
    warmup_seconds: float
    """Triton ready to latency steady (readiness gate opened)."""
    node_provisioning_seconds: float = 0.0
    """Of the wait to be scheduled: the time until the pod's node appeared, when it was created
    after the pod (an autoscaler provisioned it)."""
    image_pull_seconds: float = 0.0
    """Image pulls on the node (the kubelet's Pulled Events), taken out of the phases they fell
    in. The phases and these two add up to the total."""


class ScalingStatus(APIModel):
    """The scaler's last decision: who owns replicas, and why they are what they are."""

    owner: Literal["warmpool", "external"] = "warmpool"
    """warmpool: the built-in scaler sets replicas; external: spec.replicas is set (kubectl
    scale, HPA, KEDA) and the built-in scaler stands aside."""
    reason: str = Field(default="", max_length=1024)
    """Why desiredReplicas is what it is."""
    effective_warm_floor: int = Field(default=0, ge=0)
    """Warm floor in force now (schedules and prediction included)."""
    observed_demand: float | None = None
    """Last demand read from Prometheus, in the target's unit."""
    last_scale_time: datetime | None = None
    """When desiredReplicas last changed."""
    last_request_time: datetime | None = None
    """Last time traffic was seen (survives operator restarts: idle timers resume from it)."""


class RolloutPrepull(APIModel):
    """The pre-pull of a new revision's weights (spec.cache.prepull): while `held`, the
    Deployment keeps serving the previous weights and the new ones are fetched on the nodes."""

    fingerprint: str = Field(max_length=64)
    """Fingerprint of the new weights (the value of the nodes' pre-pull label)."""
    previous_fingerprint: str = Field(default="", max_length=64)
    """Fingerprint of the weights the replicas keep while the new ones are held back."""
    held: bool = False
    """True while the roll-out of the new weights waits for their pre-pull."""
    verified_nodes: int = Field(default=0, ge=0)
    """Nodes holding a verified copy of the new weights (when released: at that moment)."""
    needed_nodes: int = Field(default=0, ge=0)
    """Verified nodes the roll-out waits for: the desired replicas (at least 1), at most the
    nodes the pre-pull DaemonSet runs on."""
    since: datetime
    """When the new weights were first held back (the timeout counts from here)."""
    timed_out: bool = False
    """Released by spec.cache.prepullTimeoutSeconds before enough nodes held the copy."""


class RolloutStatus(APIModel):
    """The revision of the replicas' pod template being rolled out, and how far it got."""

    revision: str = Field(default="", max_length=64)
    """Revision of the pod template the operator applied (annotation warmpool.dev/revision on
    the Deployment's pods): a hash of the template, so equal specs give equal revisions."""
    updated_replicas: int = Field(default=0, ge=0)
    """Pods of this revision (the Deployment's updatedReplicas)."""
    ready_replicas: int = Field(default=0, ge=0)
    """Pods of this revision whose containers are ready."""
    warm_replicas: int = Field(default=0, ge=0)
    """Pods of this revision that are warm (receive traffic)."""
    old_replicas: int = Field(default=0, ge=0)
    """Live pods of older revisions, still to leave."""
    strategy: Literal["Surge", "Replace"] | None = None
    """How this revision rolls out: Surge or Replace (spec.rollout.strategy Auto resolves to
    Surge, and to Replace once it fell back for this revision)."""
    fallback: str = Field(default="", max_length=1024)
    """Why strategy Auto replaces this revision in place (no free GPU for a surged replica
    within surgeTimeoutSeconds); empty when it did not fall back. Kept until the next
    revision, which surges again, so an operator restart does not forget it."""
    prepull: RolloutPrepull | None = None
    """With spec.cache.prepull: the pre-pull of the latest change of the weights, held back or
    released (kept until the weights change again)."""


class InferencePoolStatus(APIModel):
    """Observed state of an InferencePool."""

    phase: Phase = Phase.PENDING
    """Pending | Prefetching | WarmingUp | Ready | ScaledToZero | Degraded."""
    replicas: int = Field(default=0, ge=0)
    """Pods of the pool (scale subresource statusReplicasPath)."""
    ready_replicas: int = Field(default=0, ge=0)
    """Pods whose containers are ready."""
    warm_replicas: int = Field(default=0, ge=0)
    """Pods whose warm-up gate is open: the ones that receive traffic."""
    desired_replicas: int = Field(default=0, ge=0)
    """Replicas the pool is driving to."""
    cached_nodes: int = Field(default=0, ge=0)
    """Nodes holding a verified copy of the weights (pre-pull)."""
    selector: str = Field(default="", max_length=1024)
    """Label selector of the pool's pods (scale subresource labelSelectorPath)."""
    observed_generation: int = Field(default=0, ge=0)
    """The .metadata.generation this status reflects."""
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    """Ready, WeightsCached, Warm, ScaledToZero, MetricsAvailable, Degraded, Reconciling,
    Stalled, Progressing (docs/status.md says what each means to kstatus, Argo CD and Flux)."""
    rollout: RolloutStatus | None = None
    """The revision being rolled out (or last rolled out) and its replica counts."""
    last_cold_start: ColdStart | None = None
    """The most recent cold start and its phase breakdown."""
    scaling: ScalingStatus = Field(default_factory=ScalingStatus)
    """The scaler's decision."""
    scaler_state: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Opaque state of the scaling policy (busy-period history, warm plans): survives restarts."""
    kopf: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Reserved for the operator framework's handler progress."""
