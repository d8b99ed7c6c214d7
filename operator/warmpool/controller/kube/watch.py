"""The watch cache: what the operator's watches have seen of pools, their Deployments and server
pods, and the activator's endpoints (an informer's store, in client-go's terms).

kopf watches these kinds anyway (the handlers need the streams); keeping the last object of each
here lets a pool be refreshed with zero reads, by either reconciler. Objects are slimmed to the
fields the operator uses, deep-copied (kopf's bodies are live views), and replaced only by a
newer resourceVersion, so a write's response and a late watch event cannot overwrite each other
out of order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warmpool.contract import Obj, PoolKey, owner_pool_key, pool_key
from warmpool.controller.kube.client import FIELD_MANAGER
from warmpool.render.deployment import server_deployment_name
from warmpool.render.disruption import COLD_START_HINTS
from warmpool.render.labels import (
    MODEL_SPEC_ANNOTATION,
    REVISION_ANNOTATION,
    SPEC_HASH_ANNOTATION,
)

#: Pod annotations the operator reads: the template revision (status.rollout) and the
#: cold-start hints it removes once the pod is warm.
POD_ANNOTATIONS = frozenset({REVISION_ANNOTATION, *COLD_START_HINTS})
#: Key of a slim Deployment listing the other field managers of its pod template.
TEMPLATE_EDITORS = "templateEditors"

#: The type of a watch event that removed its object.
DELETED = "DELETED"


def resource_version(obj: Mapping[str, Any] | None) -> int | None:
    """The resourceVersion as a number, when it is one (etcd revisions are)."""
    value = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def is_newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether `candidate` may replace `current` (unknown versions: yes, latest wins)."""
    new, old = resource_version(candidate), resource_version(current)
    return new is None or old is None or new >= old


def slim_pod(pod: Mapping[str, Any]) -> Obj:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    slim: Obj = copy.deepcopy(
        {
            "metadata": {
                key: meta[key]
                for key in (
                    "name",
                    "namespace",
                    "uid",
                    "labels",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "resourceVersion",
                )
                if key in meta
            },
            "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
            "status": {
                key: status[key]
                for key in (
                    "phase",
                    "conditions",
                    "initContainerStatuses",
                    "podIP",
                    "nominatedNodeName",  # a preemption in flight (pool/fallback.py)
                )
                if key in status
            },
        }
    )
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in POD_ANNOTATIONS}
    if annotations:
        slim["metadata"]["annotations"] = annotations
    return slim


def slim_pool(pool: Mapping[str, Any]) -> Obj:
    """A deep copy of a pool without metadata.managedFields, which the operator never reads
    and which is most of a pool's bytes once three managers (the user, kopf, the operator's
    status) have written it: copying it on every event was CPU and keeping it 1,000 times was
    memory (benchmarks/scale.py)."""
    meta = {k: v for k, v in (pool.get("metadata") or {}).items() if k != "managedFields"}
    return copy.deepcopy({**pool, "metadata": meta})


def slim_deployment(deployment: Mapping[str, Any]) -> Obj:
    """What the operator reads of a Deployment: its identity, spec-hash and replicas. Keeping
    whole Deployments (a pod template each) and deep-copying them on every status event was
    7% of the operator's CPU while 300 pools converged (py-spy, benchmarks/scale.py)."""
    meta = deployment.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    slim: Obj = {
        "apiVersion": deployment.get("apiVersion", "apps/v1"),
        "kind": deployment.get("kind", "Deployment"),
        "metadata": {
            key: copy.deepcopy(meta[key])
            for key in (
                "name",
                "namespace",
                "uid",
                "labels",
                "ownerReferences",
                "deletionTimestamp",
                "resourceVersion",
            )
            if key in meta
        },
        "spec": {"replicas": (deployment.get("spec") or {}).get("replicas")},
    }
    if "generation" in meta:
        slim["metadata"]["generation"] = meta["generation"]
    # The spec-hash, and the model spec the pre-pull gate reads (controller/prepull/gate.py).
    kept = {
        k: annotations[k] for k in (SPEC_HASH_ANNOTATION, MODEL_SPEC_ANNOTATION) if k in annotations
    }
    if kept:
        slim["metadata"]["annotations"] = kept
    template = (deployment.get("spec") or {}).get("template") or {}
    revision = ((template.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if revision:
        slim["spec"]["template"] = {"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}
    editors = template_editors(deployment)
    if editors:
        slim[TEMPLATE_EDITORS] = editors  # not a Kubernetes field: the slim copy's own
    status = deployment.get("status") or {}
    progressing = [
        copy.deepcopy(c) for c in status.get("conditions") or [] if c.get("type") == "Progressing"
    ]
    slim["status"] = {
        key: status[key] for key in ("observedGeneration", "updatedReplicas") if key in status
    } | ({"conditions": progressing} if progressing else {})
    return slim


def template_editors(deployment: Mapping[str, Any]) -> list[str]:
    """Field managers other than the operator that own fields of the pod template: someone
    edited it (`kubectl edit`, `kubectl rollout undo`, `kubectl set image`, a patch).

    Read from the object itself (metadata.managedFields), so an edit is seen whenever it was
    made, also while the operator was down; the spec-hash annotation alone cannot see it (an
    edit keeps the annotation)."""
    editors: list[str] = []
    for entry in (deployment.get("metadata") or {}).get("managedFields") or []:
        manager = str(entry.get("manager") or "")
        if manager == FIELD_MANAGER or entry.get("subresource"):
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:template" in spec and manager not in editors:
            editors.append(manager)
    return sorted(editors)


@dataclass(frozen=True)
class Endpoint:
    """One ready activator pod."""

    ip: str
    ports: tuple[tuple[str, int], ...]


class WatchCache:
    """The latest pools, Deployments, server pods and activator EndpointSlices seen."""

    def __init__(self) -> None:
        self._pools: dict[PoolKey, Obj] = {}
        # Every Deployment labelled with a pool (its server Deployment, its headroom
        # placeholders), slimmed, by (namespace, name).
        self._deployments: dict[tuple[str, str], Obj] = {}
        self._pods: dict[PoolKey, dict[str, Obj]] = {}
        self._activator_slices: dict[str, Obj] = {}

    # pools
    def observe_pool(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey:
        key = pool_key(body)
        if event_type == DELETED:
            self._pools.pop(key, None)
        elif is_newer(body, self._pools.get(key)):
            self._pools[key] = slim_pool(body)
        return key

    def pool(self, key: PoolKey) -> Obj | None:
        return self._pools.get(key)

    def pool_keys(self) -> list[PoolKey]:
        return list(self._pools)

    # deployments
    def observe_deployment(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey | None:
        """Remember a pool's Deployment; the pool's key when it is the pool's server Deployment
        (whose changes are news for the pool's status), else None."""
        key = owner_pool_key(body)
        if key is None:
            return None
        name = str((body.get("metadata") or {}).get("name"))
        where = (key[0], name)
        if event_type == DELETED:
            self._deployments.pop(where, None)
        elif is_newer(body, self._deployments.get(where)):
            self._deployments[where] = slim_deployment(body)
        return key if name == server_deployment_name(key.name) else None

    def deployment(self, key: PoolKey) -> Obj | None:
        """The pool's server Deployment."""
        return self._deployments.get((key[0], server_deployment_name(key[1])))

    def deployment_named(self, namespace: str, name: str) -> Obj | None:
        """Any pool-labelled Deployment (e.g. `<pool>-headroom`); None when none was seen."""
        return self._deployments.get((namespace, name))

    # pods
    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey | None:
        key = owner_pool_key(body)
        if key is None:
            return None
        name = str((body.get("metadata") or {}).get("name"))
        pods = self._pods.setdefault(key, {})
        if event_type == DELETED:
            pods.pop(name, None)
            if not pods:
                del self._pods[key]
        elif is_newer(body, pods.get(name)):
            pods[name] = slim_pod(body)
        return key

    def pods(self, key: PoolKey) -> list[Obj]:
        return list(self._pods.get(key, {}).values())

    # activator
    def observe_activator_slice(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = str((body.get("metadata") or {}).get("name"))
        if event_type == DELETED:
            self._activator_slices.pop(name, None)
        elif is_newer(body, self._activator_slices.get(name)):
            self._activator_slices[name] = copy.deepcopy(dict(body))

    def activator_endpoints(self) -> list[Endpoint]:
        """Ready activator pods, sorted (so the rendered EndpointSlice is stable)."""
        found: dict[str, Endpoint] = {}
        for slice_ in self._activator_slices.values():
            ports = tuple(
                sorted(
                    (str(port.get("name") or ""), int(port["port"]))
                    for port in slice_.get("ports") or []
                    if port.get("port") is not None
                )
            )
            for endpoint in slice_.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                for address in endpoint.get("addresses") or []:
                    found[address] = Endpoint(ip=str(address), ports=ports)
        return [found[ip] for ip in sorted(found)]
