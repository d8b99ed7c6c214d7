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

from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import GROUP, PLURAL, VERSION, OperatorProcess, condition, get_pool
from pool_support import (
    operator_fixture,  # noqa: F401  (fixture `operator`)
    running_pod,
    warm_up_once,
)
from test_operator import pool_events, wait_pool
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.triton import TritonServer, require_triton
from warmpool.envtest import LocalCluster
from warmpool.warmup.report import parse_time

MODELS = Path(__file__).resolve().parents[1] / "models"
POOL = "coldpool"
INPUTS = [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}]


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
    pod = running_pod(k8s, namespace, POOL)
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    # The gate holds the pod out of the Service: containers run, the pod is not Ready.
    assert condition(pod, "Ready")["status"] == "False"  # type: ignore[index]
    assert get_pool(k8s, namespace, POOL).get("status", {}).get("warmReplicas", 0) == 0

    with TritonServer(
        MODELS,
        http_address=ip,
        extra_args=["--model-control-mode=explicit", "--load-model=warmup_curve"],
    ) as triton:
        stats = warm_up_once(
            cluster,
            k8s,
            pod,
            account=f"{POOL}-warmup",
            triton_url=triton.http_url,
            model="warmup_curve",
            inputs=INPUTS,
            tolerance=0.25,
        )

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
