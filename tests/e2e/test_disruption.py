"""Disruption on the real control plane: the pool's PodDisruptionBudget against the real
eviction API, the disruption controller and `kubectl drain`; the cold-start autoscaler hints
lifted once a replica is warm; termination grace and drain from the spec; a hand edit of the
pod template reverted and reported, then no write on idle resyncs.

Mocked: kubelets and GPUs (KWOK nodes, one GPU each), and the warm-up sidecar (the test opens
the warm gate through pods/status as the sidecar does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from node_support import OwnGpuNodes
from operator_support import (
    OPERATOR_USER,
    TIMEOUT,
    OperatorProcess,
    condition,
    describe_writes,
    kubectl,
    operator_writes,
    pool_pods,
)
from pool_support import operator_fixture  # noqa: F401  (fixture `operator`)
from rollout_support import one_gpu_nodes, open_gates, patch_spec, pool_manifest
from test_operator import create_pool, pool_events, wait_pool

from warmpool.envtest import LocalCluster, poll_until
from warmpool.render.disruption import COLD_START_HINTS


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    with one_gpu_nodes(cluster, k8s, "disruption", 2) as nodes:
        yield nodes


def budget(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found = kubernetes.client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
            name, namespace
        )
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    data: dict[str, Any] = api.sanitize_for_serialization(found)
    return data


def evict(api: kubernetes.client.ApiClient, namespace: str, pod: str) -> int:
    """POST pods/eviction; the HTTP status (201 evicted, 429 refused by a budget)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}}
    try:
        kubernetes.client.CoreV1Api(api).create_namespaced_pod_eviction(pod, namespace, body)
    except kubernetes.client.ApiException as error:
        return int(error.status)
    return 201


def hints(pod: dict[str, Any]) -> dict[str, str]:
    annotations = pod["metadata"].get("annotations") or {}
    return {k: v for k, v in annotations.items() if k in COLD_START_HINTS}


def test_budget_hints_eviction_and_drain(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,
) -> None:
    create_pool(
        k8s,
        pool_manifest(
            "llama",
            namespace,
            server=gpu_nodes.server_spec(),
            scaling={"warmFloor": 1, "maxReplicas": 2},
            replicas=2,
            disruption={"drainSeconds": 20, "terminationGracePeriodSeconds": 90},
        ),
    )
    pods = poll_until(
        lambda: found if len(found := pool_pods(k8s, namespace, "llama")) == 2 else None,
        what="two pods",
        timeout=TIMEOUT,
    )
    for pod in pods:  # cold: both hints from the template; grace and drain from the spec
        assert hints(pod) == COLD_START_HINTS
        assert pod["spec"]["terminationGracePeriodSeconds"] == 90
        triton = pod["spec"]["containers"][0]
        assert triton["lifecycle"]["preStop"] == {"sleep": {"seconds": 20}}
    pdb = poll_until(lambda: budget(k8s, namespace, "llama"), what="the PDB", timeout=TIMEOUT)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

    # A cold replica serves nothing: the budget does not hold a drain up for it.
    cold = pods[0]["metadata"]["name"]
    poll_until(
        lambda: ((budget(k8s, namespace, "llama") or {}).get("status") or {}).get(
            "observedGeneration"
        ),
        what="the disruption controller's first look at the budget",
        timeout=TIMEOUT,
    )
    assert evict(k8s, namespace, cold) == 201

    # Warm: the operator lifts the hints; the budget counts the replicas as healthy.
    def both_warm() -> list[dict[str, Any]] | None:
        open_gates(k8s, namespace, "llama")
        found = pool_pods(k8s, namespace, "llama")
        return found if len(found) == 2 and not any(hints(p) for p in found) else None

    warm = poll_until(both_warm, what="two warm pods without hints", timeout=TIMEOUT)
    poll_until(
        lambda: (
            ((budget(k8s, namespace, "llama") or {}).get("status") or {}).get("disruptionsAllowed")
            == 1
        ),
        what="disruption controller: 2 healthy, 1 allowed",
        timeout=TIMEOUT,
    )

    # kubectl drain of one node evicts its replica (1 allowed); its successor finds no GPU
    # (cordoned node, the other one full). Draining the other node would leave no warm replica:
    # the budget refuses it.
    on_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in warm}
    first, second = sorted(on_node)
    drained = kubectl(
        cluster,
        "drain",
        first,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=60s",
        "--pod-selector",
        "warmpool.dev/pool=llama",
        check=False,
    )
    assert drained.returncode == 0, drained.stdout + drained.stderr
    poll_until(
        lambda: (
            ((budget(k8s, namespace, "llama") or {}).get("status") or {}).get("disruptionsAllowed")
            == 0
        ),
        what="disruption controller: 1 healthy, none allowed",
        timeout=TIMEOUT,
    )
    refused = kubectl(
        cluster,
        "drain",
        second,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=5s",
        "--pod-selector",
        "warmpool.dev/pool=llama",
        check=False,
    )
    assert refused.returncode != 0
    assert "disruption budget" in refused.stdout + refused.stderr
    assert evict(k8s, namespace, on_node[second]) == 429
    kubectl(cluster, "uncordon", first, second)

    # Floor 0: no budget.
    patch_spec(k8s, namespace, "llama", {"scaling": {"warmFloor": 0}})
    poll_until(
        lambda: budget(k8s, namespace, "llama") is None, what="the PDB deleted", timeout=TIMEOUT
    )


def test_a_hand_edit_of_the_pod_template_is_reverted_and_reported(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, pool_manifest("llama", namespace, scaling={"warmFloor": 1}))
    pool = wait_pool(
        k8s,
        namespace,
        "llama",
        "status with the revision",
        lambda p: ((p.get("status") or {}).get("rollout") or {}).get("revision"),
        operator,
    )
    image = json.loads(
        kubectl(cluster, "get", "deployment", "llama", "-n", namespace, "-o", "json").stdout
    )["spec"]["template"]["spec"]["containers"][0]["image"]
    kubectl(cluster, "set", "image", "-n", namespace, "deployment/llama", "triton=evil:1")

    def reverted() -> dict[str, Any] | None:
        shown = ("get", "deployment", "llama", "-n", namespace, "-o", "json")
        live = json.loads(kubectl(cluster, *shown, "--show-managed-fields").stdout)
        editors = [
            m["manager"]
            for m in live["metadata"].get("managedFields") or []
            if m["manager"] != "warmpool"
            and "f:template" in m.get("fieldsV1", {}).get("f:spec", {})
        ]
        image_now = live["spec"]["template"]["spec"]["containers"][0]["image"]
        return live if image_now == image and not editors else None

    poll_until(reverted, what="the image put back", timeout=TIMEOUT, describe=operator.log_tail)
    events = poll_until(
        lambda: [
            e for e in pool_events(cluster, namespace, "llama") if e["reason"] == "DriftReverted"
        ],
        what="a DriftReverted Event",
        timeout=TIMEOUT,
    )
    assert "kubectl-set" in events[0]["note"]
    assert pool["status"]["rollout"]["revision"]

    # The edit started a roll-out, the revert another: once converged, ticks write nothing.
    def converged(p: dict[str, Any]) -> bool:
        open_gates(k8s, namespace, "llama")
        reconciling = condition(p, "Reconciling") or {}
        return (reconciling.get("status"), reconciling.get("reason")) == ("False", "Reconciled")

    wait_pool(k8s, namespace, "llama", "converged", converged, operator)
    mark = len(cluster.audit_events())
    ticks = operator.metric("warmpool_reconcile_total", trigger="tick")
    poll_until(
        lambda: operator.metric("warmpool_reconcile_total", trigger="tick") >= ticks + 3,
        what="three more scaling ticks",
        timeout=TIMEOUT,
    )
    writes = [
        w
        for w in operator_writes(cluster, OPERATOR_USER, mark)
        if (w.get("objectRef") or {}).get("resource") != "events"
    ]
    assert writes == [], describe_writes(writes)

    # `kubectl rollout undo` brings the edited template back from the history (kubectl patches
    # the Deployment as field manager `kubectl`): reverted too.
    kubectl(cluster, "rollout", "undo", "-n", namespace, "deployment/llama")
    poll_until(
        lambda: [
            e
            for e in pool_events(cluster, namespace, "llama")
            if e["reason"] == "DriftReverted" and "edited by kubectl;" in e["note"]
        ],
        what="a DriftReverted Event naming kubectl (rollout undo)",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    poll_until(reverted, what="the image put back again", timeout=TIMEOUT)
