"""Which nodes hold a verified pre-pulled copy of a pool's weights, and what to write (pure).

A pre-pull pod (DaemonSet `<pool>-prepull`) becomes Ready only after its `prefetch` init
container exited 0, and the prefetcher exits 0 only once every file of the copy is verified
(sha256 when the spec gives checksums, sizes and the cache manifest otherwise); its pause
container then keeps the copy in use. So "Ready pre-pull pod on node N carrying fingerprint F"
means "N holds a verified copy of F". The pod carries F in its `warmpool.dev/model-fingerprint`
annotation (rendered from the pool's model spec).

From those pods and the pool, this module decides the node labels
`prepull.warmpool.dev/<sha1(ns/pool)[:16]>=<fingerprint>` that should exist, the patches that
turn the labels observed on nodes into them, whether the pool needs the finalizer that
guarantees their cleanup (node labels are cluster-scoped: owner references cannot remove them),
and `status.cachedNodes`. No client, no kopf: unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from warmpool.api.resource import InferencePool
from warmpool.contract import GROUP, ObjView, PoolKey, pool_key
from warmpool.controller.pool.coldstart import condition_true
from warmpool.controller.pool.validate import validate_pool
from warmpool.controller.prepull.gate import PrepullNodes
from warmpool.render.labels import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MODEL_FINGERPRINT_ANNOTATION,
    PREPULL,
    model_fingerprint,
    prepull_node_label_key,
)

#: Kept on a pool while any node carries its pre-pull label, so deleting the pool (or turning
#: pre-pull off while the operator is down) never leaves labels that attract nothing.
FINALIZER = f"{GROUP}/prepull-node-labels"

#: Labels every pre-pull pod carries (render/prepull.py); the operator's pod watch filters on them.
PREPULL_POD_LABELS: Mapping[str, str] = {COMPONENT_LABEL: PREPULL, MANAGED_BY_LABEL: "warmpool"}


@dataclass(frozen=True)
class PrepullPod:
    """What one pre-pull pod says about its node."""

    uid: str
    node: str | None
    fingerprint: str | None
    ready: bool

    @property
    def verified(self) -> bool:
        """Ready on a node: the copy of `fingerprint` there is verified."""
        return self.ready and self.node is not None and self.fingerprint is not None


def prepull_pod_key(pod: ObjView) -> PoolKey | None:
    """The pool a pre-pull pod belongs to (`app.kubernetes.io/instance` in its namespace), or
    None when the pod is not a warmpool pre-pull pod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(key) != value for key, value in PREPULL_POD_LABELS.items()):
        return None
    pool = labels.get(INSTANCE_LABEL)
    if not pool:
        return None
    return PoolKey(str(meta.get("namespace") or "default"), str(pool))


def parse_prepull_pod(pod: ObjView) -> PrepullPod:
    """The pod's node, fingerprint and readiness; a terminating pod counts as not Ready (its
    copy may be evicted as soon as the pause container stops holding it)."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    fingerprint = annotations.get(MODEL_FINGERPRINT_ANNOTATION)
    ready = (
        meta.get("deletionTimestamp") is None
        and (pod.get("status") or {}).get("phase") == "Running"
        and condition_true(pod, "Ready")
    )
    return PrepullPod(
        uid=str(meta.get("uid") or meta.get("name") or ""),
        node=str(node) if node else None,
        fingerprint=str(fingerprint) if fingerprint else None,
        ready=ready,
    )


@dataclass(frozen=True)
class PoolView:
    """What the pre-pull logic needs of a pool body."""

    key: PoolKey
    label_key: str
    fingerprint: str | None
    """The current weights' fingerprint when pre-pull is on (and the pool lives), else None:
    no node should then carry the label."""
    valid: bool
    """False when the spec cannot be parsed: labels are then left exactly as they are (as the
    reconciler leaves every child of a Degraded pool), unless the pool is being deleted."""
    deleting: bool
    has_finalizer: bool
    cached_nodes: int | None
    """status.cachedNodes as the pool holds it (None when unset)."""
    held_fingerprint: str | None = None
    """While a roll-out of new weights is held for their pre-pull (status.rollout.prepull),
    the weights the replicas keep: nodes still holding a verified copy of them keep their
    label, so replicas started meanwhile (a scale-up) still find them."""


def pool_view(body: ObjView) -> PoolView:
    """Parse a pool body (a watch event's object) into a PoolView."""
    meta = body.get("metadata") or {}
    key = pool_key(body)
    deleting = meta.get("deletionTimestamp") is not None
    status = body.get("status") or {}
    cached = status.get("cachedNodes")
    held = (status.get("rollout") or {}).get("prepull") or {}
    fingerprint: str | None = None
    # The same validation as the reconciler's, so both agree on what a Degraded pool is.
    pool = validate_pool(body)
    valid = isinstance(pool, InferencePool)
    if isinstance(pool, InferencePool) and pool.spec.cache.prepull and not deleting:
        fingerprint = model_fingerprint(pool.spec.model)
    return PoolView(
        key=key,
        label_key=prepull_node_label_key(*key),
        fingerprint=fingerprint,
        valid=valid,
        deleting=deleting,
        has_finalizer=FINALIZER in (meta.get("finalizers") or []),
        cached_nodes=int(cached) if isinstance(cached, int) else None,
        held_fingerprint=(
            str(held.get("previousFingerprint") or "") or None
            if fingerprint is not None and held.get("held") is True
            else None
        ),
    )


def desired_node_labels(
    pods: Iterable[PrepullPod], fingerprint: str | None, held: str | None = None
) -> dict[str, str]:
    """Node -> label value: every node with a Ready pre-pull pod of the current fingerprint;
    while a roll-out is held for its pre-pull, also the nodes whose pod still holds the `held`
    weights (the ones the Deployment's affinity asks for until the release).

    Nodes whose pod is gone, not Ready yet, terminating, or holds another fingerprint get no
    label: the Deployment's preferred affinity matches the fingerprint it serves only.
    """
    if fingerprint is None:
        return {}
    wanted = {fingerprint} if held is None else {fingerprint, held}
    labels: dict[str, str] = {}
    for pod in pods:
        if not pod.verified or pod.fingerprint not in wanted or pod.node is None:
            continue
        if labels.get(pod.node) != fingerprint:  # the current weights win on a node
            labels[pod.node] = str(pod.fingerprint)
    return labels


def observed_node_labels(nodes: Iterable[ObjView], label_key: str) -> dict[str, str]:
    """Node -> value of `label_key`, for the nodes that carry it."""
    found: dict[str, str] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        value = (meta.get("labels") or {}).get(label_key)
        if value is not None and meta.get("name"):
            found[str(meta["name"])] = str(value)
    return found


@dataclass(frozen=True)
class NodeLabelPatch:
    """Set (`value`) or remove (None) the pool's label on one node."""

    node: str
    value: str | None

    def merge_patch(self, label_key: str) -> dict[str, Any]:
        """The node's JSON merge patch (a null value deletes the label)."""
        return {"metadata": {"labels": {label_key: self.value}}}


def label_patches(observed: Mapping[str, str], desired: Mapping[str, str]) -> list[NodeLabelPatch]:
    """The patches that turn `observed` into `desired`, nothing for a node already right.

    Removals come first: a node that stops holding the current copy must stop attracting
    replicas before new nodes start to.
    """
    removals = [NodeLabelPatch(node, None) for node in sorted(observed) if node not in desired]
    updates = [
        NodeLabelPatch(node, value)
        for node, value in sorted(desired.items())
        if observed.get(node) != value
    ]
    return removals + updates


FinalizerChange = Literal["add", "remove"] | None


def finalizer_change(has_finalizer: bool, desired: Mapping[str, str]) -> FinalizerChange:
    """ "add" before the first label is written; "remove" once no label is wanted (after the
    removals were applied); None otherwise. A pool carries the finalizer only while it has
    labelled nodes."""
    if desired and not has_finalizer:
        return "add"
    if not desired and has_finalizer:
        return "remove"
    return None


def finalizers_after(current: Sequence[str], change: FinalizerChange) -> list[str]:
    """The pool's finalizer list after `change` (order of the others kept)."""
    items = [item for item in current if item != FINALIZER]
    if change == "add" or (change is None and FINALIZER in current):
        items.append(FINALIZER)
    return items


def prepull_nodes(pods: Iterable[PrepullPod], fingerprint: str) -> PrepullNodes:
    """How many nodes hold a verified copy of `fingerprint`, of how many run a pre-pull pod of
    the pool (any fingerprint, Ready or not; a terminating one too, until it is gone): what the
    roll-out gate waits for (controller/prepull/gate.py)."""
    pods = list(pods)
    verified = desired_node_labels(pods, fingerprint)
    eligible = {pod.node for pod in pods if pod.node is not None}
    return PrepullNodes(verified=len(verified), eligible=len(eligible))


def cached_node_count(labels: Mapping[str, str], fingerprint: str | None) -> int:
    """`status.cachedNodes`: nodes labelled with the CURRENT fingerprint (0 with pre-pull off).

    Pass the node labels as they are after the patches were applied (`desired` once every patch
    succeeded, or what a node list reports)."""
    if fingerprint is None:
        return 0
    return sum(1 for value in labels.values() if value == fingerprint)
