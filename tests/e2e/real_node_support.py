"""What the real-node tier (test_real_node*.py and the real_cluster fixture) shares: the node's
name, its fake GPUs, the images imported into it, and the check that it can run here."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
from operator_support import (
    OperatorProcess,
    free_port,
    get_pool,
    pool_pods,
    warmpool_executable,
)

from support.components import component_unavailable
from warmpool.envtest import (
    BinaryNotFoundError,
    ControlPlaneBinaries,
    LocalCluster,
    NodeBinaries,
    RealNode,
    poll_until,
)
from warmpool.envtest.images import ImagesNotBuiltError, built_image
from warmpool.envtest.process import ComponentProcess
from warmpool.envtest.registry import RegistryBinaries

REAL_NODE = "real-node-0"
REAL_NODE_GPUS = 2
# Imported into the node besides the pause image.
REAL_NODE_IMAGES = ("agent", "triton-cpu")


def require_real_node() -> ControlPlaneBinaries:
    """The control plane's binaries, once the node's binaries (its registry's too) and images
    are known to be built; else component_unavailable (skip locally, fail under CI=true)."""
    try:
        binaries = ControlPlaneBinaries.discover()
        NodeBinaries.discover()
        RegistryBinaries.discover()
        for image in ("pause", *REAL_NODE_IMAGES):
            built_image(image)
    except (BinaryNotFoundError, ImagesNotBuiltError) as error:
        component_unavailable("real node", str(error))
    return binaries


def start_activator(
    cluster: LocalCluster, node: RealNode, log: Path, extra: tuple[str, ...] = ()
) -> tuple[ComponentProcess, int]:
    """`warmpool activator` in the node's network namespace, where pod IPs are routed, finding
    pods through real EndpointSlices; returns it and a host port that reaches its HTTP port."""
    http = free_port()
    argv = [
        warmpool_executable(), "activator", "--kubeconfig", str(cluster.kubeconfig),
        "--bind", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(free_port()),
        "--metrics-port", str(free_port()), "--hold-timeout", "900", *extra,
    ]  # fmt: skip
    process = ComponentProcess("activator", node.netns_command(argv), log)
    port = node.forward("127.0.0.1", http)

    def listening() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
        except urllib.error.HTTPError:
            return True  # any answer means it listens
        except (urllib.error.URLError, OSError):
            return False
        return True

    try:
        poll_until(listening, what="activator listening", timeout=60, describe=process.log_tail)
    except BaseException:
        process.stop()
        raise
    return process, port


def infer(
    port: int, model: str, value: float, *, pool: str | None = None, timeout: float = 30
) -> list[float]:
    """One KServe v2 HTTP inference of a warmup_curve-like model (INPUT0, FP32 [4, 1024], every
    element ``value``) on ``127.0.0.1:port``, through the activator when ``pool`` is given;
    OUTPUT0's data."""
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024],
                        "data": [value] * 4096}]}  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if pool is not None:
        headers["X-Warmpool-Pool"] = pool
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        answer = json.loads(reply.read())
    return [float(x) for x in answer["outputs"][0]["data"]]


def gpu_nodes(api: kubernetes.client.ApiClient, resource: str = "nvidia.com/gpu") -> dict[str, int]:
    """Every node of the cluster that offers `resource`, with its allocatable count."""
    offered = {}
    for item in kubernetes.client.CoreV1Api(api).list_node().items:
        count = int((item.status.allocatable or {}).get(resource, "0"))
        if count:
            offered[item.metadata.name] = count
    return offered


def gpu_holders(
    api: kubernetes.client.ApiClient, node: str, resource: str = "nvidia.com/gpu"
) -> list[str]:
    """`namespace/name` of each pod bound to `node` that still holds `resource` (as the
    scheduler counts: until the pod is gone or has finished, terminating or not)."""
    pods = kubernetes.client.CoreV1Api(api).list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node}"
    )
    return [
        f"{pod.metadata.namespace}/{pod.metadata.name}"
        for pod in pods.items
        if pod.status.phase not in ("Succeeded", "Failed")
        and any(
            resource in ((c.resources and c.resources.requests) or {})
            or resource in ((c.resources and c.resources.limits) or {})
            for c in [*pod.spec.containers, *(pod.spec.init_containers or [])]
        )
    ]


# ---- one test's pools on the real node (test_real_node_pool.py and the modules reusing it) ----

#: A pod's whole life on this loaded 2-core machine: prefetch, Triton start, warm-up.
POD_TIMEOUT = 300.0


def warm(pool: dict[str, Any], replicas: int) -> bool:
    """Whether the pool is Ready with exactly `replicas` warm replicas."""
    status = pool.get("status") or {}
    return bool(status.get("phase") == "Ready" and status.get("warmReplicas") == replicas)


def wait_for(
    api: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    what: str,
    check: Callable[[dict[str, Any]], Any],
    operator: OperatorProcess,
    timeout: float = POD_TIMEOUT,
) -> dict[str, Any]:
    """The pool once `check(pool)` holds; on a timeout, its status, pods and the operator's log
    say why."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = get_pool(api, namespace, name)
        return last if check(last) else None

    def describe() -> str:
        pods = [(p["metadata"]["name"], p.get("status")) for p in pool_pods(api, namespace, name)]
        return f"pool status {last.get('status')}\npods {pods}\n{operator.log_tail(20)}"

    return poll_until(probe, what=what, timeout=timeout, describe=describe)


@dataclass
class NodePools:
    """The pools of one real-node test: the client, namespace and operator bound once, and how
    the test's module creates a pool (`create(name, scaling)`), so a test says only which pool
    and what to wait for."""

    api: kubernetes.client.ApiClient
    namespace: str
    operator: OperatorProcess
    create: Callable[[str, dict[str, Any]], None]

    def wait(self, name: str, what: str, check: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        return wait_for(self.api, self.namespace, name, what, check, self.operator)

    def create_warm(self, name: str, replicas: int, what: str = "") -> dict[str, Any]:
        """Create `name` with a warm floor of `replicas` and wait until that many are warm."""
        self.create(name, {"warmFloor": replicas, "maxReplicas": replicas})
        return self.wait(name, what or f"{replicas} warm replica(s)", lambda p: warm(p, replicas))

    def pods(self, name: str) -> list[dict[str, Any]]:
        return pool_pods(self.api, self.namespace, name)
