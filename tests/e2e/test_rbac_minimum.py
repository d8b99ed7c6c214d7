"""Least privilege, measured: the operator under the chart's ServiceAccount (a real `helm
install`, test_operator_helm.py's fixtures) goes through create, update, scale-to-zero, wake,
pre-pull, headroom and delete; every request it made is read back from the apiserver's audit log
and compared with the chart's grants, both ways:

- every (group, resource, verb) it used is granted, and RBAC denied nothing (no 403);
- every granted (group, resource, verb) was used, or is listed in NOT_EXERCISED with the reason
  it is needed although this run does not show it as a request of its own.

Real: helm, every Kubernetes component, RBAC, the audit log, `warmpool operator` as a process
with the ServiceAccount's token. Mocked: kubelets and GPUs (KWOK), and the warm-up sidecar (the
test opens the readiness gate through pods/status, as test_operator_helm.py does).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kubernetes
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    condition,
    get_pool,
    open_gate,
    pool_pods,
)
from test_operator_helm import FULLNAME, chart_operator, release_namespace  # noqa: F401

from warmpool.envtest import LocalCluster, poll_until

Use = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

_FALLBACK_READ = (
    "the applier reads a child one by one (GET) only when the periodic metadata LIST of "
    "children fails or lapses (controller/kube/apply.py keep_primed); a healthy run never does"
)
#: Granted, needed, but not a request of its own in this run -- and why.
NOT_EXERCISED: dict[Use, str] = {
    ("warmpool.dev", "inferencepools/finalizers", "update"): (
        "an admission check, not a request: OwnerReferencesPermissionEnforcement asks RBAC "
        "for it when a child with blockOwnerDeletion is created (children are created here)"
    ),
    ("rbac.authorization.k8s.io", "clusterroles", "bind"): (
        "an authorization check, not a request: the RBAC escalation check asks for it when "
        "the `<pool>-warmup` RoleBinding is created (it is created here)"
    ),
    ("", "events", "create"): (
        "kopf posts core/v1 Events for handler warnings and errors only (posting level "
        "WARNING); a healthy run has none (test_hostile_operator.py's Degraded pools do)"
    ),
    ("apps", "deployments", "get"): _FALLBACK_READ,
    ("apps", "daemonsets", "get"): _FALLBACK_READ,
    ("", "services", "get"): _FALLBACK_READ,
    ("discovery.k8s.io", "endpointslices", "get"): _FALLBACK_READ,
    ("", "serviceaccounts", "get"): _FALLBACK_READ,
    ("rbac.authorization.k8s.io", "rolebindings", "get"): _FALLBACK_READ,
    ("policy", "poddisruptionbudgets", "get"): _FALLBACK_READ,
}
#: Grants another part of the chart may add that this run (one replica) cannot show.
NOT_EXERCISED_IF_GRANTED: dict[str, str] = {
    "coordination.k8s.io/leases": "leader election of the HA mode (this run is one replica)",
}


def _pool(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/tiny"},
            "cache": {"kind": "node", "prepull": True},
            "headroom": {"placeholders": 1},
            "scaling": {"warmFloor": 1, "maxReplicas": 2},
        },
    }


def used_by(cluster: LocalCluster, user: str) -> dict[Use, int]:
    """(group, resource[/sub], verb) -> how many requests `user` made, from the audit log.

    A server-side apply that creates its object is a PATCH answered 201: the apiserver checks
    `create` too (not a request of its own), so it counts as a use of `create`.
    """
    used: dict[Use, int] = {}
    for event in cluster.audit_events():
        if (event.get("user") or {}).get("username") != user:
            continue
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/api, /apis): no grant needed
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        verbs = [str(event.get("verb"))]
        if verbs == ["patch"] and (event.get("responseStatus") or {}).get("code") == 201:
            verbs.append("create")
        for verb in verbs:
            key = (ref.get("apiGroup", ""), resource, verb)
            used[key] = used.get(key, 0) + 1
    return used


#: Cluster-scoped resources (granted by `<fullname>-cluster`); every other resource is
#: namespaced, and the operator may touch it across namespaces only to list and watch.
CLUSTER_SCOPED = {"nodes", "customresourcedefinitions", "namespaces"}


def cross_namespace_uses(cluster: LocalCluster, user: str) -> set[Use]:
    """Requests of `user` on namespaced resources without a namespace (all namespaces)."""
    found: set[Use] = set()
    for event in cluster.audit_events():
        ref = event.get("objectRef") or {}
        if (event.get("user") or {}).get("username") != user or not ref.get("resource"):
            continue
        if ref["resource"] not in CLUSTER_SCOPED and not ref.get("namespace"):
            found.add((ref.get("apiGroup", ""), ref["resource"], str(event.get("verb"))))
    return found


def denied(cluster: LocalCluster, user: str) -> list[str]:
    return [
        f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource')} {e.get('requestURI')}"
        for e in cluster.audit_events()
        if (e.get("user") or {}).get("username") == user
        and (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
    ]


def chart_grants(api: kubernetes.client.ApiClient) -> dict[Use, str]:
    """(group, resource, verb) -> role name, over the operator's ClusterRoles as installed."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    grants: dict[Use, str] = {}
    for name in (FULLNAME, f"{FULLNAME}-cluster"):
        for rule in rbac.read_cluster_role(name).rules or []:
            for group in rule.api_groups or []:
                for resource in rule.resources or []:
                    for verb in rule.verbs:
                        grants[(group, resource, verb)] = name
    return grants


def _wait(what: str, probe: Callable[[], Any], operator: OperatorProcess) -> Any:
    return poll_until(probe, what=what, timeout=TIMEOUT, describe=operator.log_tail)


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_operator_uses_exactly_the_chart_grants(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    chart_operator: tuple[OperatorProcess, str],  # noqa: F811  (the imported fixture)
) -> None:
    operator, user = chart_operator
    custom = kubernetes.client.CustomObjectsApi(k8s)
    apps = kubernetes.client.AppsV1Api(k8s)
    discovery = kubernetes.client.DiscoveryV1Api(k8s)
    name = "rbac"

    def patch(body: dict[str, Any]) -> None:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)

    # create: every child, pre-pull (DaemonSet, node labels) and headroom (placeholders).
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _pool(name, namespace)
    )
    for child, read in (
        ("Deployment", lambda: apps.read_namespaced_deployment(name, namespace)),
        ("headroom", lambda: apps.read_namespaced_deployment(f"{name}-headroom", namespace)),
        ("pre-pull", lambda: apps.read_namespaced_daemon_set(f"{name}-prepull", namespace)),
        ("activator slice", lambda: discovery.read_namespaced_endpoint_slice(
            f"{name}-activator", namespace)),
    ):  # fmt: skip
        _wait(f"{child} of {name}", lambda read=read: _exists(read), operator)
    _wait(
        "a pre-pulled node (node label written)",
        lambda: (get_pool(k8s, namespace, name).get("status") or {}).get("cachedNodes", 0) >= 1,
        operator,
    )

    # warm: the gate opens, the Service routes to the pod, the activator slice goes.
    pod = _wait("a replica pod", lambda: (pool_pods(k8s, namespace, name) or [None])[0], operator)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    open_gate(k8s, namespace, pod["metadata"]["name"], now)
    _wait(
        "activator slice deleted once warm",
        lambda: (
            not _exists(
                lambda: discovery.read_namespaced_endpoint_slice(f"{name}-activator", namespace)
            )
        ),
        operator,
    )

    # update: headroom and pre-pull off -> their children are deleted, node labels removed.
    patch({"spec": {"headroom": {"placeholders": 0}, "cache": {"prepull": False}}})
    _wait(
        "headroom and pre-pull removed",
        lambda: (
            not _exists(lambda: apps.read_namespaced_daemon_set(f"{name}-prepull", namespace))
            and not _exists(lambda: apps.read_namespaced_deployment(f"{name}-headroom", namespace))
        ),
        operator,
    )

    # scale to zero: `kubectl scale --replicas=0` (spec.replicas through the scale subresource:
    # without Prometheus the built-in scaler holds replicas, by design), then hand replicas back
    # to the built-in scaler at zero: the public Service routes to the activator again.
    scale = {"spec": {"replicas": 0}}
    custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, name, scale)
    _wait(
        "scaled to zero",
        lambda: apps.read_namespaced_deployment(name, namespace).spec.replicas == 0,
        operator,
    )
    patch({"spec": {"replicas": None, "scaling": {"warmFloor": 0}}})
    _wait(
        "activator slice back at zero",
        lambda: _exists(
            lambda: discovery.read_namespaced_endpoint_slice(f"{name}-activator", namespace)
        ),
        operator,
    )
    wake = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    patch({"metadata": {"annotations": {"warmpool.dev/wake-requested-at": wake}}})
    _wait(
        "woken",
        lambda: (apps.read_namespaced_deployment(name, namespace).spec.replicas or 0) >= 1,
        operator,
    )
    _wait(
        "status after the wake",
        lambda: condition(get_pool(k8s, namespace, name), "Ready") is not None,
        operator,
    )

    # delete: the operator lets go (finalizers), the garbage collector removes the children.
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    _wait(
        "pool deleted",
        lambda: not _exists(lambda: get_pool(k8s, namespace, name)),
        operator,
    )

    assert denied(cluster, user) == [], "RBAC denied the operator"
    used = used_by(cluster, user)
    grants = chart_grants(k8s)
    ungranted = sorted(u for u in used if u not in grants)
    assert ungranted == [], f"used without a grant: {ungranted}"
    unused = sorted(
        g
        for g in grants
        if g not in used
        and g not in NOT_EXERCISED
        and f"{g[0]}/{g[1]}" not in NOT_EXERCISED_IF_GRANTED
    )
    assert unused == [], f"granted, never used, not listed in NOT_EXERCISED: {unused}"
    # NOT_EXERCISED lists only grants that exist and were indeed not requests here.
    assert set(NOT_EXERCISED) <= set(grants)
    assert not set(NOT_EXERCISED) & set(used), sorted(set(NOT_EXERCISED) & set(used))
    # Writes are always namespaced, so per-namespace RoleBindings (watchNamespaces) cover them;
    # only kopf's list/watch spans all namespaces in cluster-wide mode.
    wide = cross_namespace_uses(cluster, user)
    assert wide and {verb for _, _, verb in wide} <= {"list", "watch"}, sorted(wide)
