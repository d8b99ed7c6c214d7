"""`build_children`: every object a pool owns, in a stable order (the operator's one call)."""

from __future__ import annotations

import re

from warmpool.api.resource import POOL_LABEL, POOL_NAME_PATTERN, InferencePool
from warmpool.api.spec import ModelSpec
from warmpool.render.common import Obj, RenderError
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import build_deployment
from warmpool.render.disruption import build_pod_disruption_budget, pdb_name
from warmpool.render.endpoints import (
    ActivatorEndpoints,
    activator_slice_name,
    build_activator_slice,
)
from warmpool.render.headroom import build_headroom_deployment, headroom_name
from warmpool.render.labels import (
    MANAGED_BY_LABEL,
    MAX_POOL_NAME_LENGTH,
    SPEC_HASH_ANNOTATION,
    content_hash,
)
from warmpool.render.prepull import build_prepull_daemonset, prepull_name
from warmpool.render.rbac import build_role_binding, build_service_account
from warmpool.render.service import ServiceMode, build_pods_service, build_public_service

#: (apiVersion, kind) of every child build_children can return: what the operator lists (with
#: `children_selector`) to find children no longer rendered, to delete them.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Service"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("apps/v1", "DaemonSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("apps/v1", "Deployment"),
)

# The pool's name becomes Service names (DNS-1035 labels) and label values.
_POOL_NAME = re.compile(POOL_NAME_PATTERN)


def check_pool_name(name: str) -> None:
    """Refuse a name that cannot name the pool's Services (`<pool>`, `<pool>-pods`)."""
    if len(name) > MAX_POOL_NAME_LENGTH or not _POOL_NAME.match(name):
        raise RenderError(
            f"pool name {name!r} must be a DNS-1035 label of at most {MAX_POOL_NAME_LENGTH} "
            "characters (lower-case letters, digits, '-', starting with a letter): it names the "
            f"Services {name!r} and '{name}-pods'"
        )


def children_selector(pool_name: str) -> str:
    """Label selector of every child of a pool (a `<pool>-pods` EndpointSlice written by
    Kubernetes matches too: filter on the pool's controller owner reference)."""
    return f"{MANAGED_BY_LABEL}=warmpool,{POOL_LABEL}={pool_name}"


def optional_children(pool: InferencePool) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of each child that only some specs or modes render (the activator
    EndpointSlice, the pre-pull DaemonSet, the headroom Deployment): the operator deletes those
    that `build_children` no longer returns."""
    return [
        ("discovery.k8s.io/v1", "EndpointSlice", activator_slice_name(pool)),
        ("apps/v1", "DaemonSet", prepull_name(pool)),
        ("apps/v1", "Deployment", headroom_name(pool)),
        ("policy/v1", "PodDisruptionBudget", pdb_name(pool)),
    ]


def build_children(
    pool: InferencePool,
    config: RenderConfig,
    *,
    replicas: int,
    service_mode: ServiceMode = "direct",
    activator_endpoints: ActivatorEndpoints | None = None,
    warm_floor: int = 0,
    replace_revision: str | None = None,
    kept_model: ModelSpec | None = None,
) -> list[Obj]:
    """The pool's children, in apply order: identity, routing, helpers, then the replicas.

    Which objects appear depends on the spec and the mode: the pre-pull DaemonSet with
    spec.cache.prepull, the headroom Deployment with spec.headroom.placeholders > 0, the
    activator EndpointSlice in `activator` mode, the PodDisruptionBudget while `warm_floor` (the
    effective floor now) is above 0; the server Deployment replaces in place while its template
    is `replace_revision` (strategy Auto fell back for it), and keeps the weights `kept_model`
    while a new revision of them is pre-pulled (controller/prepull/gate.py; the pre-pull
    DaemonSet fetches the spec's). The operator deletes its children that are no longer listed.
    Each object carries `warmpool.dev/spec-hash`, a hash of the rest of it.
    """
    check_pool_name(pool.metadata.name)
    if replicas < 0:
        raise RenderError(f"replicas must be >= 0, not {replicas}")
    if service_mode == "activator" and activator_endpoints is None:
        raise RenderError("service_mode 'activator' needs activator_endpoints")

    children: list[Obj] = [
        build_service_account(pool),
        build_role_binding(pool, config),
        build_public_service(pool, mode=service_mode),
        build_pods_service(pool),
    ]
    if service_mode == "activator" and activator_endpoints is not None:
        children.append(build_activator_slice(pool, activator_endpoints))
    if pool.spec.cache.prepull:
        children.append(build_prepull_daemonset(pool, config))
    if pool.spec.headroom.placeholders > 0:
        children.append(build_headroom_deployment(pool, config))
    budget = build_pod_disruption_budget(pool, warm_floor=warm_floor)
    if budget is not None:
        children.append(budget)
    served = pool
    if kept_model is not None:
        served = pool.model_copy(
            update={"spec": pool.spec.model_copy(update={"model": kept_model})}
        )
    children.append(
        build_deployment(served, config, replicas=replicas, replace_revision=replace_revision)
    )
    for child in children:
        child["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = content_hash(child)
    return children
