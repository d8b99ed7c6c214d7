"""Pieces every child shares: metadata with the owner reference, restricted security contexts,
placement (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from warmpool.api.resource import API_VERSION, KIND, InferencePool
from warmpool.contract import Obj as Obj  # render's modules import it from here
from warmpool.render.config import RenderConfig, Resources
from warmpool.render.labels import Component, object_labels


class RenderError(ValueError):
    """The pool cannot be rendered into valid Kubernetes objects (e.g. its name is too long)."""


def owner_reference(pool: InferencePool) -> Obj:
    """The pool as the controlling owner: its children are garbage-collected with it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": pool.metadata.name,
        "uid": pool.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    pool: InferencePool, name: str, component: Component, *, labels: Mapping[str, str] | None = None
) -> Obj:
    """Metadata of a namespaced child: name, namespace, labels, owner reference."""
    return {
        "name": name,
        "namespace": pool.metadata.namespace,
        "labels": object_labels(pool.metadata.name, component, **(labels or {})),
        "ownerReferences": [owner_reference(pool)],
    }


def pod_security_context(config: RenderConfig) -> Obj:
    """The restricted Pod Security Standard, at pod level."""
    return {
        "runAsNonRoot": True,
        "runAsUser": config.run_as_user,
        "runAsGroup": config.run_as_group,
        "fsGroup": config.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(*, read_only_root: bool = True) -> Obj:
    """The restricted Pod Security Standard, repeated per container (admission checks both)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: Resources) -> Obj:
    """A ResourceRequirements dict, keys sorted for stable output."""
    return {kind: dict(sorted(values.items())) for kind, values in sorted(spec.items()) if values}


def node_selector(pool: InferencePool) -> dict[str, str]:
    """The spec's node selector, plus the GPU product label when one is required."""
    server = pool.spec.server
    selector = dict(server.node_selector)
    if server.gpu.product:
        selector["nvidia.com/gpu.product"] = server.gpu.product
    return dict(sorted(selector.items()))


def tolerations(pool: InferencePool) -> list[Obj]:
    """The spec's tolerations in wire form."""
    return [
        t.model_dump(by_alias=True, exclude_none=True, mode="json")
        for t in pool.spec.server.tolerations
    ]


def gpu_resources(pool: InferencePool) -> dict[str, str]:
    """`{<resourceName>: <count>}` for one replica; empty on CPU (count 0)."""
    gpu = pool.spec.server.gpu
    return {gpu.resource_name: str(gpu.count)} if gpu.count > 0 else {}


def placement(pool: InferencePool) -> Obj:
    """nodeSelector and tolerations of a pod that must land where the replicas can."""
    out: Obj = {}
    selector = node_selector(pool)
    if selector:
        out["nodeSelector"] = selector
    tols = tolerations(pool)
    if tols:
        out["tolerations"] = tols
    return out


def image_pull_secrets(pool: InferencePool) -> list[Obj]:
    return [{"name": name} for name in pool.spec.server.image_pull_secrets]
