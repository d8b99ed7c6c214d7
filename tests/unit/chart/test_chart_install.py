"""The chart installed by the real helm into a real kube-apiserver (warmpool.envtest).

What only a real API server can say: every object is admitted (server-side validation, the
CRD's structural schema, RBAC's escalation check on the chart's own Roles), the grants work
as docs/rbac.md says when exercised with the ServiceAccounts' real tokens (the operator may
bind exactly the warm-up ClusterRole, nothing else), the CRD policy holds on `helm upgrade`
and `helm uninstall`, and the example pools pass the installed CRD.
No kubelet runs the operator's pod (KWOK stands in for kubelets; no image is pulled): this is
about the chart, the operator itself is tested in tests/e2e.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from chart_support import CHART, FULLNAME, NAMESPACE, RELEASE, REPO, run_helm

from support.components import component_unavailable
from warmpool.api.resource import GROUP, PLURAL, VERSION
from warmpool.envtest import BinaryNotFoundError, ControlPlaneBinaries, LocalCluster, poll_until

pytestmark = [pytest.mark.controlplane, pytest.mark.helm]

CRD_NAME = f"{PLURAL}.{GROUP}"
WARMUP_ROLE = "warmpool-warmup"
POOLS_NAMESPACE = "ml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        binaries = ControlPlaneBinaries.discover()
    except BinaryNotFoundError as error:
        component_unavailable("control plane", str(error))
    local = LocalCluster(tmp_path_factory.mktemp("chart-cluster"), binaries=binaries)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def helm_ok(helm: Path, cluster: LocalCluster, *args: str) -> str:
    result = run_helm(helm, *args, "--kubeconfig", str(cluster.kubeconfig))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def installed(helm: Path, cluster: LocalCluster) -> LocalCluster:
    """The chart installed with the activator on; a pools namespace created."""
    with cluster.client() as api:
        kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": POOLS_NAMESPACE}})
    helm_ok(
        helm, cluster, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--create-namespace", "--set", "activator.enabled=true",
    )  # fmt: skip
    with cluster.client() as api:
        extensions = kubernetes.client.ApiextensionsV1Api(api)

        def established() -> bool:
            crd = extensions.read_custom_resource_definition(CRD_NAME)
            conditions = crd.status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        poll_until(established, what=f"CRD {CRD_NAME} Established", timeout=60)
    return cluster


def can(
    api: kubernetes.client.ApiClient,
    verb: str,
    resource: str,
    group: str = "",
    namespace: str = "",
) -> bool:
    """SelfSubjectAccessReview: may the client's identity do this? resource: plural[/sub]."""
    plural, _, subresource = resource.partition("/")
    attributes = kubernetes.client.V1ResourceAttributes(
        verb=verb, group=group, resource=plural, subresource=subresource or None,
        namespace=namespace or None,
    )  # fmt: skip
    review = kubernetes.client.V1SelfSubjectAccessReview(
        spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )
    result = kubernetes.client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(result.status.allowed)


def as_service_account(cluster: LocalCluster, name: str, namespace: str = NAMESPACE) -> Path:
    return cluster.kubeconfig_for_service_account(namespace, name)


def rolebinding(name: str, role: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": POOLS_NAMESPACE}],
    }


def test_every_object_is_admitted(installed: LocalCluster) -> None:
    with installed.client() as api:
        apps = kubernetes.client.AppsV1Api(api)
        assert apps.read_namespaced_deployment(FULLNAME, NAMESPACE).spec.replicas == 1
        assert apps.read_namespaced_deployment(f"{FULLNAME}-activator", NAMESPACE)
        scheduling = kubernetes.client.SchedulingV1Api(api)
        assert scheduling.read_priority_class("warmpool-headroom").value == -10
        crd = kubernetes.client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD_NAME)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"


def test_examples_pass_the_installed_crd(installed: LocalCluster) -> None:
    """Every example pool is accepted by the CRD the chart installed (server-side dry run)."""
    examples = sorted((REPO / "examples").glob("*.yaml"))
    pools = [
        doc
        for path in examples
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "InferencePool"
    ]
    assert pools
    with installed.client() as api:
        custom = kubernetes.client.CustomObjectsApi(api)
        for pool in pools:
            pool["metadata"]["namespace"] = POOLS_NAMESPACE  # some examples name their own
            custom.create_namespaced_custom_object(
                GROUP, VERSION, POOLS_NAMESPACE, PLURAL, pool, dry_run="All"
            )


def test_operator_binds_only_the_warmup_role(installed: LocalCluster) -> None:
    pool = f"p-{uuid.uuid4().hex[:6]}"
    operator = as_service_account(installed, FULLNAME)
    with installed.client(operator) as api:
        core = kubernetes.client.CoreV1Api(api)
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        core.create_namespaced_service_account(
            POOLS_NAMESPACE, {"metadata": {"name": f"{pool}-warmup"}}
        )
        # Allowed without holding patch pods/status itself: `bind` on exactly this role.
        rbac.create_namespaced_role_binding(
            POOLS_NAMESPACE, rolebinding(f"{pool}-warmup", WARMUP_ROLE)
        )
        # Any role granting what the operator does not hold is an escalation: refused.
        for role in ("cluster-admin", "admin", "edit", "view"):
            with pytest.raises(kubernetes.client.ApiException) as refused:
                rbac.create_namespaced_role_binding(POOLS_NAMESPACE, rolebinding(pool, role))
            assert refused.value.status == 403, role

        assert can(api, "patch", PLURAL, GROUP, POOLS_NAMESPACE)
        assert can(api, "patch", "nodes")
        assert can(api, "create", "deployments", "apps", POOLS_NAMESPACE)
        assert not can(api, "delete", PLURAL, GROUP, POOLS_NAMESPACE)
        assert not can(api, "get", "secrets", namespace=POOLS_NAMESPACE)
        assert not can(api, "patch", "pods/status", namespace=POOLS_NAMESPACE)
        assert not can(api, "create", "clusterrolebindings", "rbac.authorization.k8s.io")

    # The bound warm-up identity may open its pods' gate, in its namespace only.
    warmup = as_service_account(installed, f"{pool}-warmup", POOLS_NAMESPACE)
    with installed.client(warmup) as api:
        assert can(api, "patch", "pods/status", namespace=POOLS_NAMESPACE)
        assert not can(api, "get", "pods", namespace=POOLS_NAMESPACE)
        assert not can(api, "patch", "pods/status", namespace=NAMESPACE)
        assert not can(api, "patch", "pods", namespace=POOLS_NAMESPACE)


def test_activator_grants(installed: LocalCluster) -> None:
    activator = as_service_account(installed, f"{FULLNAME}-activator")
    with installed.client(activator) as api:
        assert can(api, "watch", "endpointslices", "discovery.k8s.io")
        assert can(api, "patch", PLURAL, GROUP, POOLS_NAMESPACE)
        assert not can(api, "get", PLURAL, GROUP, POOLS_NAMESPACE)
        assert not can(api, "create", "deployments", "apps", POOLS_NAMESPACE)


def test_crd_policy_upgrade_and_uninstall(helm: Path, installed: LocalCluster) -> None:
    """`helm upgrade` updates the CRD (a template, not crds/); uninstall keeps it and the pools;
    installing again adopts the kept CRD."""
    helm_ok(
        helm, installed, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--reuse-values", "--set", "commonLabels.upgraded=yes",
    )  # fmt: skip
    pool = yaml.safe_load((REPO / "examples" / "minimal.yaml").read_text())
    with installed.client() as api:
        extensions = kubernetes.client.ApiextensionsV1Api(api)
        crd = extensions.read_custom_resource_definition(CRD_NAME)
        assert crd.metadata.labels["upgraded"] == "yes"
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, POOLS_NAMESPACE, PLURAL, pool
        )

    helm_ok(helm, installed, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    with installed.client() as api:
        assert kubernetes.client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD_NAME)
        survivor = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, POOLS_NAMESPACE, PLURAL, pool["metadata"]["name"]
        )
        assert survivor["spec"]["model"]["uri"] == pool["spec"]["model"]["uri"]
        cluster_roles = kubernetes.client.RbacAuthorizationV1Api(api).list_cluster_role(
            label_selector=f"app.kubernetes.io/instance={RELEASE}"
        )
        assert [role.metadata.name for role in cluster_roles.items] == []

    helm_ok(
        helm, installed, "install", RELEASE, str(CHART), "--namespace", NAMESPACE
    )  # the kept CRD carries this release's ownership annotations: adopted, not a conflict
