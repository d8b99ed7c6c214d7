"""Hold a new revision of the weights back until it is pre-pulled (pure: no client, no clock).

With spec.cache.prepull, a change of the weights (a new model fingerprint) used to change the
Deployment's pod template at once: the new revision's replicas started before any node held the
new weights, and each downloaded them on its own critical path, the very cold start pre-pull is
there to remove. Instead, while the pre-pull DaemonSet (rendered from the NEW spec) fetches the
new weights on the nodes, the Deployment keeps being rendered with the weights it was last
rolled out with. The Deployment itself remembers them (annotation `warmpool.dev/model-spec`,
render/deployment.py), so an operator restart changes nothing.

The roll-out is released when enough nodes hold a verified copy of the new weights:

    needed = min(max(desired replicas, 1), nodes the pre-pull DaemonSet runs on)

(each new replica then finds a node with the copy; at zero replicas, the first wake does), or
when spec.cache.prepullTimeoutSeconds (default: the roll-out's progress deadline) has passed
since the hold began: it then rolls out anyway, with a Warning Event and the Progressing
condition saying so. Only the weights wait: replicas, and any other change of the template,
apply at once (with the previous weights while held). The hold's record is
status.rollout.prepull; its `since` survives restarts, so the timeout does too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from warmpool.api.resource import InferencePool
from warmpool.api.spec import ModelSpec
from warmpool.api.status import InferencePoolStatus, RolloutPrepull, RolloutStatus
from warmpool.contract import ObjView, PoolKey
from warmpool.render.config import RenderConfig
from warmpool.render.disruption import progress_deadline_seconds
from warmpool.render.labels import MODEL_SPEC_ANNOTATION, model_fingerprint

#: Reason of Reconciling and Progressing while a new revision's weights are held back.
PREPULLING = "PrepullingRevision"
#: Reason of Progressing while a revision released by the timeout rolls out.
TIMED_OUT = "PrepullTimedOut"
#: Reason of the Normal Event when the held revision is released (its weights are verified).
PREPULLED = "RevisionPrepulled"


@dataclass(frozen=True)
class PrepullNodes:
    """What the pre-pull pods of a pool say about one fingerprint."""

    verified: int
    """Nodes with a Ready pre-pull pod holding the fingerprint (a verified copy)."""
    eligible: int
    """Nodes with a pre-pull pod of the pool at all (any fingerprint, Ready or not)."""


NodeCounter = Callable[[PoolKey, str], PrepullNodes]
"""(pool, fingerprint) -> its pre-pull pods' view (PrepullReconciler.nodes)."""


def no_prepull_nodes(key: PoolKey, fingerprint: str) -> PrepullNodes:
    """No pre-pull pod is known: a hold is released at once (nothing would fetch the weights)."""
    return PrepullNodes(verified=0, eligible=0)


@dataclass(frozen=True)
class GateEvent:
    """An Event to post when the hold ends."""

    type: Literal["Normal", "Warning"]
    reason: str
    note: str


@dataclass(frozen=True)
class Hold:
    """The gate's decision for one sync."""

    kept_model: ModelSpec | None
    """While held, the weights the server Deployment keeps (`build_children(kept_model=...)`;
    the pre-pull DaemonSet fetches the spec's meanwhile); None: the spec's weights."""
    record: RolloutPrepull | None
    """status.rollout.prepull."""
    event: GateEvent | None = None
    """Posted once, by the sync that releases the hold."""

    @property
    def held(self) -> bool:
        return self.record is not None and self.record.held

    @property
    def signature(self) -> str:
        """Appended to the render signature: a hold ending re-renders with the same spec."""
        if self.record is None or not self.record.held:
            return ""
        return f":held:{self.record.previous_fingerprint}"


def served_model(deployment: ObjView | None) -> ModelSpec | None:
    """The model spec the server Deployment was rendered from (its annotation), or None when
    it has none (no Deployment yet, pre-pull was off, an older operator rendered it)."""
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(MODEL_SPEC_ANNOTATION)
    if not raw:
        return None
    try:
        return ModelSpec.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None  # edited by hand into nonsense: nothing to hold back to


def needed_nodes(replicas: int, eligible: int) -> int:
    """Verified nodes the roll-out waits for: one per desired replica (each new replica finds a
    node with the copy; at zero replicas, the first wake does), at most every eligible node."""
    return min(max(replicas, 1), eligible)


def decide(
    pool: InferencePool,
    *,
    served: ModelSpec | None,
    nodes: PrepullNodes,
    previous: RolloutPrepull | None,
    replicas: int,
    default_timeout: int,
    now: datetime,
) -> Hold:
    """Render with the served weights (hold) or with the spec's (no hold, or release).

    `served`: the Deployment's weights (`served_model`); `nodes`: the pre-pull pods' view of
    the spec's fingerprint; `previous`: status.rollout.prepull as the pool holds it.
    """
    cache = pool.spec.cache
    timeout = cache.prepull_timeout_seconds
    timeout = default_timeout if timeout is None else timeout
    if not cache.prepull or timeout == 0:
        return Hold(None, None)
    fingerprint = model_fingerprint(pool.spec.model)
    kept = previous if previous is not None and previous.fingerprint == fingerprint else None
    if served is None or model_fingerprint(served) == fingerprint:
        # Nothing to hold: the Deployment already has (or gets) the spec's weights. The record
        # of this fingerprint's pre-pull stays, released.
        record = kept.model_copy(update={"held": False}) if kept is not None else None
        return Hold(None, record)
    if kept is not None and not kept.held:
        return Hold(None, kept)  # released earlier; its apply did not land yet
    since = kept.since if kept is not None else now
    needed = needed_nodes(replicas, nodes.eligible)
    record = RolloutPrepull(
        fingerprint=fingerprint,
        previous_fingerprint=model_fingerprint(served),
        held=True,
        verified_nodes=nodes.verified,
        needed_nodes=needed,
        since=since,
    )
    verified = f"verified on {nodes.verified}/{needed} node(s)"
    if nodes.verified >= needed:
        note = (
            f"new weights {fingerprint} {verified}: rolling out"
            if nodes.eligible
            else f"no node runs the pre-pull DaemonSet: rolling out new weights {fingerprint}"
        )
        released = record.model_copy(update={"held": False})
        return Hold(None, released, GateEvent("Normal", PREPULLED, note))
    waited = (now - since).total_seconds()
    if waited >= timeout:
        released = record.model_copy(update={"held": False, "timed_out": True})
        note = (
            f"pre-pull of new weights {fingerprint} not done after {timeout}s "
            f"({verified}): rolling out anyway; new replicas on nodes without the copy "
            "download it themselves"
        )
        return Hold(None, released, GateEvent("Warning", TIMED_OUT, note))
    return Hold(served, record)


def prepull_hold(
    pool: InferencePool,
    deployment: ObjView | None,
    previous: InferencePoolStatus,
    replicas: int,
    now: datetime,
    nodes: NodeCounter,
    config: RenderConfig,
) -> Hold:
    """`decide` for one sync of the pool reconciler: the served weights from the live server
    Deployment, the record from the pool's status, the default timeout the progress deadline
    the Deployment is rendered with."""
    if not pool.spec.cache.prepull:
        return Hold(None, None)  # the common case, on every sync: nothing to compute
    key = PoolKey(pool.metadata.namespace, pool.metadata.name)
    return decide(
        pool,
        served=served_model(deployment),
        nodes=nodes(key, model_fingerprint(pool.spec.model)),
        previous=previous.rollout.prepull if previous.rollout is not None else None,
        replicas=replicas,
        default_timeout=progress_deadline_seconds(pool, config),
        now=now,
    )


def prepull_condition(record: RolloutPrepull | None, rolling: bool) -> tuple[str, str] | None:
    """(reason, message) of Progressing (and, while held, Reconciling) that the pre-pull sets:
    while held, PrepullingRevision; while a revision released by the timeout rolls out,
    PrepullTimedOut. None: the conditions stay as the roll-out has them."""
    if record is None:
        return None
    nodes = f"{record.verified_nodes}/{record.needed_nodes} node(s)"
    if record.held:
        return (
            PREPULLING,
            f"new weights {record.fingerprint} verified on {nodes}; the replicas keep weights "
            f"{record.previous_fingerprint} until enough nodes hold the copy "
            f"(held since {record.since.isoformat()})",
        )
    if record.timed_out and rolling:
        return (
            TIMED_OUT,
            f"rolling out new weights {record.fingerprint} after the pre-pull timeout, verified "
            f"on {nodes} then: new replicas elsewhere download them",
        )
    return None


def rollout_with_prepull(
    rollout: RolloutStatus | None,
    record: RolloutPrepull | None,
    *,
    previous: RolloutStatus | None,
    degraded: bool,
) -> RolloutStatus | None:
    """status.rollout with its `prepull` record (a Degraded pool keeps the one it had: its
    children are left as they are)."""
    if rollout is None:
        return None
    if degraded:
        record = previous.prepull if previous is not None else None
    if rollout.prepull == record:
        return rollout
    return rollout.model_copy(update={"prepull": record})
