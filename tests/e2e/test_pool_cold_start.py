"""A pool's whole cold start on the real control plane, with the real warm-up program and a
real Triton: the pod joins only when warm, and the pool reports where the time went.

Real: kube-apiserver, controller-manager (Deployment, ReplicaSet), scheduler, `warmpool
operator`, the chart's warm-up ClusterRole and admission policy, TokenRequest with a pod-bound
token, Triton (CPU, Python backend) serving a model with a genuine warm-up curve, and
`warmpool warmup`. Stand-ins, because they cannot exist here: KWOK plays the kubelet (its pod
stages honour readiness gates, and no prefetch runs in its pods), and the pod's containers are a
local Triton bound to the pod's loopback IP and the warm-up program run as a local process with
the pod's identity.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    condition,
    get_pool,
    install_crd,
    pool_pods,
)
from test_operator import pool_events, wait_pool
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.triton import TritonServer, require_triton
from warmpool.envtest import LocalCluster, poll_until
from warmpool.envtest.kubeconfig import build_kubeconfig, write_kubeconfig
from warmpool.warmup.report import parse_message, parse_time

MODELS = Path(__file__).resolve().parents[1] / "models"
POOL = "coldpool"
INPUTS = [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}]


@pytest.fixture
def operator(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crd(cluster, tmp_path)
    kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
    process = OperatorProcess(
        cluster, kubeconfig, cluster.logs_dir, extra=["--namespace", namespace]
    )
    try:
        yield process
    finally:
        process.stop()


def running_pod(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for pod in pool_pods(api, namespace, POOL):
            ready = condition(pod, "ContainersReady")
            if pod.get("status", {}).get("podIP") and ready and ready["status"] == "True":
                return pod
        return None

    return poll_until(probe, what=f"a running pod of {POOL}", timeout=TIMEOUT)


def pod_bound_kubeconfig(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, namespace: str, pod: dict[str, Any]
) -> Path:
    """What the kubelet projects into the warm-up sidecar: a token of the pool's warm-up
    ServiceAccount (created by the operator), bound to this pod."""
    account = f"{POOL}-warmup"
    bound = {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"]}
    bound["uid"] = pod["metadata"]["uid"]
    response = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
        account,
        namespace,
        {"spec": {"audiences": [], "expirationSeconds": 3600, "boundObjectRef": bound}},
    )
    config = build_kubeconfig(
        server=cluster.server,
        ca_pem=cluster.ca_cert.read_bytes(),
        user=f"system:serviceaccount:{namespace}:{account}",
        token=response.status.token,
        namespace=namespace,
    )
    return write_kubeconfig(cluster.root_dir / f"cold-{namespace}.kubeconfig", config)


def test_pool_turns_warm_only_after_real_warmup_and_reports_its_cold_start(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    gate_policy: dict[str, Any],  # noqa: F811
) -> None:
    require_triton()
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": POOL, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/warmup-curve", "name": "warmup_curve"},
            "warmup": {"inputs": INPUTS, "tolerance": 0.25},
            "scaling": {"warmFloor": 1, "maxReplicas": 2},
        },
    }
    kubernetes.client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    pod = running_pod(k8s, namespace)
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    # The gate holds the pod out of the Service: containers run, the pod is not Ready.
    assert condition(pod, "Ready")["status"] == "False"  # type: ignore[index]
    assert get_pool(k8s, namespace, POOL).get("status", {}).get("warmReplicas", 0) == 0

    kubeconfig = pod_bound_kubeconfig(cluster, k8s, namespace, pod)
    with TritonServer(
        MODELS,
        http_address=ip,
        extra_args=["--model-control-mode=explicit", "--load-model=warmup_curve"],
    ) as triton:
        warmup = subprocess.run(
            [
                sys.executable,
                "-m",
                "warmpool.warmup",
                "--url",
                triton.http_url.removeprefix("http://"),
                "--model",
                "warmup_curve",
                "--inputs",
                json.dumps(INPUTS),
                "--tolerance",
                "0.25",
                "--timeout",
                "240",
                "--pod-name",
                name,
                "--pod-namespace",
                namespace,
                "--kubeconfig",
                str(kubeconfig),
                "--health-port",
                "0",
                "--once",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert warmup.returncode == 0, warmup.stderr[-3000:]

    read = kubernetes.client.CoreV1Api(k8s).read_namespaced_pod(name, namespace)
    gate = condition(k8s.sanitize_for_serialization(read), "warmpool.dev/warm")
    assert gate is not None and gate["status"] == "True", gate
    stats, _ = parse_message(gate["message"])

    pool = wait_pool(
        k8s,
        namespace,
        POOL,
        "warm with its cold start reported",
        lambda p: (
            p.get("status", {}).get("warmReplicas") == 1
            and (p["status"].get("lastColdStart") or {}).get("pod") == name
        ),
        operator,
    )
    cold = pool["status"]["lastColdStart"]
    # The warm-up phase is the sidecar's own measurement: server ready -> gate open.
    expected_warmup = (
        parse_time(stats["warmAt"]) - parse_time(stats["serverReadyAt"])
    ).total_seconds()
    assert cold["warmupSeconds"] == pytest.approx(expected_warmup, abs=1.0)
    assert cold["warmupSeconds"] > 0
    phases = ("schedulingSeconds", "prefetchSeconds", "serverStartSeconds", "warmupSeconds")
    assert all(cold[phase] >= 0 for phase in phases), cold
    assert cold["totalSeconds"] == pytest.approx(sum(cold[p] for p in phases), abs=1.5)
    assert pool["status"]["phase"] == "Ready"

    events = [e.get("note", "") for e in pool_events(cluster, namespace, POOL)]
    assert any(note.startswith("cold start") for note in events), events
    assert operator.metric("warmpool_cold_start_seconds_count", phase="warmup") >= 1
