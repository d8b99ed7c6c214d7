"""The chart on a real node, as `make demo` installs it: `helm install` runs the operator as a pod
from the image hack/build-images.sh built (imported into the node's containerd, no registry),
under the chart's ServiceAccount, and that operator, reaching the apiserver through the
`kubernetes` Service as pods do, reconciles an InferencePool into its children.

Real: the control plane, the real node (kubelet, containerd, runc, CNI bridge, kube-proxy),
helm, the chart, the built operator and agent images. Stood in: nothing here needs a GPU.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import TIMEOUT, as_dict, condition, install_crd
from real_node_support import REAL_NODE

from support.components import component_unavailable
from warmpool.api.resource import GROUP, PLURAL, VERSION
from warmpool.envtest import BinaryNotFoundError, LocalCluster, find_binary, poll_until
from warmpool.envtest.images import BuiltImage, built_image

pytestmark = [pytest.mark.controlplane, pytest.mark.helm]

CHART = Path(__file__).resolve().parents[2] / "charts" / "warmpool"
RELEASE = "demo"
FULLNAME = "demo-warmpool"  # <release>-<chart>: the operator's Deployment and ServiceAccount


@pytest.fixture
def cluster(real_cluster: LocalCluster) -> LocalCluster:
    return real_cluster


def helm(cluster: LocalCluster, home: Path, *args: str) -> str:
    """The real helm against the cluster, with a home of its own (no user repositories)."""
    try:
        binary = find_binary("helm")
    except BinaryNotFoundError as error:
        component_unavailable("helm", str(error))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def installed(cluster: LocalCluster, tmp_path: Path) -> Iterator[tuple[str, BuiltImage]]:
    """The chart installed in a fresh namespace with the built operator and agent images."""
    operator, agent = built_image("operator"), built_image("agent")
    node = cluster.real_nodes[0]
    if operator.ref not in node.container_images():
        node.import_image(operator.archive)
    namespace = f"wp-{uuid.uuid4().hex[:8]}"
    # Other tests of the session install the CRD with kubectl; helm would refuse to adopt it.
    install_crd(cluster, tmp_path)
    repository, _, tag = operator.ref.rpartition(":")
    agent_repository, _, agent_tag = agent.ref.rpartition(":")
    helm(
        cluster, tmp_path, "install", RELEASE, str(CHART), "--namespace", namespace,
        "--create-namespace", "--set", f"operator.image.repository={repository}",
        "--set", f"operator.image.tag={tag}", "--set", f"agent.image.repository={agent_repository}",
        "--set", f"agent.image.tag={agent_tag}", "--set", "operator.logFormat=text",
        "--set", "crds.enabled=false",
    )  # fmt: skip
    try:
        yield namespace, operator
    finally:
        helm(cluster, tmp_path, "uninstall", RELEASE, "--namespace", namespace, "--wait")
        with cluster.client() as api:
            kubernetes.client.CoreV1Api(api).delete_namespace(namespace)


def operator_pod(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, Any] | None:
    core = kubernetes.client.CoreV1Api(api)
    selector = "app.kubernetes.io/component=operator"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    ready = [as_dict(api, p) for p in pods]
    ready = [p for p in ready if (condition(p, "Ready") or {}).get("status") == "True"]
    return ready[0] if ready else None


def test_chart_runs_the_built_operator_image_on_the_real_node(
    cluster: LocalCluster, installed: tuple[str, BuiltImage], namespace: str
) -> None:
    system, operator = installed
    with cluster.client() as api:
        pod = poll_until(
            lambda: operator_pod(api, system),
            what="the chart's operator pod Ready",
            timeout=TIMEOUT,
        )
        assert pod["spec"]["nodeName"] == REAL_NODE
        assert pod["spec"]["serviceAccountName"] == FULLNAME
        (container,) = pod["spec"]["containers"]
        assert container["image"] == operator.ref
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and "running" in status["state"]
        assert status["imageID"]  # containerd ran the imported image, nothing was pulled

        # The operator in the pod reconciles: a pool gets its Deployment, owned by the pool.
        pool = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferencePool",
            "metadata": {"name": "chart-check", "namespace": namespace},
            "spec": {
                "model": {"uri": "s3://models/none", "name": "none"},
                # The built image, never pulled: no pod of this test reaches for a registry.
                "server": {
                    "image": built_image("triton-cpu").ref,
                    "imagePullPolicy": "Never",
                    "gpu": {"count": 0},
                },
                "scaling": {"warmFloor": 0, "scaleToZeroAfterSeconds": 0},
            },
        }
        custom = kubernetes.client.CustomObjectsApi(api)
        created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, pool)
        apps = kubernetes.client.AppsV1Api(api)

        def deployment() -> dict[str, Any] | None:
            found = apps.list_namespaced_deployment(namespace).items
            return as_dict(api, found[0]) if found else None

        child = poll_until(deployment, what="the pool's Deployment", timeout=TIMEOUT)
        owners = child["metadata"].get("ownerReferences") or []
        assert [o["uid"] for o in owners] == [created["metadata"]["uid"]]
