"""Scale from zero on the real control plane: a burst of requests arriving while a pool has no
replica is held by the activator, wakes the pool at once, and is answered in full (each request
its own correct answer, none dropped, none duplicated) once a replica is warm.

Real: kube-apiserver, controller-manager, scheduler, `warmpool operator`, `warmpool activator`
(its wake patch goes through the real apiserver), Triton serving `affine` (OUTPUT0 = 2*INPUT0+1),
`warmpool warmup` with a pod-bound token and the chart's warm-up RBAC and admission policy.
Stand-ins, because they cannot exist here: KWOK plays the kubelet; the pod's containers are a
local Triton on the pod's loopback IP and the warm-up program as a local process. EndpointSlices
refuse loopback addresses, so the test tells the activator the warm pod's address through its
`--endpoints-file` the moment the pod turns Ready, standing in for the EndpointSlice controller
(the activator's EndpointSlice discovery itself is tested in test_activator.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import numpy as np
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    free_port,
    warmpool_executable,
)
from pool_support import (
    operator_fixture,  # noqa: F401  (fixture `operator`)
    running_pod,
    warm_up_once,
)
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.triton import TritonServer, require_triton
from warmpool.envtest import LocalCluster, poll_until
from warmpool.envtest.process import ComponentProcess

MODELS = Path(__file__).resolve().parents[1] / "integration" / "activator" / "models"
POOL = "coldpool"
BURST = 40


def infer(port: int, pool: str, i: int) -> tuple[int, list[float]]:
    """One KServe v2 HTTP inference through the activator; (status, OUTPUT0)."""
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [3], "data": values(i)}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/affine/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Warmpool-Pool": pool},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT * 3) as reply:
        answer = json.loads(reply.read())
    return reply.status, answer["outputs"][0]["data"]


def values(i: int) -> list[float]:
    return [float(i), float(-i), 0.5 * i]


def deployment_replicas(api: kubernetes.client.ApiClient, namespace: str) -> int:
    try:
        deployment = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(POOL, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return -1
        raise
    return int(deployment.spec.replicas or 0)


def test_burst_at_zero_is_answered_in_full_once_warm(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    gate_policy: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    require_triton()
    inputs = [{"name": "INPUT0", "datatype": "FP32", "shape": [3]}]
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": POOL, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/affine", "name": "affine"},
            "warmup": {"inputs": inputs, "tolerance": 0.5},
            "scaling": {"warmFloor": 0, "maxReplicas": 2, "scaleToZeroAfterSeconds": 3600},
        },
    }
    kubernetes.client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    poll_until(
        lambda: deployment_replicas(k8s, namespace) == 0,
        what="the pool's Deployment at zero",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )

    endpoints = tmp_path / "endpoints.json"
    key = f"{namespace}/{POOL}"
    endpoints.write_text(json.dumps({key: []}))
    http_port = free_port()
    activator = ComponentProcess(
        "activator",
        [
            warmpool_executable(),
            "activator",
            "--endpoints-file",
            str(endpoints),
            "--wake-through-api",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--bind",
            "127.0.0.1",
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--hold-timeout",
            "600",
        ],
        cluster.logs_dir / "activator-scale-from-zero.log",
    )
    try:

        def activator_up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/live"):
                    return True
            except urllib.error.HTTPError:  # any answer (no route: 421) means it listens
                return True
            except urllib.error.URLError:
                return False

        poll_until(activator_up, what="activator listening", timeout=60)

        with ThreadPoolExecutor(max_workers=BURST) as clients:
            sent_at = time.monotonic()
            calls = [clients.submit(infer, http_port, key, i) for i in range(BURST)]
            poll_until(
                lambda: deployment_replicas(k8s, namespace) >= 1,
                what="the wake to scale the Deployment up",
                timeout=TIMEOUT,
                interval=0.02,
                describe=operator.log_tail,
            )
            wake_to_scaled = time.monotonic() - sent_at
            print(f"wake_to_scaled_s={wake_to_scaled:.3f} (first request sent -> replicas >= 1)")
            assert not any(call.done() for call in calls), "a request was answered at zero"

            pod = running_pod(k8s, namespace, POOL)
            ip = pod["status"]["podIP"]
            with TritonServer(
                MODELS,
                http_address=ip,
                extra_args=["--model-control-mode=explicit", "--load-model=affine"],
            ) as triton:
                stats = warm_up_once(
                    cluster,
                    k8s,
                    pod,
                    account=f"{POOL}-warmup",
                    triton_url=triton.http_url,
                    model="affine",
                    inputs=inputs,
                    tolerance=0.5,
                )
                warmed = int(stats["requests"])

                # The pod is warm: the EndpointSlice controller would now list it.
                endpoints.write_text(json.dumps({key: [{"ip": ip, "http": triton.http_port}]}))
                answers = [call.result(timeout=TIMEOUT * 2) for call in calls]
                served_stats = json.loads(
                    urllib.request.urlopen(
                        f"http://{triton.http_url}/v2/models/affine/stats"
                    ).read()
                )
    finally:
        activator.stop()

    for i, (status, output) in enumerate(answers):
        assert status == 200
        np.testing.assert_allclose(output, 2 * np.array(values(i)) + 1)
    served = served_stats["model_stats"][0]["inference_stats"]["success"]["count"]
    assert served == BURST + warmed, (served, warmed)
