"""`InferencePool` is also a kind of the Gateway API Inference Extension
(inference.networking.k8s.io). With both CRDs installed, on a control plane of its own (so the
session cluster's `kubectl get inferencepools` stays unambiguous for the other tests): what the
real kubectl resolves each name to, and that the operator's own requests (group-qualified
paths) are unaffected. docs/naming.md says how to address each, and why the kind keeps its name.

The extension's CRD is the real one, from its Go module at a pinned version
(hack/fetch-gateway-inference-crds.sh).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_support import CRD_PATH
from test_crd_apiserver import kubectl

from support.components import component_unavailable
from warmpool.envtest import LocalCluster
from warmpool.envtest.binaries import (
    BinaryNotFoundError,
    ControlPlaneBinaries,
    cache_dir,
)

GAIE_VERSION = "v1.6.2"
GAIE_CRD = (
    cache_dir()
    / f"gateway-inference-crds-{GAIE_VERSION}"
    / "inference.networking.k8s.io_inferencepools.yaml"
)

OURS = {
    "apiVersion": "warmpool.dev/v1alpha1",
    "kind": "InferencePool",
    "metadata": {"name": "ours", "namespace": "default"},
    "spec": {"model": {"uri": "s3://models/tiny"}},
}
THEIRS = {
    "apiVersion": "inference.networking.k8s.io/v1",
    "kind": "InferencePool",
    "metadata": {"name": "theirs", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "vllm"}},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
    },
}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if not GAIE_CRD.is_file():
        component_unavailable(
            "Gateway API Inference Extension CRD",
            f"{GAIE_CRD} missing (hack/fetch-gateway-inference-crds.sh)",
        )
    try:
        binaries = ControlPlaneBinaries.discover()
    except BinaryNotFoundError as error:
        component_unavailable("control plane", str(error))
    with LocalCluster(tmp_path_factory.mktemp("clash"), binaries=binaries) as cluster:
        for crd in (CRD_PATH, GAIE_CRD):
            run(cluster, "apply", "--server-side", "-f", str(crd))
        run(
            cluster,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/inferencepools.warmpool.dev",
            "crd/inferencepools.inference.networking.k8s.io",
        )
        for manifest in (OURS, THEIRS):
            run(cluster, "apply", "-f", "-", stdin=json.dumps(manifest))
        yield cluster


def run(cluster: LocalCluster, *args: str, stdin: str | None = None) -> str:
    done = kubectl(cluster, *args, stdin=stdin)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def names(cluster: LocalCluster, resource: str) -> list[str]:
    """What `kubectl get <resource> -o name` lists in `default`."""
    return run(cluster, "get", resource, "-n", "default", "-o", "name").split()


@pytest.mark.parametrize(
    ("resource", "found"),
    [
        # The unqualified plural: kubectl takes the group that sorts first among CRDs of equal
        # priority, inference.networking.k8s.io. Ours must be named another way.
        ("inferencepools", "inferencepool.inference.networking.k8s.io/theirs"),
        ("inferencepool", "inferencepool.inference.networking.k8s.io/theirs"),
        ("infpool", "inferencepool.inference.networking.k8s.io/theirs"),
        (
            "inferencepools.inference.networking.k8s.io",
            "inferencepool.inference.networking.k8s.io/theirs",
        ),
        # Ours: the short name, the group-qualified plural, the category.
        ("ipool", "inferencepool.warmpool.dev/ours"),
        ("inferencepools.warmpool.dev", "inferencepool.warmpool.dev/ours"),
        ("inferencepools.v1alpha1.warmpool.dev", "inferencepool.warmpool.dev/ours"),
        ("warmpool", "inferencepool.warmpool.dev/ours"),
    ],
)
def test_what_kubectl_resolves_each_name_to(both: LocalCluster, resource: str, found: str) -> None:
    assert names(both, resource) == [found]


def test_explain_and_wide_output_by_short_name(both: LocalCluster, tmp_path: Path) -> None:
    assert "warmpool.dev" in run(both, "explain", "ipool")
    assert "REVISION" in run(both, "get", "ipool", "-n", "default", "-o", "wide")
