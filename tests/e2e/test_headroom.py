"""Headroom on the real control plane: real replicas preempt the pool's placeholder pods.

Real: kube-apiserver, the Deployment and ReplicaSet controllers, kube-scheduler (priority,
preemption, its Events), and `warmpool operator` as a process rendering `<pool>-headroom`.
Mocked because they cannot exist here: GPUs and kubelets (KWOK nodes advertising
`nvidia.com/gpu`). No cluster autoscaler runs: the test stops where one would start, at a
placeholder Pending for lack of a GPU.

The PriorityClass `warmpool-headroom` (value -10) is the Helm chart's; the test creates the same
one when the cluster lacks it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from node_support import OwnGpuNodes
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    kubectl,
)
from test_operator import operator, operator_kubeconfig  # noqa: F401  (shared fixtures)

from warmpool.envtest import LocalCluster, poll_until

PRIORITY_CLASS = "warmpool-headroom"


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    nodes = OwnGpuNodes(cluster, k8s, "headroom")
    try:
        yield nodes
    finally:
        nodes.delete_all()


@pytest.fixture
def headroom_priority_class(k8s: kubernetes.client.ApiClient) -> Iterator[str]:
    """The chart's PriorityClass (created here when missing; deleted only if created here)."""
    scheduling: Any = kubernetes.client.SchedulingV1Api(k8s)
    created = False
    try:
        scheduling.read_priority_class(PRIORITY_CLASS)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
        scheduling.create_priority_class(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": PRIORITY_CLASS},
                "value": -10,
                "preemptionPolicy": "Never",
                "globalDefault": False,
            }
        )
        created = True
    try:
        yield PRIORITY_CLASS
    finally:
        if created:
            scheduling.delete_priority_class(PRIORITY_CLASS)


def headroom_pool(name: str, namespace: str, server: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/tiny"},
            "server": server,
            "headroom": {"placeholders": 1},
            "replicas": 1,
        },
    }


def live(pods: list[Any]) -> list[Any]:
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None]


def scheduler_events(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """events.k8s.io/v1 Events of the namespace (kubectl: the Python client's Event models
    refuse some controllers' Events)."""
    listed = json.loads(
        kubectl(cluster, "get", "events.events.k8s.io", "-n", namespace, "-o", "json").stdout
    )
    return list(listed["items"])


def test_replicas_preempt_placeholders_which_go_pending(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    headroom_priority_class: str,
    operator: OperatorProcess,  # noqa: F811  (the imported fixture)
) -> None:
    # A small cluster: two nodes with one GPU each.
    nodes = [gpu_nodes.add(letter, gpus=1) for letter in "ab"]
    core: Any = kubernetes.client.CoreV1Api(k8s)
    pools: Any = kubernetes.client.CustomObjectsApi(k8s)
    name = "llama"
    pools.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, headroom_pool(name, namespace, gpu_nodes.server_spec())
    )
    replica_selector = f"warmpool.dev/pool={name}"
    placeholder_selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=headroom"

    # One replica and one placeholder: together they hold the only two GPUs.
    def both_running() -> tuple[Any, Any] | None:
        replicas = live(core.list_namespaced_pod(namespace, label_selector=replica_selector).items)
        holders = live(
            core.list_namespaced_pod(namespace, label_selector=placeholder_selector).items
        )
        if len(replicas) != 1 or len(holders) != 1:
            return None
        if not (replicas[0].spec.node_name and holders[0].spec.node_name):
            return None
        if holders[0].status.phase != "Running":
            return None
        return replicas[0], holders[0]

    replica, placeholder = poll_until(
        both_running,
        what="1 replica and 1 placeholder scheduled",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    assert {replica.spec.node_name, placeholder.spec.node_name} == set(nodes)
    assert placeholder.spec.priority == -10
    assert placeholder.spec.priority_class_name == headroom_priority_class
    assert (replica.spec.priority or 0) > placeholder.spec.priority
    gpu_request = placeholder.spec.containers[0].resources.requests["nvidia.com/gpu"]
    assert gpu_request == "1"
    assert "warmpool.dev/pool" not in (placeholder.metadata.labels or {})

    # Scale up: no free GPU anywhere, so the scheduler preempts the placeholder.
    pools.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": 2}}
    )

    def new_replica_placed() -> Any | None:
        pods = live(core.list_namespaced_pod(namespace, label_selector=replica_selector).items)
        for pod in pods:
            if pod.metadata.uid != replica.metadata.uid and pod.spec.node_name:
                return pod
        return None

    new_replica = poll_until(
        new_replica_placed,
        what="the second replica scheduled",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    # The real replica took the placeholder's node...
    assert new_replica.spec.node_name == placeholder.spec.node_name

    # ...the placeholder was deleted by preemption, and its replacement waits for a node.
    def replacement_pending() -> Any | None:
        holders = live(
            core.list_namespaced_pod(namespace, label_selector=placeholder_selector).items
        )
        if any(pod.metadata.uid == placeholder.metadata.uid for pod in holders):
            return None
        for pod in holders:
            scheduled = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
            if (
                not pod.spec.node_name
                and scheduled
                and scheduled[0].status == "False"
                and scheduled[0].reason == "Unschedulable"
            ):
                return pod
        return None

    pending = poll_until(
        replacement_pending, what="a Pending replacement placeholder", timeout=TIMEOUT
    )
    assert pending.status.phase == "Pending"

    def preempted_event() -> dict[str, Any] | None:
        for event in scheduler_events(cluster, namespace):
            regarding = event.get("regarding") or {}
            if event.get("reason") == "Preempted" and regarding.get("uid") == (
                placeholder.metadata.uid
            ):
                return event
        return None

    event = poll_until(preempted_event, what="the scheduler's Preempted Event", timeout=TIMEOUT)
    assert new_replica.metadata.uid in str(event.get("note")), event
