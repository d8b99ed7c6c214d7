"""No secret in logs, Events, status or any object the operator writes.

Known secret values are planted: S3 credentials (a Secret the pool names in
spec.model.credentialsSecret, which a real S3 server is started with, so the values really are
used), a Hugging Face token (a Secret the server's env refers to), and the warm-up sidecar's
pod-bound ServiceAccount token. Then the real operator reconciles the pool, the real `warmpool
prefetch` downloads from the real S3 server with the rendered arguments and the Secret as its
environment (what the kubelet would give the init container), and the real `warmpool warmup`
runs with the pod-bound token against a real Triton standing in for the pod's server. Every
log (operator, programs, control plane, audit), every Event, the pool (status included) and
every object in the namespace except the Secrets themselves are searched for each value and
its base64.

Real: the control plane, the operator, versitygw (S3), `warmpool prefetch`, `warmpool warmup`,
Triton (CPU). Mocked: kubelets and GPUs (KWOK); the test runs the pod's programs itself.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import kubernetes
import pytest
import yaml
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    condition,
    kubectl,
    pool_pods,
)
from pool_support import pod_bound_kubeconfig, running_operator
from test_warmup_gate import gate_policy  # noqa: F401  (the chart's warm-up role, installed)

from support.components import component_unavailable
from support.triton import TritonServer, free_port, require_triton
from warmpool.envtest import LocalCluster, poll_until
from warmpool.envtest.binaries import cache_dir

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL = "warmup_curve"
BUCKET = "models"
#: Kinds the operator writes (and the controllers derive from them) in a pool's namespace.
NAMESPACED_KINDS = (
    "inferencepools.warmpool.dev",
    "deployments.apps",
    "replicasets.apps",
    "daemonsets.apps",
    "pods",
    "services",
    "endpointslices.discovery.k8s.io",
    "serviceaccounts",
    "rolebindings.rbac.authorization.k8s.io",
    "configmaps",
    "events",
    "events.events.k8s.io",
)


@dataclass
class Planted:
    """The secret values; every one must appear nowhere but in its Secret."""

    access_key: str
    secret_key: str
    hf_token: str
    warmup_token: str = ""

    def needles(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for label, value in vars(self).items():
            if not value:
                continue
            raw = value.encode()
            found[label] = value
            found[f"{label} (base64)"] = base64.b64encode(raw).decode().rstrip("=")
            found[f"{label} (base64url)"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return found


def leaks(text: str, planted: Planted) -> list[str]:
    return [label for label, needle in planted.needles().items() if needle in text]


@dataclass
class S3:
    endpoint: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def planted() -> Planted:
    # Distinctive, random per run: nothing else can contain them by chance.
    return Planted(
        access_key="WPAK" + secrets.token_hex(8).upper(),
        secret_key="wpsk-" + secrets.token_urlsafe(24),
        hf_token="hf_" + secrets.token_hex(16),
    )


@pytest.fixture
def s3(tmp_path: Path, planted: Planted) -> Iterator[S3]:
    """versitygw whose only credentials are the planted ones, with a small model uploaded."""
    binary = cache_dir() / "bin" / "versitygw"
    if not binary.exists():
        component_unavailable("s3", f"no versitygw at {binary} (hack/build-s3.sh)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    root = tmp_path / "s3"
    root.mkdir()
    log = tmp_path / "versitygw.log"
    process = subprocess.Popen(
        [
            str(binary), "--access", planted.access_key, "--secret", planted.secret_key,
            "--port", f"127.0.0.1:{port}", "--quiet", "posix", str(root),
        ],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"versitygw exited: {log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
            except OSError:
                return False
            return True

        poll_until(listening, what="versitygw listening", timeout=30)
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=planted.access_key,
            aws_secret_access_key=planted.secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        for path in sorted((MODELS / MODEL).rglob("*")):
            if path.is_file():
                key = f"{MODEL}/{path.relative_to(MODELS / MODEL)}"
                client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        yield S3(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _create_secrets(core: Any, namespace: str, planted: Planted) -> None:
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "model-creds"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": planted.access_key,
                "AWS_SECRET_ACCESS_KEY": planted.secret_key,
            },
        },
    )
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "hf"}, "stringData": {"HF_TOKEN": planted.hf_token}}
    )


def _pool(namespace: str, endpoint: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": "secretive", "namespace": namespace},
        "spec": {
            "model": {
                "uri": f"s3://{BUCKET}/{MODEL}",
                "name": MODEL,
                "endpoint": endpoint,
                "credentialsSecret": "model-creds",
            },
            "server": {
                "gpu": {"count": 0},
                "env": [
                    {
                        "name": "HF_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "HF_TOKEN"}},
                    }
                ],
            },
            "cache": {"kind": "ephemeral"},
            "warmup": {
                "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}],
                "tolerance": 0.25,
            },
            "scaling": {"warmFloor": 1, "maxReplicas": 1},
        },
    }


def _secret_env(core: Any, namespace: str, name: str) -> dict[str, str]:
    """The Secret as environment, as the kubelet resolves envFrom."""
    secret = core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _run_prefetch(
    container: dict[str, Any], env: dict[str, str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """The rendered init container's command, with its paths moved under `workdir`."""
    remap = {
        "--cache-dir=": workdir / "cache",
        "--dest=": workdir / "models" / MODEL,
        "--termination-log=": workdir / "termination-log",
    }
    (workdir / "models").mkdir(parents=True)
    args = []
    for arg in container["args"]:
        prefix = next((p for p in remap if arg.startswith(p)), None)
        args.append(f"{prefix}{remap[prefix]}" if prefix else arg)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HF_"))}
    rendered = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return subprocess.run(
        [sys.executable, "-m", "warmpool.prefetch.cli", *args],
        env=clean | rendered | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _run_warmup(
    cluster: LocalCluster,
    api: kubernetes.client.ApiClient,
    pod: dict[str, Any],
    planted: Planted,
    args: list[str],
) -> subprocess.CompletedProcess[str]:
    namespace = pod["metadata"]["namespace"]
    kubeconfig = pod_bound_kubeconfig(cluster, api, namespace, pod, "secretive-warmup")
    # The token the sidecar would find in its projected volume: a secret too.
    config = yaml.safe_load(kubeconfig.read_text())
    planted.warmup_token = config["users"][0]["user"]["token"]
    ip = pod["status"]["podIP"]
    with TritonServer(
        MODELS,
        http_address=ip,
        extra_args=["--model-control-mode=explicit", f"--load-model={MODEL}"],
    ) as triton:
        # The rendered arguments; the URL, bounds and health address moved to this machine's
        # stand-ins, the pod's identity given explicitly (argparse: the last value wins).
        command = [
            sys.executable, "-m", "warmpool.warmup", *args,
            "--url", triton.http_url, "--timeout", "240",
            "--pod-name", pod["metadata"]["name"], "--pod-namespace", namespace,
            "--kubeconfig", str(kubeconfig),
            "--health-address", ip, "--health-port", str(free_port(ip)), "--once",
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _namespace_dump(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    return {
        kind: kubectl(cluster, "get", kind, "-n", namespace, "-o", "json").stdout
        for kind in NAMESPACED_KINDS
    }


def test_planted_secrets_appear_nowhere(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    tmp_path: Path,
    planted: Planted,
    s3: S3,
    gate_policy: dict[str, Any],  # noqa: F811  (the imported fixture)
) -> None:
    require_triton()
    core: Any = kubernetes.client.CoreV1Api(k8s)
    _create_secrets(core, namespace, planted)
    with running_operator(cluster, namespace, tmp_path / "crd") as operator:
        kubernetes.client.CustomObjectsApi(k8s).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _pool(namespace, s3.endpoint)
        )
        pod = _running_pool_pod(k8s, namespace, operator)
        spec = pod["spec"]
        prefetch = next(c for c in spec["initContainers"] if c["name"] == "prefetch")
        warmup = next(c for c in spec["initContainers"] if c["name"] == "warmup")
        # Credentials reach the pod by reference only (envFrom / secretKeyRef).
        assert prefetch["envFrom"] == [{"secretRef": {"name": "model-creds"}}]

        fetched = _run_prefetch(
            prefetch, _secret_env(core, namespace, "model-creds"), tmp_path / "pod"
        )
        assert fetched.returncode == 0, fetched.stderr[-3000:]
        assert (tmp_path / "pod" / "models" / MODEL).exists()

        warmed = _run_warmup(cluster, k8s, pod, planted, warmup["args"])
        assert warmed.returncode == 0, warmed.stderr[-3000:]
        poll_until(
            lambda: (
                (condition(_pod(k8s, namespace, pod), "warmpool.dev/warm") or {}).get("status")
                == "True"
            ),
            what="the warm gate open",
            timeout=TIMEOUT,
        )
        poll_until(
            lambda: (_status(k8s, namespace).get("warmReplicas") or 0) >= 1,
            what="the operator reporting the warm replica",
            timeout=TIMEOUT,
            describe=operator.log_tail,
        )

    # Search everything (the operator is stopped: its log is complete).
    assert planted.warmup_token, "the warm-up token was not planted"
    texts: dict[str, str] = {
        "prefetch stdout": fetched.stdout,
        "prefetch stderr": fetched.stderr,
        "prefetch termination message": (tmp_path / "pod" / "termination-log").read_text()
        if (tmp_path / "pod" / "termination-log").exists()
        else "",
        "warmup stdout": warmed.stdout,
        "warmup stderr": warmed.stderr,
    }
    for path in sorted(cluster.logs_dir.glob("*.log")):
        texts[f"log {path.name}"] = path.read_text(errors="replace")
    texts |= {f"objects {k}": v for k, v in _namespace_dump(cluster, namespace).items()}
    texts["nodes"] = kubectl(cluster, "get", "nodes", "-o", "json").stdout
    assert '"secretive"' in texts["objects inferencepools.warmpool.dev"]
    assert "warmReplicas" in texts["objects inferencepools.warmpool.dev"]
    found = {where: hits for where, text in texts.items() if (hits := leaks(text, planted))}
    assert found == {}, f"secret values leaked: {found}"
    # The search can fail: the Secrets themselves do hold the values.
    secrets_json = kubectl(cluster, "get", "secrets", "-n", namespace, "-o", "json").stdout
    assert {"access_key (base64)", "hf_token (base64)"} <= set(leaks(secrets_json, planted))


def _pod(api: kubernetes.client.ApiClient, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    read = kubernetes.client.CoreV1Api(api).read_namespaced_pod(pod["metadata"]["name"], namespace)
    data: dict[str, Any] = api.sanitize_for_serialization(read)
    return data


def _status(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, Any]:
    pool = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "secretive"
    )
    return dict(pool.get("status") or {})


def _running_pool_pod(
    api: kubernetes.client.ApiClient, namespace: str, operator: OperatorProcess
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for pod in pool_pods(api, namespace, "secretive"):
            ready = condition(pod, "ContainersReady")
            if pod.get("status", {}).get("podIP") and ready and ready["status"] == "True":
                return pod
        return None

    found: dict[str, Any] = poll_until(
        probe, what="a running pod of the pool", timeout=TIMEOUT, describe=operator.log_tail
    )
    return found
