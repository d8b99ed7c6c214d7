"""The generated CRD on a real kube-apiserver: accepted, defaulted, and refusing bad input
with a message that names the field. No operator runs here: this is the API's own contract."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from warmpool.api import GROUP, PLURAL, VERSION
from warmpool.envtest import LocalCluster, find_binary

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "warmpool.dev_inferencepools.yaml"


def kubectl(
    cluster: LocalCluster, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_binary("kubectl")), *args],
        env=cluster.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def crd(cluster: LocalCluster) -> Iterator[None]:
    """The checked-in CRD, applied as-is: the apiserver must accept it unchanged."""
    applied = kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    assert applied.returncode == 0, applied.stderr
    established = kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/inferencepools.warmpool.dev",
    )
    assert established.returncode == 0, established.stderr
    yield


def pool(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(
    k8s: kubernetes.client.ApiClient, namespace: str, body: dict[str, Any]
) -> dict[str, Any]:
    api = kubernetes.client.CustomObjectsApi(k8s)
    created: dict[str, Any] = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return created


def rejection(k8s: kubernetes.client.ApiClient, namespace: str, body: dict[str, Any]) -> str:
    """The apiserver's message refusing `body` (the test fails if it is accepted)."""
    with pytest.raises(kubernetes.client.ApiException) as caught:
        create(k8s, namespace, body)
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


MODEL = {"uri": "s3://models/resnet50"}


def test_minimal_pool_is_defaulted(
    crd: None, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    created = create(k8s, namespace, pool("minimal", {"model": MODEL}))
    spec = created["spec"]
    assert spec["scaling"]["warmFloor"] == 1
    assert spec["scaling"]["maxReplicas"] == 4
    assert spec["server"]["gpu"]["count"] == 1
    assert spec["cache"]["kind"] == "node"
    assert spec["warmup"]["tolerance"] == 0.1
    assert "replicas" not in spec


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        (
            {"model": MODEL, "scaling": {"warmFloor": 5, "maxReplicas": 2}},
            ["spec.scaling.warmFloor", "warmFloor must be <= maxReplicas"],
        ),
        (
            {"model": MODEL, "scaling": {"warmFloor": 1, "scaleToZeroAfterSeconds": 30}},
            ["spec.scaling.scaleToZeroAfterSeconds", "requires warmFloor: 0"],
        ),
        (
            {
                "model": MODEL,
                "scaling": {
                    "maxReplicas": 2,
                    "schedules": [{"cron": "0 8 * * 1-5", "warmFloor": 3, "durationMinutes": 60}],
                },
            },
            ["spec.scaling.schedules", "<= maxReplicas"],
        ),
        ({"model": {"uri": "ftp://host/model"}}, ["spec.model.uri"]),
        ({"model": {**MODEL, "revision": "r" * 100_000}}, ["spec.model.revision", "Too long"]),
        ({"model": MODEL, "scaling": {"warmFloor": "three"}}, ["spec.scaling.warmFloor"]),
        ({"model": MODEL, "scaling": {"maxReplicas": 10**9}}, ["spec.scaling.maxReplicas"]),
        ({"model": MODEL, "cache": {"kind": "pvc"}}, ["spec.cache.claimName"]),
        (
            {"model": MODEL, "warmup": {"minRequests": 50, "maxRequests": 10}},
            ["spec.warmup.minRequests"],
        ),
        (
            {"model": MODEL, "server": {"ports": {"http": 8001}}},
            ["spec.server.ports", "must differ"],
        ),
        (
            {"model": {**MODEL, "sha256": {"a.bin": "0" * 64}, "sha256File": "SHA256SUMS"}},
            ["spec.model.sha256File"],
        ),
        ({"model": {**MODEL, "sha256": {"a.bin": "not-hex"}}}, ["spec.model.sha256.a.bin"]),
        (
            {"model": MODEL, "server": {"env": [{"name": "A", "value": "1"}] * 2}},
            ["spec.server.env[1]", "Duplicate value"],
        ),
        (
            {"model": MODEL, "server": {"nodeSelector": {"k": "not a label value!"}}},
            ["spec.server.nodeSelector.k"],
        ),
        (
            {"model": MODEL, "server": {"nodeSelector": {"-bad-key": "v"}}},
            ["spec.server.nodeSelector", "keys must match"],
        ),
        (
            {"model": {"uri": "file:///etc/../../proc/self"}},
            ["spec.model.uri", "'..' path segments"],
        ),
        (
            {
                "model": MODEL,
                "scaling": {
                    "schedules": [{"cron": "every day", "warmFloor": 1, "durationMinutes": 5}]
                },
            },
            ["spec.scaling.schedules[0].cron"],
        ),
        (
            {"model": MODEL, "scaling": {"target": {"type": "KVCacheUtilization", "value": 80}}},
            ["spec.scaling.target.value", "fraction of the KV cache"],
        ),
        (
            {"model": MODEL, "scaling": {"target": {"type": "TokensPerMinute", "value": 1}}},
            ["spec.scaling.target.type", "TokensPerSecond"],
        ),
        (
            {"model": MODEL, "warmup": {"llm": {"prompts": ["hi"], "promptsConfigMap": "p"}}},
            ["spec.warmup.llm.promptsConfigMap", "not both"],
        ),
        ({"model": MODEL, "warmup": {"mode": "chat"}}, ["spec.warmup.mode"]),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    crd: None,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    spec: dict[str, Any],
    fragments: list[str],
) -> None:
    message = rejection(k8s, namespace, pool("bad", spec))
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_field_is_refused_by_strict_validation(
    crd: None, cluster: LocalCluster, namespace: str
) -> None:
    manifest = json.dumps(pool("typo", {"model": MODEL, "scaling": {"warmFlor": 2}}))
    result = kubectl(
        cluster, "apply", "-n", namespace, "--validate=strict", "-f", "-", stdin=manifest
    )
    assert result.returncode != 0
    assert "spec.scaling.warmFlor" in result.stderr, result.stderr


def test_kubectl_explain_reads_the_models_docstrings(crd: None, cluster: LocalCluster) -> None:
    result = kubectl(
        cluster, "explain", "inferencepools.spec.scaling.predictive.coldStartCostSeconds"
    )
    assert result.returncode == 0, result.stderr
    assert "GPU-seconds one request that waits on a cold" in result.stdout


def test_scale_subresource_sets_spec_replicas(
    crd: None, cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    create(k8s, namespace, pool("scaled", {"model": MODEL}))
    result = kubectl(cluster, "scale", "-n", namespace, "inferencepool/scaled", "--replicas=3")
    assert result.returncode == 0, result.stderr
    api = kubernetes.client.CustomObjectsApi(k8s)
    fetched = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "scaled")
    assert fetched["spec"]["replicas"] == 3


def test_printer_columns_and_short_name(
    crd: None, cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    create(k8s, namespace, pool("columns", {"model": MODEL}))
    result = kubectl(cluster, "get", "ipool", "-n", namespace)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == [
        "NAME",
        "PHASE",
        "DESIRED",
        "READY",
        "WARM",
        "FLOOR",
        "MAX",
        "COLD-START",
        "AGE",
    ]
    wide = kubectl(cluster, "get", "warmpool", "-n", namespace, "-o", "wide")
    assert "OWNER" in wide.stdout and "MODEL" in wide.stdout, wide.stdout


@pytest.mark.parametrize("name", ["Upper", "9starts-with-digit", "a" * 59])
def test_pool_names_that_cannot_name_services_are_refused(
    crd: None, k8s: kubernetes.client.ApiClient, namespace: str, name: str
) -> None:
    message = rejection(k8s, namespace, pool(name, {"model": MODEL}))
    assert "metadata.name" in message, message
