"""warmpool on the real node, as a user runs it: a pool goes from nothing to Ready with the real
`warmpool prefetch` (init container, from a real S3 server), real Triton (CPU image) and the
real `warmpool warmup` sidecar opening the readiness gate that the real kubelet honours; its
cold-start breakdown agrees with the kubelet's own container timestamps; a request sent to a
pool at zero through the activator (real pod IPs from real EndpointSlices) wakes it and is
answered; a pod deleted with no grace period is replaced and warmed again; draining the node
evicts the warm replica.

Real: the control plane, kubelet, containerd, runc, CNI, kube-proxy, `warmpool operator` and
`warmpool activator` (processes of the harness; the activator in the node's network
namespace, where pod IPs are), the agent and CPU Triton images, versitygw. Stood in: GPUs (a
device plugin advertising devices that do not exist).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    as_dict,
    condition,
    kubectl,
)
from pool_support import running_operator
from real_node_support import (
    POD_TIMEOUT,
    REAL_NODE,
    NodePools,
    infer,
    start_activator,
    wait_for,  # noqa: F401  (test_real_node_image_pull.py and _rollout.py import it from here)
    warm,
)
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.s3 import S3Server, model_files, running_s3
from warmpool.envtest import LocalCluster, RealNode, find_binary, poll_until
from warmpool.envtest.images import built_image

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL = "warmup_curve"
INPUTS = [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}]


@pytest.fixture(scope="module")
def cluster(real_cluster: LocalCluster) -> LocalCluster:
    """Every test of this module runs on the session's real-node cluster."""
    return real_cluster


@pytest.fixture
def node(cluster: LocalCluster) -> RealNode:
    return cluster.real_nodes[0]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    with running_s3(
        tmp_path,
        access_key="WPAK" + secrets.token_hex(6).upper(),
        secret_key=secrets.token_urlsafe(18),
        bucket="models",
        files=model_files(MODELS / MODEL, MODEL),
    ) as server:
        yield server


@pytest.fixture
def operator(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    agent = built_image("agent").ref
    with running_operator(cluster, namespace, tmp_path, ["--agent-image", agent]) as process:
        yield process


def create_pool(
    api: kubernetes.client.ApiClient,
    node: RealNode,
    namespace: str,
    s3: S3Server,
    name: str,
    scaling: dict[str, Any],
    server_image: str | None = None,
) -> None:
    """The S3 credentials as a Secret and a pool of the model in S3, served by the CPU Triton
    image (``server_image``: under another reference), one (fake) GPU per replica."""
    core = kubernetes.client.CoreV1Api(api)
    secret = {
        "metadata": {"name": "s3"},
        "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
    }
    try:
        core.create_namespaced_secret(namespace, secret)
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "uri": f"s3://models/{MODEL}",
                "name": MODEL,
                # The S3 server listens on the host's loopback; pods reach it through the node.
                "endpoint": f"http://{node.expose_host_port(s3.port)}",
                "credentialsSecret": "s3",
            },
            "server": {"image": server_image or built_image("triton-cpu").ref, "gpu": {"count": 1}},
            "warmup": {"inputs": INPUTS, "tolerance": 0.25},
            "scaling": scaling,
        },
    }
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )


def _ready(pod: dict[str, Any]) -> dict[str, Any] | None:
    ready = condition(pod, "Ready")
    return pod if ready is not None and ready["status"] == "True" else None


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def service_port(api: kubernetes.client.ApiClient, namespace: str, pool: str) -> tuple[str, int]:
    """The ClusterIP and http port of the pool's Service (``<pool>``)."""
    service = kubernetes.client.CoreV1Api(api).read_namespaced_service(pool, namespace)
    port = next(p.port for p in service.spec.ports if p.name == "http")
    return str(service.spec.cluster_ip), int(port)


@pytest.fixture
def pools(
    node: RealNode,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Server,
) -> NodePools:
    """This test's pools: `create_pool` of the model in `s3`, waited on with the operator's log."""
    return NodePools(
        k8s,
        namespace,
        operator,
        lambda name, scaling: create_pool(k8s, node, namespace, s3, name, scaling),
    )


def test_pool_becomes_ready_on_the_real_node_and_its_breakdown_matches_the_kubelet(
    node: RealNode,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    pools.create("real", {"warmFloor": 1, "maxReplicas": 1})
    pool = pools.wait(
        "real",
        "Ready with its cold start reported",
        lambda p: warm(p, 1) and (p["status"].get("lastColdStart") or {}).get("pod"),
    )
    cold = pool["status"]["lastColdStart"]
    core = kubernetes.client.CoreV1Api(k8s)
    # The warm-up sidecar opened the gate; the kubelet makes the pod Ready because of it.
    pod = poll_until(
        lambda: _ready(as_dict(k8s, core.read_namespaced_pod(cold["pod"], namespace))),
        what="the kubelet to make the warm pod Ready",
        timeout=60,
    )
    assert pod["spec"]["nodeName"] == REAL_NODE
    gate = condition(pod, "warmpool.dev/warm")
    assert gate is not None and gate["status"] == "True", gate

    # The breakdown against the kubelet's own container timestamps (1 s resolution).
    created = seconds(pod["metadata"]["creationTimestamp"])
    init = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    prefetch = init["prefetch"]["state"]["terminated"]
    server = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "triton")
    server_started = seconds(server["state"]["running"]["startedAt"])
    initialized = created + cold["schedulingSeconds"] + cold["prefetchSeconds"]
    warm_at = created + cold["totalSeconds"]
    assert created - 1 <= seconds(prefetch["startedAt"]) <= initialized + 1, (cold, prefetch)
    assert seconds(prefetch["finishedAt"]) <= initialized + 1, (cold, prefetch)
    assert initialized - 1 <= server_started <= warm_at + 1, (cold, server)
    assert cold["prefetchSeconds"] + 1 >= seconds(prefetch["finishedAt"]) - seconds(
        prefetch["startedAt"]
    )
    assert prefetch["exitCode"] == 0

    # Answered through the pool's Service: kube-proxy to the pod's real IP.
    ip, port = service_port(k8s, namespace, "real")
    local = node.forward(ip, port)

    def answered() -> list[float] | None:
        # kube-proxy programs the Service's new endpoint asynchronously (its sync period):
        # until then the ClusterIP refuses the connection.
        try:
            return infer(local, MODEL, 1.0)
        except (urllib.error.URLError, ConnectionError):
            return None

    answer = poll_until(answered, what="an answer through the pool's Service", timeout=60)
    assert len(answer) == 4096


def test_request_at_zero_through_the_activator_wakes_the_pool_and_is_answered(
    cluster: LocalCluster,
    node: RealNode,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    pools.create("sleepy", {"warmFloor": 0, "maxReplicas": 1, "scaleToZeroAfterSeconds": 3600})
    pools.wait(
        "sleepy",
        "the pool at zero",
        lambda p: (p.get("status") or {}).get("phase") == "ScaledToZero",
    )
    # The activator runs in the node's network namespace, where pod IPs are routed; it finds
    # the pool's pods through real EndpointSlices (no endpoints file).
    log = cluster.logs_dir / f"activator-{namespace}.log"
    activator, port = start_activator(cluster, node, log, ("--namespace", namespace))
    try:
        sent = time.monotonic()
        answer = infer(port, MODEL, 3.0, pool=f"{namespace}/sleepy", timeout=POD_TIMEOUT)
        print(f"first_answer_from_zero_s={time.monotonic() - sent:.1f}")
        assert len(answer) == 4096
    finally:
        activator.stop()
    pods = pools.pods("sleepy")
    assert [p["spec"]["nodeName"] for p in pods] == [REAL_NODE]


def test_pod_deleted_without_grace_is_replaced_and_warmed_again_and_drain_evicts(
    cluster: LocalCluster,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    pool = pools.create_warm("sturdy", 1, "Ready")
    first = pools.pods("sturdy")[0]["metadata"]["name"]

    kubectl(cluster, "-n", namespace, "delete", "pod", first, "--grace-period=0", "--force")
    pool = pools.wait(
        "sturdy",
        "a new pod warm",
        lambda p: (
            warm(p, 1) and (p["status"].get("lastColdStart") or {}).get("pod") not in (None, first)
        ),
    )
    second = pool["status"]["lastColdStart"]["pod"]

    drained = subprocess.run(
        [str(kubectl_path()), "drain", REAL_NODE, "--ignore-daemonsets",
         "--delete-emptydir-data", "--pod-selector", "warmpool.dev/pool=sturdy",
         "--timeout=120s"],
        env=cluster.env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    try:
        assert drained.returncode == 0, drained.stderr
        assert f"pod/{second} evicted" in drained.stdout + drained.stderr
        poll_until(
            lambda: all(p["metadata"]["name"] != second for p in pools.pods("sturdy")),
            what="the warm replica evicted",
            timeout=POD_TIMEOUT,
        )
    finally:
        kubectl(cluster, "uncordon", REAL_NODE)


def kubectl_path() -> Path:
    return find_binary("kubectl")


def prefetch_result(api: kubernetes.client.ApiClient, namespace: str, pod: str) -> dict[str, Any]:
    """The JSON result line `warmpool prefetch` printed in ``pod`` (its log, read from the
    kubelet through the apiserver)."""
    log = kubernetes.client.CoreV1Api(api).read_namespaced_pod_log(
        pod, namespace, container="prefetch"
    )
    for line in reversed(str(log).splitlines()):
        if line.startswith("{") and "cacheHit" in line:
            result: dict[str, Any] = json.loads(line)
            return result
    raise AssertionError(f"no prefetch result in the log of {pod}:\n{log}")


def test_two_pods_on_one_node_share_one_verified_download(
    node: RealNode,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    # A fresh S3 endpoint: a cache key no earlier test filled.
    pools.create_warm("pair", 2, "two warm replicas")
    pods = pools.pods("pair")
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {REAL_NODE}
    results = sorted(
        (prefetch_result(k8s, namespace, p["metadata"]["name"]) for p in pods),
        key=lambda r: r["cacheHit"],
    )
    filled, shared = results
    assert filled["cacheKey"] == shared["cacheKey"]
    assert not filled["cacheHit"] and filled["fetchedBytes"] == filled["totalBytes"] > 0
    # The second prefetcher waited for the first (the node's cache lock), then verified its copy.
    assert shared["cacheHit"] and shared["fetchedBytes"] == 0
    copies = list((node.layout.var_cache / "warmpool").rglob("model.py"))
    assert sum(filled["cacheKey"] in str(copy) for copy in copies) == 1, copies


def test_prepull_daemonset_fills_the_node_cache_before_any_replica(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    pools.create("early", {"warmFloor": 0, "maxReplicas": 1})
    patch = {"spec": {"cache": {"kind": "node", "prepull": True}}}
    kubernetes.client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "early", patch
    )
    apps = kubernetes.client.AppsV1Api(k8s)

    def ready_daemonset() -> Any:
        for daemonset in apps.list_namespaced_daemon_set(namespace).items:
            if daemonset.status.number_ready == 1:
                return daemonset
        return None

    daemonset = poll_until(
        ready_daemonset, what="the pre-pull DaemonSet Ready", timeout=POD_TIMEOUT
    )
    selector = ",".join(f"{k}={v}" for k, v in daemonset.spec.selector.match_labels.items())
    (pod,) = (
        kubernetes.client.CoreV1Api(k8s)
        .list_namespaced_pod(namespace, label_selector=selector)
        .items
    )
    assert pod.spec.node_name == REAL_NODE
    result = prefetch_result(k8s, namespace, pod.metadata.name)
    assert result["fetchedBytes"] == result["totalBytes"] > 0
    labels = kubernetes.client.CoreV1Api(k8s).read_node(REAL_NODE).metadata.labels
    poll_until(
        lambda: any(
            key.startswith("prepull.warmpool.dev/")
            for key in kubernetes.client.CoreV1Api(k8s).read_node(REAL_NODE).metadata.labels
        ),
        what="the node labelled as holding the pool's weights",
        timeout=60,
    )
    assert not pools.pods("early"), labels


def test_new_weights_are_prepulled_before_the_new_replica_starts(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    pools: NodePools,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    """A new revision of the weights on a pre-pull pool: the real pre-pull pod downloads them
    (real `warmpool prefetch`, real kubelet) before the Deployment's template changes, so the
    new replica is created only after that pod is Ready and finds them in the node cache."""
    pools.create("revs", {"warmFloor": 1, "maxReplicas": 1})
    custom = kubernetes.client.CustomObjectsApi(k8s)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "revs", {"spec": {"cache": {"prepull": True}}}
    )
    # Turning pre-pull on changes the template too (the affinity): wait for that roll-out.
    pools.wait(
        "revs",
        "one warm replica of the current template, the r1 weights pre-pulled",
        lambda p: (
            warm(p, 1)
            and p["status"].get("observedGeneration") == p["metadata"]["generation"]
            and (p["status"].get("rollout") or {}).get("oldReplicas") == 0
            and p["status"].get("cachedNodes") == 1
        ),
    )
    (old,) = pools.pods("revs")
    old_revision = old["metadata"]["annotations"]["warmpool.dev/revision"]

    # New weights (the same files under another revision label: another cache key).
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "revs", {"spec": {"model": {"revision": "r2"}}}
    )
    done = pools.wait(
        "revs",
        "the r2 revision warm, the old replica gone",
        lambda p: (
            warm(p, 1)
            and (p["status"].get("rollout") or {}).get("revision") not in (None, old_revision)
            and p["status"]["rollout"].get("oldReplicas") == 0
            and p["status"]["rollout"].get("warmReplicas") == 1
        ),
    )
    core = kubernetes.client.CoreV1Api(k8s)
    daemonset = kubernetes.client.AppsV1Api(k8s).read_namespaced_daemon_set(
        "revs-prepull", namespace
    )
    fingerprint = daemonset.metadata.annotations["warmpool.dev/model-fingerprint"]
    prepull_pods = [
        pod
        for pod in core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/component=prepull"
        ).items
        if pod.metadata.annotations["warmpool.dev/model-fingerprint"] == fingerprint
        and pod.metadata.deletion_timestamp is None
    ]
    (prepull,) = prepull_pods
    ready_at = next(c.last_transition_time for c in prepull.status.conditions if c.type == "Ready")
    (new,) = pools.pods("revs")
    # The pre-pull pod downloaded the r2 weights; the new replica was created only once that
    # copy was verified (the pod Ready), and found it in the node cache.
    fetched = prefetch_result(k8s, namespace, prepull.metadata.name)
    assert fetched["fetchedBytes"] == fetched["totalBytes"] > 0
    assert seconds(new["metadata"]["creationTimestamp"]) >= ready_at.timestamp()
    used = prefetch_result(k8s, namespace, new["metadata"]["name"])
    assert used["cacheKey"] == fetched["cacheKey"]
    assert used["cacheHit"] and used["fetchedBytes"] == 0
    record = done["status"]["rollout"]["prepull"]
    assert record["fingerprint"] == fingerprint
    assert (record["held"], record.get("timedOut", False), record["verifiedNodes"]) == (
        False,
        False,
        1,
    )
