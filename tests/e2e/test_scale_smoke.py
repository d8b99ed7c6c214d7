"""A small run of benchmarks/scale.py's machinery as a test: 20 pools converge, and neither idle
refresh ticks nor an operator restart write anything; the restarted operator learns the pools'
children from LISTs, not from a GET per child. Behaviour only: the timings are the benchmark's.

Real: the control plane (apiserver with its audit log, controller-manager, scheduler, etcd) and
`warmpool operator` as its own process. Mocked because they cannot exist here: kubelets and
GPUs (KWOK; these scale-to-zero pools run no pod).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    describe_writes,
    install_crd,
    operator_writes,
)

from warmpool.api.resource import InferencePool
from warmpool.envtest import LocalCluster, poll_until
from warmpool.render.children import build_children
from warmpool.render.config import RenderConfig

POOLS = 20
INTERVAL = "1"
#: Kinds the operator learns by LIST (resource names in the audit log).
LISTED = frozenset({"serviceaccounts", "rolebindings", "services", "endpointslices", "daemonsets"})


def pool(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": f"s3://models/{name}", "revision": "1"},
            "server": {"gpu": {"count": 1}},
            "warmup": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]},
            "scaling": {"warmFloor": 0, "maxReplicas": 2, "scaleToZeroAfterSeconds": 600},
        },
    }


def expected_children(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    rendered = build_children(InferencePool.model_validate(manifest), RenderConfig(), replicas=0)
    return {(str(c["kind"]), str(c["metadata"]["name"])) for c in rendered}


def existing_children(api: kubernetes.client.ApiClient, namespace: str) -> set[tuple[str, str]]:
    selector = "app.kubernetes.io/managed-by=warmpool"
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    found: set[tuple[str, str]] = set()
    for kind, listing in (
        ("ServiceAccount", core.list_namespaced_service_account),
        ("Service", core.list_namespaced_service),
        ("RoleBinding", rbac.list_namespaced_role_binding),
        ("Deployment", apps.list_namespaced_deployment),
    ):
        found |= {
            (kind, item.metadata.name) for item in listing(namespace, label_selector=selector).items
        }
    return found


def converged(
    api: kubernetes.client.ApiClient, namespace: str, wanted: set[tuple[str, str]]
) -> bool:
    pools = kubernetes.client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )["items"]
    statuses_current = len(pools) == POOLS and all(
        (p.get("status") or {}).get("observedGeneration") == p["metadata"]["generation"]
        and (p.get("status") or {}).get("conditions")
        for p in pools
    )
    return statuses_current and wanted <= existing_children(api, namespace)


def wait_ticks(operator: OperatorProcess, ticks: int) -> None:
    """Until every pool was refreshed by `ticks` more ticks."""
    start = operator.metric("warmpool_reconcile_total", trigger="tick")
    poll_until(
        lambda: (
            operator.metric("warmpool_reconcile_total", trigger="tick") >= start + ticks * POOLS
        ),
        what=f"{ticks} refresh ticks of {POOLS} pools",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )


def test_pools_converge_and_idle_resync_and_restart_write_nothing(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    install_crd(cluster, tmp_path)
    kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
    extra = ["--namespace", namespace, "--scaling-interval", INTERVAL]
    operator = OperatorProcess(cluster, kubeconfig, cluster.logs_dir, extra=extra)
    try:
        manifests = [pool(f"pool-{i:02d}", namespace) for i in range(POOLS)]
        custom = kubernetes.client.CustomObjectsApi(k8s)
        for manifest in manifests:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        wanted = set().union(*(expected_children(m) for m in manifests))
        poll_until(
            lambda: converged(k8s, namespace, wanted),
            what=f"{POOLS} pools with every child and a current status",
            timeout=TIMEOUT,
            describe=operator.log_tail,
        )
        wait_ticks(operator, 1)  # the last status writes' own events have come back
        mark = len(cluster.audit_events())
        wait_ticks(operator, 2)
        idle = operator_writes(cluster, OPERATOR_USER, mark)
        assert idle == [], describe_writes(idle)
        operator.stop()
        mark = len(cluster.audit_events())
        operator = OperatorProcess(cluster, kubeconfig, cluster.logs_dir, extra=extra)
        poll_until(
            lambda: operator.metric("warmpool_reconcile_total", trigger="resume") >= POOLS,
            what=f"the restarted operator resumed {POOLS} pools",
            timeout=TIMEOUT,
            describe=operator.log_tail,
        )
        wait_ticks(operator, 2)
        events = cluster.audit_events()[mark:]
        after_restart = operator_writes(cluster, OPERATOR_USER, mark)
        assert after_restart == [], describe_writes(after_restart)
        mine = [e for e in events if (e.get("user") or {}).get("username") == OPERATOR_USER]
        gets = [
            e
            for e in mine
            if e.get("verb") == "get" and (e.get("objectRef") or {}).get("resource") in LISTED
        ]
        lists = {
            (e.get("objectRef") or {}).get("resource") for e in mine if e.get("verb") == "list"
        }
        assert gets == [], describe_writes(gets)  # no GET per child: ...
        assert lists >= LISTED  # ... one LIST per kind instead
    finally:
        operator.stop()
