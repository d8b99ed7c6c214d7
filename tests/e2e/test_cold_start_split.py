"""Node provisioning and image pulls split out of a cold start, on the real control plane.

The pod is created while no node can take it (its GPU product exists on no node): the real
scheduler marks it Unschedulable; then a node appears (as an autoscaler would add one) and the
pod starts there. The node's creation time splits node provisioning out of scheduling.

Mocked: KWOK plays the kubelet and pulls no image, so the test posts the core/v1 `Pulled` Event a
kubelet posts after a pull (same reason, source and message format as the kubelet's
`Successfully pulled image "..." in 1s (1s including waiting)`); and the warm-up sidecar (the
test opens the warm gate as it does).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from node_support import OwnGpuNodes
from operator_support import (
    TIMEOUT,
    OperatorProcess,
    condition,
    open_gate,
    pool_pods,
)
from rollout_support import one_gpu_nodes, own_operator, pool_manifest
from test_operator import create_pool, now_rfc3339, pool_events, wait_pool

from warmpool.contract import parse_time
from warmpool.envtest import LocalCluster, poll_until


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    with one_gpu_nodes(cluster, k8s, "split", 0) as nodes:
        yield nodes


@pytest.fixture
def operator(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    with own_operator(cluster, namespace, tmp_path) as process:
        yield process


def seconds_past(moment: datetime, seconds: float) -> bool:
    """Whether the wall clock is `seconds` past `moment` (condition times have 1 s resolution)."""
    return datetime.now(UTC) >= moment + timedelta(seconds=seconds)


def test_node_provisioning_and_image_pull_are_their_own_phases(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, pool_manifest("llama", namespace, server=gpu_nodes.server_spec()))

    def unschedulable() -> dict[str, Any] | None:
        for pod in pool_pods(k8s, namespace, "llama"):
            scheduled = condition(pod, "PodScheduled") or {}
            if scheduled.get("reason") == "Unschedulable":
                return pod
        return None

    pod = poll_until(unschedulable, what="the pod Unschedulable", timeout=TIMEOUT)
    created = parse_time(pod["metadata"]["creationTimestamp"])
    assert created is not None
    poll_until(lambda: seconds_past(created, 2), what="2 s after the pod", timeout=TIMEOUT)
    gpu_nodes.add("a", gpus=1)

    def running() -> dict[str, Any] | None:
        for found in pool_pods(k8s, namespace, "llama"):
            ready = condition(found, "ContainersReady") or {}
            initialized = condition(found, "Initialized") or {}
            if ready.get("status") == "True" and initialized.get("status") == "True":
                return found
        return None

    pod = poll_until(running, what="the pod running on the new node", timeout=TIMEOUT)
    initialized_at = parse_time(condition(pod, "Initialized")["lastTransitionTime"])  # type: ignore[index]
    assert initialized_at is not None
    poll_until(lambda: seconds_past(initialized_at, 2), what="2 s after init", timeout=TIMEOUT)
    pulled_at = now_rfc3339()  # whole seconds, as the kubelet's Event times are
    kubernetes.client.CoreV1Api(k8s).create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": f"{pod['metadata']['name']}."},
            "involvedObject": {
                "kind": "Pod",
                "namespace": namespace,
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
                "fieldPath": "spec.containers{triton}",
            },
            "reason": "Pulled",
            "message": (
                'Successfully pulled image "nvcr.io/nvidia/tritonserver:25.01-py3" in 1s '
                "(1s including waiting). Image size: 1000 bytes."
            ),
            "source": {"component": "kubelet", "host": pod["spec"]["nodeName"]},
            "firstTimestamp": pulled_at,
            "lastTimestamp": pulled_at,
            "count": 1,
            "type": "Normal",
        },
    )
    pulled = parse_time(pulled_at)
    assert pulled is not None
    poll_until(lambda: seconds_past(pulled, 1), what="1 s after the pull", timeout=TIMEOUT)
    open_gate(k8s, namespace, pod["metadata"]["name"], now_rfc3339())

    pool = wait_pool(
        k8s,
        namespace,
        "llama",
        "the cold start reported",
        lambda p: (p.get("status") or {}).get("lastColdStart"),
        operator,
    )
    cold = pool["status"]["lastColdStart"]
    assert cold["nodeProvisioningSeconds"] >= 1.0  # the node came 2+ s after the pod
    assert cold["imagePullSeconds"] == 1.0
    phases = [
        "nodeProvisioningSeconds",
        "imagePullSeconds",
        "schedulingSeconds",
        "prefetchSeconds",
        "serverStartSeconds",
        "warmupSeconds",
    ]
    assert abs(sum(cold[p] for p in phases) - cold["totalSeconds"]) < 0.01
    notes = [
        e["note"] for e in pool_events(cluster, namespace, "llama") if e["reason"] == "ColdStart"
    ]
    assert notes and "node provisioning" in notes[0] and "image pull 1.0s" in notes[0]
    assert operator.metric("warmpool_cold_start_seconds_count", phase="node_provisioning") == 1
    assert (
        operator.metric(
            "warmpool_cold_start_seconds_sum", namespace=namespace, pool="llama", phase="image_pull"
        )
        == 1.0
    )
