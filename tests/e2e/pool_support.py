"""Helpers for e2e tests that take a pool's pod through its real warm-up: the pod's identity
(a token bound to it, as the kubelet projects into the sidecar) and the real `warmpool warmup`
program run once against a local Triton standing in for the pod's server container."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import (
    OPERATOR_USER,
    TIMEOUT,
    OperatorProcess,
    condition,
    install_crd,
    pool_pods,
)

from warmpool.envtest import LocalCluster, poll_until
from warmpool.envtest.kubeconfig import build_kubeconfig, write_kubeconfig
from warmpool.warmup.report import parse_message

GATE = "warmpool.dev/warm"


@contextmanager
def running_operator(
    cluster: LocalCluster, namespace: str, workdir: Path, extra: Sequence[str] = ()
) -> Iterator[OperatorProcess]:
    """The CRD installed and `warmpool operator` watching `namespace` (admin identity here;
    the chart's RBAC is exercised by test_operator_helm.py)."""
    install_crd(cluster, workdir)
    kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
    process = OperatorProcess(
        cluster, kubeconfig, cluster.logs_dir, extra=["--namespace", namespace, *extra]
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(name="operator")
def operator_fixture(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """Fixture `operator`: `running_operator` for the test's namespace. A module that wants it
    imports `operator_fixture` (pytest finds it under its fixture name)."""
    with running_operator(cluster, namespace, tmp_path) as process:
        yield process


def running_pod(api: kubernetes.client.ApiClient, namespace: str, pool: str) -> dict[str, Any]:
    """The first pod of `pool` whose containers run and that has an IP."""

    def probe() -> dict[str, Any] | None:
        for pod in pool_pods(api, namespace, pool):
            ready = condition(pod, "ContainersReady")
            if pod.get("status", {}).get("podIP") and ready and ready["status"] == "True":
                return pod
        return None

    return poll_until(probe, what=f"a running pod of {pool}", timeout=TIMEOUT)


def pod_bound_kubeconfig(
    cluster: LocalCluster,
    api: kubernetes.client.ApiClient,
    namespace: str,
    pod: dict[str, Any],
    account: str,
) -> Path:
    """A kubeconfig with a token of ServiceAccount `account` bound to `pod`."""
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
    path = cluster.root_dir / f"warmup-{namespace}-{pod['metadata']['name']}.kubeconfig"
    return write_kubeconfig(path, config)


def warm_up_once(
    cluster: LocalCluster,
    api: kubernetes.client.ApiClient,
    pod: dict[str, Any],
    *,
    account: str,
    triton_url: str,
    model: str,
    inputs: list[dict[str, Any]],
    tolerance: float,
) -> dict[str, str]:
    """Run the real warm-up program with the pod's identity until the gate opens; return the
    gate condition's `key=value` statistics (read back from the pod)."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    kubeconfig = pod_bound_kubeconfig(cluster, api, namespace, pod, account)
    program = subprocess.run(
        [
            sys.executable,
            "-m",
            "warmpool.warmup",
            "--url",
            triton_url,
            "--model",
            model,
            "--inputs",
            json.dumps(inputs),
            "--tolerance",
            str(tolerance),
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
    assert program.returncode == 0, program.stderr[-3000:]
    read = kubernetes.client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    gate = condition(api.sanitize_for_serialization(read), GATE)
    assert gate is not None and gate["status"] == "True", gate
    pairs, _ = parse_message(gate["message"])
    return pairs
