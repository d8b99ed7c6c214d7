"""The operator with exactly the Helm chart's RBAC: `helm install` of charts/warmpool (real
helm), then `warmpool operator` as a real process authenticated with a token of the chart's
ServiceAccount (TokenRequest, what its pod would present).

Real: helm, every Kubernetes component, RBAC, the EndpointSlice controller that lists the
chart's activator pods. Mocked: kubelets (KWOK; the chart's own operator and activator pods are
scheduled and marked running but run nothing, so the operator under test is the local process).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import (
    GROUP,
    PLURAL,
    ROOT,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    get_pool,
    install_crd,
)

from support.components import component_unavailable
from warmpool.envtest import BinaryNotFoundError, LocalCluster, find_binary, poll_until

RELEASE = "wp"
FULLNAME = "wp-warmpool"


def helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        binary = find_binary("helm")
    except BinaryNotFoundError as error:
        component_unavailable("helm", str(error))
    return subprocess.run(
        [str(binary), *args],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def release_namespace(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The chart installed with activator enabled; its CRD template disabled because the CRD
    is installed by `install_crd` (which works around the checked-in CRD's defaults issue)."""
    install_crd(cluster, tmp_path_factory.mktemp("crd"))
    namespace = f"wp-system-{uuid.uuid4().hex[:6]}"
    result = helm(
        cluster,
        "install",
        RELEASE,
        str(ROOT / "charts" / "warmpool"),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        "crds.enabled=false",
        "--set",
        "activator.enabled=true",
    )
    assert result.returncode == 0, result.stderr
    try:
        yield namespace
    finally:
        helm(cluster, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "120s")
        with cluster.client() as api:
            kubernetes.client.CoreV1Api(api).delete_namespace(namespace)


@pytest.fixture
def chart_operator(
    cluster: LocalCluster, release_namespace: str
) -> Iterator[tuple[OperatorProcess, str]]:
    kubeconfig: Path = cluster.kubeconfig_for_service_account(release_namespace, FULLNAME)
    user = f"system:serviceaccount:{release_namespace}:{FULLNAME}"
    process = OperatorProcess(
        cluster,
        kubeconfig,
        cluster.logs_dir,
        extra=["--activator-service", f"{release_namespace}/{FULLNAME}-activator"],
    )
    try:
        yield process, user
    finally:
        process.stop()


def forbidden(cluster: LocalCluster, user: str) -> list[str]:
    """Requests of `user` that RBAC denied (the authorizer's decision in the audit log; a 403
    for writing into a terminating namespace is not an RBAC denial)."""
    return [
        f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource')} "
        f"{(e.get('objectRef') or {}).get('namespace')}"
        for e in cluster.audit_events()
        if (e.get("user") or {}).get("username") == user
        and (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
    ]


def pool(name: str, namespace: str, **scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "s3://models/tiny"}, "scaling": {"maxReplicas": 2, **scaling}},
    }


def test_chart_rbac_serves_a_pool_at_zero_through_the_activator_and_wakes_it(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    release_namespace: str,
    chart_operator: tuple[OperatorProcess, str],
) -> None:
    operator, user = chart_operator
    custom = kubernetes.client.CustomObjectsApi(k8s)
    core = kubernetes.client.CoreV1Api(k8s)
    apps = kubernetes.client.AppsV1Api(k8s)
    discovery = kubernetes.client.DiscoveryV1Api(k8s)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        pool("idle", namespace, warmFloor=0, scaleToZeroAfterSeconds=300),
    )

    def activator_slice() -> Any:
        try:
            return discovery.read_namespaced_endpoint_slice("idle-activator", namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    # At zero, the public Service routes to the activator: no selector, our EndpointSlice.
    # Its addresses come from the activator Service's own EndpointSlices; here those stay empty
    # because pod IPs are loopback addresses (so local processes can stand in for pods) and the
    # apiserver refuses loopback addresses in EndpointSlices. The routing shape is what is
    # checked; the addresses are checked against the real slices, whatever they hold.
    found = poll_until(
        activator_slice,
        what="EndpointSlice idle-activator",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    listed = sorted(
        a
        for s in discovery.list_namespaced_endpoint_slice(
            release_namespace, label_selector=f"kubernetes.io/service-name={FULLNAME}-activator"
        ).items
        for e in s.endpoints or []
        if (e.conditions is None or e.conditions.ready is not False)
        for a in e.addresses
    )
    assert sorted(a for e in found.endpoints or [] for a in e.addresses) == listed
    assert found.metadata.labels["kubernetes.io/service-name"] == "idle"
    assert sorted(p.name for p in found.ports) == ["grpc", "http"]
    assert not core.read_namespaced_service("idle", namespace).spec.selector
    assert apps.read_namespaced_deployment("idle", namespace).spec.replicas == 0

    # The activator's wake: the operator (with only the chart's RBAC) scales the pool up.
    wake = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "idle",
        {"metadata": {"annotations": {"warmpool.dev/wake-requested-at": wake}}},
    )
    poll_until(
        lambda: (apps.read_namespaced_deployment("idle", namespace).spec.replicas or 0) >= 1,
        what="Deployment scaled from zero",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    status = poll_until(
        lambda: (
            (get_pool(k8s, namespace, "idle").get("status") or {}).get("replicas") == 1
            and get_pool(k8s, namespace, "idle")["status"]
        ),
        what="status shows the new pod",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    assert status["desiredReplicas"] == 1
    assert forbidden(cluster, user) == []


def test_chart_rbac_creates_every_child(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    chart_operator: tuple[OperatorProcess, str],
) -> None:
    operator, user = chart_operator
    kubernetes.client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, pool("floor", namespace, warmFloor=1)
    )
    apps = kubernetes.client.AppsV1Api(k8s)
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s)
    core = kubernetes.client.CoreV1Api(k8s)

    def children_exist() -> bool:
        try:
            apps.read_namespaced_deployment("floor", namespace)
            core.read_namespaced_service_account("floor-warmup", namespace)
            rbac.read_namespaced_role_binding("floor-warmup", namespace)
            core.read_namespaced_service("floor-pods", namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    poll_until(children_exist, what="every child", timeout=TIMEOUT, describe=operator.log_tail)
    # No warm pod yet and an activator configured: the public Service routes to the activator.
    assert core.read_namespaced_service("floor", namespace).spec.selector is None
    poll_until(
        lambda: (get_pool(k8s, namespace, "floor").get("status") or {}).get("replicas") == 1,
        what="status with the pod",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    assert forbidden(cluster, user) == []
