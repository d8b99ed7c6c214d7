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
import json
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
    condition,
    get_pool,
    kubectl,
)
from test_operator import operator, operator_kubeconfig, pool_events  # noqa: F401  (fixtures)
from test_status_tools import WORKING, Verdicts

from support.health import find_harness
from warmpool.api.spec import ModelSpec
from warmpool.envtest import LocalCluster, poll_until
from warmpool.render.labels import model_fingerprint, prepull_node_label_key

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


# ---- a new revision of the weights waits for its pre-pull (controller/prepull/gate.py) ----


def _served_fingerprint(apps: Any, name: str, namespace: str) -> str:
    """The weights the server Deployment's replicas get (its fingerprint annotation)."""
    deployment = apps.read_namespaced_deployment(name, namespace)
    return str(deployment.metadata.annotations[FINGERPRINT_ANNOTATION])


def _template_revision(apps: Any, name: str, namespace: str) -> str:
    deployment = apps.read_namespaced_deployment(name, namespace)
    return str(deployment.spec.template.metadata.annotations["warmpool.dev/revision"])


def _refused_prepull_pod(cluster: LocalCluster, namespace: str, daemonset: str) -> bool:
    """Whether the DaemonSet controller tried a new pre-pull pod that admission refused (its
    FailedCreate Event): the roll has reached a node that cannot take the new weights."""
    listed = json.loads(kubectl(cluster, "get", "events", "-n", namespace, "-o", "json").stdout)
    return any(
        event.get("reason") == "FailedCreate"
        and (event.get("involvedObject") or {}).get("name") == daemonset
        and "no pre-pull" in (event.get("message") or "")
        for event in listed["items"]
    )


def _verified_copies(
    core: Any, namespace: str, name: str, fingerprints: set[str]
) -> dict[str, str]:
    """node -> fingerprint of its Ready, not terminating pre-pull pod of pool `name`, for
    the `fingerprints` given."""
    pods = core.list_namespaced_pod(
        namespace,
        label_selector=f"app.kubernetes.io/component=prepull,app.kubernetes.io/instance={name}",
    ).items
    copies: dict[str, str] = {}
    for pod in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        held = (pod.metadata.annotations or {}).get(FINGERPRINT_ANNOTATION)
        if ready and pod.metadata.deletion_timestamp is None and held in fingerprints:
            copies[pod.spec.node_name] = held
    return copies


def _held_pool(
    k8s: kubernetes.client.ApiClient, namespace: str, name: str, fingerprint: str
) -> Any:
    """A poll_until probe: the pool while its status says the weights `fingerprint` are held."""

    def probe() -> dict[str, Any] | None:
        pool = get_pool(k8s, namespace, name)
        record = ((pool.get("status") or {}).get("rollout") or {}).get("prepull") or {}
        reconciling = condition(pool, "Reconciling") or {}
        held = (
            record.get("held") is True
            and record.get("fingerprint") == fingerprint
            and reconciling.get("reason") == "PrepullingRevision"
        )
        return pool if held else None

    return probe


def _revision_pool(
    gpu_nodes: OwnGpuNodes, name: str, namespace: str, **cache: Any
) -> dict[str, Any]:
    manifest = prepull_pool(name, namespace, gpu_nodes.product, "r1")
    manifest["spec"]["replicas"] = 2
    manifest["spec"]["cache"].update(cache)
    return manifest


def test_new_weights_wait_for_their_prepull_then_roll_out(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,  # noqa: F811  (the imported fixture)
) -> None:
    nodes = [gpu_nodes.add(letter) for letter in "abc"]
    pools: Any = kubernetes.client.CustomObjectsApi(k8s)
    apps: Any = kubernetes.client.AppsV1Api(k8s)
    name = "qwen"
    key = prepull_node_label_key(namespace, name)
    pools.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, _revision_pool(gpu_nodes, name, namespace)
    )
    labels_r1 = poll_until(
        lambda: gpu_nodes.labelled(key, nodes),
        what=f"label {key} on {nodes}",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    (fingerprint_r1,) = set(labels_r1.values())
    poll_until(
        lambda: _served_fingerprint(apps, name, namespace) == fingerprint_r1,
        what="the Deployment with the r1 weights",
        timeout=TIMEOUT,
    )
    revision_r1 = _template_revision(apps, name, namespace)
    fingerprint_r2 = model_fingerprint(ModelSpec(uri="s3://models/tiny", revision="r2"))

    # Nodes b and c refuse new pre-pull pods: at most node a can hold the r2 weights, fewer
    # than the 2 replicas need. The DaemonSet rolls to r2; the Deployment keeps r1.
    with deny_prepull_on(k8s, namespace, nodes[1:]):
        pools.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"revision": "r2"}}}
        )
        poll_until(
            lambda: _refused_prepull_pod(cluster, namespace, f"{name}-prepull"),
            what="the pre-pull DaemonSet's roll refused on node b or c",
            timeout=TIMEOUT,
            describe=operator.log_tail,
        )
        pool = poll_until(
            _held_pool(k8s, namespace, name, fingerprint_r2),
            what="status: the r2 weights held for their pre-pull",
            timeout=TIMEOUT,
            describe=lambda: yaml.safe_dump(get_pool(k8s, namespace, name).get("status")),
        )
        daemonset = apps.read_namespaced_daemon_set(f"{name}-prepull", namespace)
        assert daemonset.metadata.annotations[FINGERPRINT_ANNOTATION] == fingerprint_r2
        assert _served_fingerprint(apps, name, namespace) == fingerprint_r1
        assert _template_revision(apps, name, namespace) == revision_r1
        record = pool["status"]["rollout"]["prepull"]
        assert record["previousFingerprint"] == fingerprint_r1
        assert record["neededNodes"] == 2 and record["verifiedNodes"] <= 1
        progressing = condition(pool, "Progressing") or {}
        assert progressing.get("reason") == "PrepullingRevision"
        assert f"verified on {record['verifiedNodes']}/2 node(s)" in progressing["message"]
        # The GitOps tools' own code on the pool read from the apiserver, and the real
        # `kubectl wait` on the live object: in progress, and not Ready, since these KWOK
        # replicas never open the warm gate (a warm r1 replica would make it Ready: the hold
        # changes Progressing and Reconciling only).
        verdicts = Verdicts(cluster, find_harness())
        assert verdicts.judge("new weights held for their pre-pull", pool) == WORKING
        verdicts.record("prepull")
        # While held, a node keeps the r1 label as long as its r1 pre-pull pod holds the copy
        # (replicas started meanwhile, with r1, still prefer it); r2 where that copy is.
        core: Any = kubernetes.client.CoreV1Api(k8s)

        def labels_follow_pods() -> dict[str, str] | None:
            want = _verified_copies(core, namespace, name, {fingerprint_r1, fingerprint_r2})
            found = gpu_nodes.labels(key)
            return found if found == want and fingerprint_r1 in found.values() else None

        poll_until(
            labels_follow_pods,
            what="labels of the nodes holding r1 or r2",
            timeout=TIMEOUT,
            describe=lambda: f"labels={gpu_nodes.labels(key)}\n{operator.log_tail(30)}",
        )

    # Admission lifted: the DaemonSet finishes its roll, nodes are labelled r2, and once two
    # hold the copy the Deployment gets the r2 template.
    poll_until(
        lambda: _served_fingerprint(apps, name, namespace) == fingerprint_r2,
        what="the Deployment with the r2 weights",
        timeout=TIMEOUT,
        describe=lambda: (
            f"labels={gpu_nodes.labels(key)}\n"
            f"{yaml.safe_dump(get_pool(k8s, namespace, name).get('status'))}\n"
            f"{operator.log_tail(30)}"
        ),
    )
    assert _template_revision(apps, name, namespace) != revision_r1
    # Released: the r1 labels go (the Deployment no longer asks for them).
    poll_until(
        lambda: fingerprint_r1 not in gpu_nodes.labels(key).values(),
        what="no r1 label after the release",
        timeout=TIMEOUT,
        describe=lambda: f"labels={gpu_nodes.labels(key)}\n{operator.log_tail(30)}",
    )
    labelled_r2 = [node for node, value in gpu_nodes.labels(key).items() if value == fingerprint_r2]
    assert len(labelled_r2) >= 2, labelled_r2
    status = get_pool(k8s, namespace, name)["status"]
    record = status["rollout"]["prepull"]
    assert record["held"] is False and record.get("timedOut", False) is False
    assert record["verifiedNodes"] >= 2
    released = [
        e for e in pool_events(cluster, namespace, name) if e["reason"] == "RevisionPrepulled"
    ]
    assert len(released) == 1 and released[0]["type"] == "Normal"
    assert fingerprint_r2 in released[0]["note"]


def test_new_weights_roll_out_after_the_prepull_timeout(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,  # noqa: F811  (the imported fixture)
) -> None:
    nodes = [gpu_nodes.add(letter) for letter in "abc"]
    pools: Any = kubernetes.client.CustomObjectsApi(k8s)
    apps: Any = kubernetes.client.AppsV1Api(k8s)
    name = "gemma"
    key = prepull_node_label_key(namespace, name)
    manifest = _revision_pool(gpu_nodes, name, namespace, prepullTimeoutSeconds=20)
    pools.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    labels_r1 = poll_until(
        lambda: gpu_nodes.labelled(key, nodes),
        what=f"label {key} on {nodes}",
        timeout=TIMEOUT,
        describe=operator.log_tail,
    )
    (fingerprint_r1,) = set(labels_r1.values())
    fingerprint_r2 = model_fingerprint(ModelSpec(uri="s3://models/tiny", revision="r2"))

    # No node may take the r2 weights: the hold ends by its 20 s timeout.
    with deny_prepull_on(k8s, namespace, nodes):
        pools.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"model": {"revision": "r2"}}}
        )
        poll_until(
            _held_pool(k8s, namespace, name, fingerprint_r2),
            what="status: the r2 weights held for their pre-pull",
            timeout=TIMEOUT,
            describe=lambda: yaml.safe_dump(get_pool(k8s, namespace, name).get("status")),
        )
        assert _served_fingerprint(apps, name, namespace) == fingerprint_r1
        poll_until(
            lambda: _served_fingerprint(apps, name, namespace) == fingerprint_r2,
            what="the Deployment with the r2 weights after the timeout",
            timeout=TIMEOUT,
            describe=lambda: yaml.safe_dump(get_pool(k8s, namespace, name).get("status")),
        )
        # No node holds the r2 copy; the r1 labels go with the release.
        poll_until(
            lambda: gpu_nodes.labels(key) == {},
            what="no label after the release",
            timeout=TIMEOUT,
            describe=lambda: f"labels={gpu_nodes.labels(key)}\n{operator.log_tail(30)}",
        )
        pool = get_pool(k8s, namespace, name)
        record = pool["status"]["rollout"]["prepull"]
        assert (record["held"], record["timedOut"], record["verifiedNodes"]) == (False, True, 0)
        # KWOK replicas never open the warm gate: the roll-out goes on, and says why it runs
        # without the copy.
        poll_until(
            lambda: (
                (condition(get_pool(k8s, namespace, name), "Progressing") or {}).get("reason")
                == "PrepullTimedOut"
            ),
            what="Progressing reason PrepullTimedOut",
            timeout=TIMEOUT,
        )
        warnings = [
            e for e in pool_events(cluster, namespace, name) if e["reason"] == "PrepullTimedOut"
        ]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert "not done after 20s" in warnings[0]["note"]
