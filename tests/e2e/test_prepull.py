"""Pre-pull on the real control plane: node labels for verified copies, cache-aware scheduling.

Real: kube-apiserver (admission, ValidatingAdmissionPolicy, finalizers), the DaemonSet,
Deployment and ReplicaSet controllers, the garbage collector, kube-scheduler (which scores the
Deployment's preferred node affinity), and `warmpool operator` as a process. Mocked because
they cannot exist here: GPUs and kubelets. KWOK plays the kubelet, so NO real prefetch runs
inside the pre-pull pods: KWOK marks their `prefetch` init container completed and the pod
Ready, which is exactly the signal a real kubelet gives once `warmpool prefetch` has exited 0
after verifying the copy (the prefetch program itself is tested against a real S3 server in
tests/integration/prefetch/).

The test's GPU nodes carry their own GPU product and a taint only its pools tolerate, so the
session's other tests never schedule onto them (and these pools onto nothing else); they are
deleted afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml
from node_support import OwnGpuNodes
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    as_dict,
    get_pool,
)
from test_operator import operator, operator_kubeconfig  # noqa: F401  (shared fixtures)

from warmpool.envtest import LocalCluster, poll_until
from warmpool.render.labels import prepull_node_label_key

FINALIZER = "warmpool.dev/prepull-node-labels"
FINGERPRINT_ANNOTATION = "warmpool.dev/model-fingerprint"
#: The taint of the test-owned nodes (node_support.OwnGpuNodes with tag "prepull").
TAINT_KEY = "warmpool.dev/e2e-prepull"


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    nodes = OwnGpuNodes(cluster, k8s, "prepull")
    try:
        yield nodes
    finally:
        nodes.delete_all()


def prepull_pool(name: str, namespace: str, product: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/tiny", "revision": revision},
            "server": {
                "gpu": {"count": 1, "product": product},
                "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            },
            "cache": {"kind": "node", "prepull": True},
            # Fixed replicas (the scale subresource's field): the scheduler, not the scaler,
            # is what this test looks at.
            "replicas": 0,
        },
    }


@contextlib.contextmanager
def deny_prepull_on(
    api: kubernetes.client.ApiClient, namespace: str, nodes: list[str]
) -> Iterator[None]:
    """A ValidatingAdmissionPolicy that refuses pre-pull pods for `nodes` in `namespace`: the
    DaemonSet controller cannot create them there, so those nodes never hold a copy (as when
    a node joined after the pre-pull, or its pre-pull keeps failing), yet have free GPUs."""
    admission: Any = kubernetes.client.AdmissionregistrationV1Api(api)
    name = f"deny-prepull-{namespace}"
    listed = ", ".join(f"'{node}'" for node in nodes)
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
            },
            "validations": [
                {
                    # DaemonSet pods are pinned to their node by a matchFields term.
                    "expression": (
                        "!(has(object.metadata.labels)"
                        " && object.metadata.labels.exists(k, k == 'app.kubernetes.io/component'"
                        " && object.metadata.labels[k] == 'prepull')"
                        " && has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity)"
                        " && has(object.spec.affinity.nodeAffinity"
                        ".requiredDuringSchedulingIgnoredDuringExecution)"
                        " && object.spec.affinity.nodeAffinity"
                        ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
                        ".exists(t, has(t.matchFields) && t.matchFields.exists(f,"
                        f" has(f.values) && f.values.exists(v, v in [{listed}]))))"
                    ),
                    "message": "e2e: no pre-pull on this node",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    try:
        _wait_policy_enforced(api, namespace, nodes[0])
        yield
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)


def _wait_policy_enforced(api: kubernetes.client.ApiClient, namespace: str, node: str) -> None:
    """The apiserver loads policies asynchronously: wait until a dry-run of a pre-pull pod for
    `node` is refused."""
    core: Any = kubernetes.client.CoreV1Api(api)
    probe_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "policy-probe-",
            "labels": {"app.kubernetes.io/component": "prepull"},
        },
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchFields": [
                                    {"key": "metadata.name", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                }
            },
            "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}],
        },
    }

    def refused() -> bool:
        try:
            core.create_namespaced_pod(namespace, probe_pod, dry_run="All")
        except kubernetes.client.ApiException as error:
            if error.status in (400, 403, 422) and "no pre-pull" in str(error.body):
                return True
            raise
        return False

    poll_until(refused, what="the admission policy in force", timeout=60)


def test_prepull_labels_verified_nodes_and_replicas_prefer_them(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,  # noqa: F811  (the imported fixture)
) -> None:
    cached = [gpu_nodes.add(letter) for letter in "abc"]
    uncached = [gpu_nodes.add(letter) for letter in "de"]
    core: Any = kubernetes.client.CoreV1Api(k8s)
    apps: Any = kubernetes.client.AppsV1Api(k8s)
    pools: Any = kubernetes.client.CustomObjectsApi(k8s)
    name = "llama"
    key = prepull_node_label_key(namespace, name)

    with deny_prepull_on(k8s, namespace, uncached):
        pools.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            prepull_pool(name, namespace, gpu_nodes.product, "r1"),
        )

        # The real DaemonSet controller runs a pre-pull pod on each node the pool may use that
        # admission allows; KWOK makes them Ready (prefetch "done").
        def prepull_ready() -> list[dict[str, Any]] | None:
            pods = core.list_namespaced_pod(
                namespace, label_selector="app.kubernetes.io/component=prepull"
            ).items
            ready = [
                pod
                for pod in pods
                if any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
            ]
            return [as_dict(k8s, p) for p in ready] if len(ready) == 3 else None

        ready_pods = poll_until(
            prepull_ready, what="3 Ready pre-pull pods", timeout=TIMEOUT, describe=operator.log_tail
        )
        assert sorted(p["spec"]["nodeName"] for p in ready_pods) == cached
        fingerprint_r1 = ready_pods[0]["metadata"]["annotations"][FINGERPRINT_ANNOTATION]

        # The operator labels exactly the nodes whose copy is verified, with the fingerprint.
        labels = poll_until(
            lambda: gpu_nodes.labelled(key, cached),
            what=f"label {key} on {cached}",
            timeout=TIMEOUT,
            describe=lambda: f"labels={gpu_nodes.labels(key)}\n{operator.log_tail(30)}",
        )
        assert labels == dict.fromkeys(cached, fingerprint_r1)

        def counted() -> dict[str, Any] | None:
            pool = get_pool(k8s, namespace, name)
            return pool if (pool.get("status") or {}).get("cachedNodes") == 3 else None

        pool = poll_until(
            counted,
            what="status.cachedNodes == 3",
            timeout=TIMEOUT,
            describe=lambda: yaml.safe_dump(get_pool(k8s, namespace, name).get("status")),
        )
        assert FINALIZER in pool["metadata"]["finalizers"]

        # The Deployment prefers labelled nodes (rendered preferred node affinity).
        deployment = apps.read_namespaced_deployment(name, namespace)
        preferred = as_dict(k8s, deployment.spec.template.spec.affinity.node_affinity)[
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert preferred[0]["preference"]["matchExpressions"] == [
            {"key": key, "operator": "In", "values": [fingerprint_r1]}
        ]

        # Scale to 3 replicas while 2 unlabelled nodes have free GPUs: the real scheduler puts
        # every replica on a labelled node (by chance alone: 1 in 10).
        pools.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": 3}}
        )

        def scheduled() -> list[str] | None:
            pods = core.list_namespaced_pod(
                namespace, label_selector=f"warmpool.dev/pool={name}"
            ).items
            nodes = [p.spec.node_name for p in pods if p.metadata.deletion_timestamp is None]
            return sorted(nodes) if len(nodes) == 3 and all(nodes) else None

        placed = poll_until(scheduled, what="3 replicas scheduled", timeout=TIMEOUT)
        assert set(placed) <= set(cached), f"replicas on {placed}, cached nodes {cached}"

        # Deleting the pool removes every label, then the finalizer lets the pool go.
        pools.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

        def pool_gone() -> bool:
            try:
                get_pool(k8s, namespace, name)
            except kubernetes.client.ApiException as error:
                if error.status == 404:
                    return True
                raise
            return False

        poll_until(pool_gone, what="pool deleted", timeout=TIMEOUT, describe=operator.log_tail)
        assert gpu_nodes.labels(key) == {}


def test_new_revision_relabels_and_prepull_off_cleans_up(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,  # noqa: F811  (the imported fixture)
) -> None:
    nodes = [gpu_nodes.add(letter) for letter in "abc"]
    pools: Any = kubernetes.client.CustomObjectsApi(k8s)
    apps: Any = kubernetes.client.AppsV1Api(k8s)
    name = "mistral"
    key = prepull_node_label_key(namespace, name)
    pools.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, prepull_pool(name, namespace, gpu_nodes.product, "r1")
    )
    labels_r1 = poll_until(
        lambda: gpu_nodes.labelled(key, nodes),
        what=f"label {key} on {nodes}",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    (fingerprint_r1,) = set(labels_r1.values())

    # A new revision: old labels go at once, the DaemonSet rolls (a node at a time), and each
    # node is labelled again once its new pre-pull pod is Ready.
    pools.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"revision": "r2"}}}
    )

    def relabelled() -> dict[str, str] | None:
        found = gpu_nodes.labels(key)
        values = set(found.values())
        if sorted(found) == nodes and len(values) == 1 and fingerprint_r1 not in values:
            return found
        return None

    labels_r2 = poll_until(
        relabelled,
        what="labels with the new fingerprint",
        timeout=TIMEOUT,
        describe=lambda: f"labels={gpu_nodes.labels(key)}\n{operator.log_tail(30)}",
    )
    daemonset = apps.read_namespaced_daemon_set(f"{name}-prepull", namespace)
    assert set(labels_r2.values()) == {daemonset.metadata.annotations[FINGERPRINT_ANNOTATION]}
    poll_until(
        lambda: get_pool(k8s, namespace, name).get("status", {}).get("cachedNodes") == 3,
        what="status.cachedNodes == 3 after the new revision",
        timeout=TIMEOUT,
    )

    # Pre-pull off: every label, the finalizer and the count go.
    pools.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"cache": {"prepull": False}}}
    )

    def cleaned() -> dict[str, Any] | None:
        pool = get_pool(k8s, namespace, name)
        done = (
            not gpu_nodes.labels(key)
            and FINALIZER not in (pool["metadata"].get("finalizers") or [])
            and (pool.get("status") or {}).get("cachedNodes") == 0
        )
        return pool if done else None

    poll_until(
        cleaned,
        what="labels, finalizer and cachedNodes cleared",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
