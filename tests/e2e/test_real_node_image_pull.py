"""The image-pull phase of a cold start, from a real pull: a pool whose server image is in an
OCI registry goes Ready on the real node, the real kubelet pulls that image through containerd
and reports the pull in its `Pulling`/`Pulled` Events, and the operator's cold-start breakdown
splits out exactly that pull as `imagePullSeconds`.

Real: the control plane, kubelet, containerd (pulling over plain HTTP per its hosts.toml), the
CNCF distribution registry on the node's loopback, crane pushing the built CPU Triton image
into it, `warmpool operator`, prefetch from versitygw, Triton, the warm-up sidecar. The pushed
image is the built one plus a layer of random bytes no node has: containerd fetches only
layers whose snapshots it lacks (the built layers were imported at node start). Stood in: GPUs
(the fake device plugin).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import kubernetes
import pytest
from operator_support import OperatorProcess, kubectl
from test_operator import pool_events
from test_real_node_pool import (  # noqa: F401  (fixtures: cluster, node, operator, s3)
    cluster,
    create_pool,
    node,
    operator,
    s3,
    wait_for,
    warm,
)
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.components import component_unavailable
from support.s3 import S3Server
from warmpool.envtest import BinaryNotFoundError, ClusterStartError, LocalCluster, RealNode
from warmpool.envtest.images import built_image
from warmpool.envtest.registry import fresh_layer

REPOSITORY = "warmpool/triton-cpu"
PAYLOAD_BYTES = 128 * 1024 * 1024
# The kubelet's message (pkg/kubelet/images): the pull's own duration, a Go duration; a pull
# from the node's loopback takes seconds or milliseconds.
PULLED = re.compile(r'^Successfully pulled image "(?P<image>[^"]+)" in (?P<n>[0-9.]+)(?P<u>ms|s) ')


@pytest.fixture(scope="module")
def server_image(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The CPU Triton image plus a fresh layer, pushed into the node's registry under a
    reference the node has never seen; the reference the pool names."""
    real_node = real_cluster.real_nodes[0]
    try:
        registry = real_node.start_registry()
    except (BinaryNotFoundError, ClusterStartError) as error:
        component_unavailable("image registry", str(error))
    triton = built_image("triton-cpu")
    tag = triton.ref.rsplit(":", 1)[1]
    started = time.monotonic()
    registry.push_archive(triton.archive, REPOSITORY, tag)
    pushed = time.monotonic()
    layer = fresh_layer(tmp_path_factory.mktemp("pull") / "payload.tar", PAYLOAD_BYTES)
    image = registry.append_layer((REPOSITORY, tag), layer, f"{tag}-pull")
    print(f"push {pushed - started:.1f}s, fresh layer appended {time.monotonic() - pushed:.1f}s")
    assert image not in real_node.container_images()
    return image


def kubelet_events(local: LocalCluster, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The core Events about ``pod`` (kubectl: the kubelet's have no eventTime)."""
    listed = json.loads(kubectl(local, "get", "events", "-n", namespace, "-o", "json").stdout)
    return [e for e in listed["items"] if e["involvedObject"].get("name") == pod]


def test_a_real_pull_is_the_cold_starts_image_pull_phase(
    cluster: LocalCluster,  # noqa: F811
    node: RealNode,  # noqa: F811
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,  # noqa: F811
    s3: S3Server,  # noqa: F811
    gate_policy: dict[str, Any],  # noqa: F811
    server_image: str,
) -> None:
    scaling = {"warmFloor": 1, "maxReplicas": 1}
    create_pool(k8s, node, namespace, s3, "pulled", scaling, server_image=server_image)
    pool = wait_for(
        k8s,
        namespace,
        "pulled",
        "Ready with its cold start reported",
        lambda p: warm(p, 1) and (p["status"].get("lastColdStart") or {}).get("pod"),
        operator,
    )
    cold = pool["status"]["lastColdStart"]
    events = kubelet_events(cluster, namespace, cold["pod"])

    # The kubelet pulled the server image (and only it: the agent image was imported).
    pulling = [e for e in events if e["reason"] == "Pulling" and server_image in e["message"]]
    assert pulling and pulling[0]["source"]["component"] == "kubelet", events
    pulled = [m for e in events if e["reason"] == "Pulled" and (m := PULLED.match(e["message"]))]
    assert [m["image"] for m in pulled] == [server_image], [e["message"] for e in events]
    present = [e["message"] for e in events if "already present on machine" in e["message"]]
    assert present and all(server_image not in m for m in present), present
    kubelet_seconds = float(pulled[0]["n"]) / (1000.0 if pulled[0]["u"] == "ms" else 1.0)
    assert kubelet_seconds > 0
    assert server_image in node.container_images()
    # containerd fetched the fresh layer from the registry (the registry's access log: the
    # bytes each blob GET wrote).
    access = (node.logs_dir / "registry.log").read_text()
    fetched = re.findall(
        r'"GET /v2/warmpool/triton-cpu/blobs/\S+ HTTP/1.1" 200 (\d+) "" "containerd/', access
    )
    assert any(int(size) >= PAYLOAD_BYTES for size in fetched), access[-2000:]
    print(f"kubelet: {pulled[0].string}\ncold start: {cold}")

    # The operator split out that pull: the Event's interval [end - duration, end] has a
    # whole-second end (lastTimestamp), clamped to the pod's second-resolution phases, so up
    # to a second of it may fall before the span it is measured in, never more than it.
    image_pull = cold["imagePullSeconds"]
    assert 0 < image_pull <= kubelet_seconds + 0.001, (cold, kubelet_seconds)
    assert image_pull > kubelet_seconds - 1, (cold, kubelet_seconds)
    phases = [v for k, v in cold.items() if k.endswith("Seconds") and k != "totalSeconds"]
    assert len(phases) == 6 and abs(sum(phases) - cold["totalSeconds"]) < 0.01, cold
    notes = [
        e["note"] for e in pool_events(cluster, namespace, "pulled") if e["reason"] == "ColdStart"
    ]
    assert notes and f"image pull {image_pull:.1f}s" in notes[0], notes
