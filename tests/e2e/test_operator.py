"""The operator, as a real process, against the real control plane.

Real: kube-apiserver (schema, CEL, scale subresource, audit log), kube-controller-manager
(Deployment and ReplicaSet controllers, garbage collector), kube-scheduler, etcd, kubectl, and
`warmpool operator` itself. Mocked because they cannot exist here: kubelets and GPUs (KWOK
nodes with `nvidia.com/gpu`, whose pod stages honour readiness gates), and the warm-up sidecar
(the test opens the `warmpool.dev/warm` gate through pods/status the way the sidecar does; the
sidecar's own e2e belongs to the warm-up tests).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    ROOT,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    condition,
    describe_writes,
    get_pool,
    install_crd,
    kubectl,
    open_gate,
    operator_writes,
    pool_pods,
)

from warmpool.envtest import LocalCluster, poll_until

SPEC_HASH = "warmpool.dev/spec-hash"


def small_pool(name: str, namespace: str, **scaling: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/tiny"},
            "scaling": {"warmFloor": 1, "maxReplicas": 4, **scaling},
        },
    }


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CRD installed, and a kubeconfig for the operator's own user (cluster-admin here;
    the chart's RBAC is exercised by test_operator_helm.py)."""
    install_crd(cluster, tmp_path_factory.mktemp("crd"))
    return cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])


@pytest.fixture
def operator(
    cluster: LocalCluster, operator_kubeconfig: Path, namespace: str
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        cluster, operator_kubeconfig, cluster.logs_dir, extra=["--namespace", namespace]
    )
    try:
        yield process
    finally:
        process.stop()


def create_pool(api: kubernetes.client.ApiClient, manifest: dict[str, Any]) -> dict[str, Any]:
    namespace = manifest["metadata"]["namespace"]
    created: dict[str, Any] = kubernetes.client.CustomObjectsApi(
        api
    ).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    return created


def wait_deployment(
    api: kubernetes.client.ApiClient, namespace: str, name: str, operator: OperatorProcess
) -> dict[str, Any]:
    apps = kubernetes.client.AppsV1Api(api)

    def probe() -> dict[str, Any] | None:
        try:
            deployment = api.sanitize_for_serialization(
                apps.read_namespaced_deployment(name, namespace)
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(deployment)

    return poll_until(
        probe, what=f"Deployment {namespace}/{name}", timeout=TIMEOUT, describe=operator.log_tail
    )


def wait_pool(
    api: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    what: str,
    check: Any,
    operator: OperatorProcess,
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = get_pool(api, namespace, name)
        return last if check(last) else None

    return poll_until(
        probe,
        what=f"pool {namespace}/{name}: {what}",
        timeout=TIMEOUT,
        describe=lambda: f"status={yaml.safe_dump(last.get('status'))}\n{operator.log_tail(30)}",
    )


def pool_events(cluster: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """events.k8s.io/v1 Events regarding the pool (read with kubectl: the Python client's
    models refuse the core Events of other controllers, which have no eventTime)."""
    listed = json.loads(
        kubectl(cluster, "get", "events.events.k8s.io", "-n", namespace, "-o", "json").stdout
    )
    return [
        event
        for event in listed["items"]
        if (event.get("regarding") or {}).get("name") == name
        and (event.get("regarding") or {}).get("kind") == "InferencePool"
    ]


def test_example_pool_children_gate_and_warm_status(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    manifest = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    name = manifest["metadata"]["name"]
    pool = create_pool(k8s, manifest)
    uid = pool["metadata"]["uid"]

    deployment = wait_deployment(k8s, namespace, name, operator)
    template = deployment["spec"]["template"]["spec"]
    assert {"conditionType": "warmpool.dev/warm"} in template["readinessGates"]
    assert [c["name"] for c in template["initContainers"]][:1] == ["prefetch"]
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["uid"], owner["controller"]) == (uid, True)
    core = kubernetes.client.CoreV1Api(k8s)
    for service in (name, f"{name}-pods"):
        assert (
            core.read_namespaced_service(service, namespace).metadata.owner_references[0].uid == uid
        )
    assert core.read_namespaced_service_account(f"{name}-warmup", namespace)
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s)
    binding = rbac.read_namespaced_role_binding(f"{name}-warmup", namespace)
    assert binding.role_ref.name == "warmpool-warmup"

    # The real Deployment controller creates the pod, the real scheduler puts it on a KWOK GPU
    # node, and it stays un-Ready: its containers are ready, the warm gate is not open.
    def containers_ready_pod() -> dict[str, Any] | None:
        for pod in pool_pods(k8s, namespace, name):
            ready = condition(pod, "ContainersReady")
            if ready and ready["status"] == "True":
                return pod
        return None

    pod = poll_until(containers_ready_pod, what="a pod with ready containers", timeout=TIMEOUT)
    assert pod["spec"]["nodeName"].startswith("gpu-node-")
    assert (condition(pod, "Ready") or {}).get("status") == "False"
    pool = wait_pool(
        k8s,
        namespace,
        name,
        "WarmingUp with 0 warm",
        lambda p: (p.get("status") or {}).get("phase") == "WarmingUp",
        operator,
    )
    assert pool["status"]["warmReplicas"] == 0
    assert pool["status"]["replicas"] == 1
    assert pool["status"]["observedGeneration"] == pool["metadata"]["generation"]

    open_gate(k8s, namespace, pod["metadata"]["name"], now_rfc3339())
    pool = wait_pool(
        k8s,
        namespace,
        name,
        "Ready with 1 warm replica",
        lambda p: (
            (p.get("status") or {}).get("warmReplicas") == 1 and p["status"].get("phase") == "Ready"
        ),
        operator,
    )
    status = pool["status"]
    assert status["selector"] == f"warmpool.dev/pool={name}"
    assert status["desiredReplicas"] == 1
    assert (condition(pool, "Ready") or {}).get("status") == "True"
    assert (condition(pool, "Warm") or {}).get("status") == "True"
    assert (condition(pool, "Degraded") or {}).get("status") == "False"
    assert status["lastColdStart"]["pod"] == pod["metadata"]["name"]
    cold = status["lastColdStart"]
    phases = ("schedulingSeconds", "prefetchSeconds", "serverStartSeconds", "warmupSeconds")
    assert all(cold[phase] >= 0 for phase in phases)
    assert abs(sum(cold[phase] for phase in phases) - cold["totalSeconds"]) < 0.01
    reasons = {e["reason"] for e in pool_events(cluster, namespace, name)}
    assert {"ColdStart", "PhaseChanged", "Scaled"} <= reasons, reasons
    assert operator.metric("warmpool_cold_start_seconds_count", phase="total") >= 1

    table = kubectl(cluster, "get", "inferencepools", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PHASE", "DESIRED", "READY", "WARM"]
    assert row.split()[:5] == [name, "Ready", "1", "1", "1"]


def test_kubectl_scale_makes_replicas_external(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, small_pool("scaled", namespace))
    wait_deployment(k8s, namespace, "scaled", operator)
    kubectl(cluster, "scale", "inferencepool/scaled", "--replicas=3", "-n", namespace)
    pool = wait_pool(
        k8s,
        namespace,
        "scaled",
        "owner external, 3 desired",
        lambda p: (
            ((p.get("status") or {}).get("scaling") or {}).get("owner") == "external"
            and p["status"].get("desiredReplicas") == 3
        ),
        operator,
    )
    assert "spec.replicas=3" in pool["status"]["scaling"]["reason"]
    apps = kubernetes.client.AppsV1Api(k8s)
    poll_until(
        lambda: apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 3,
        what="Deployment replicas 3",
        timeout=TIMEOUT,
    )
    wait_pool(
        k8s,
        namespace,
        "scaled",
        "3 pods observed",
        lambda p: (p.get("status") or {}).get("replicas") == 3,
        operator,
    )
    # Handing control back: spec.replicas removed -> the built-in scaler owns replicas again.
    # No Prometheus is configured here, so its policy holds the current 3 (it never scales
    # down on traffic it cannot read) and says so.
    kubernetes.client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "scaled", {"spec": {"replicas": None}}
    )
    pool = wait_pool(
        k8s,
        namespace,
        "scaled",
        "owner warmpool",
        lambda p: p["status"]["scaling"]["owner"] == "warmpool",
        operator,
    )
    assert pool["status"]["desiredReplicas"] == 3
    assert "metrics unavailable" in pool["status"]["scaling"]["reason"]
    assert (condition(pool, "MetricsAvailable") or {}).get("status") == "False"
    assert apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 3


def test_apiserver_rejects_warm_floor_above_max_naming_the_field(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    manifest = small_pool("bad", namespace, warmFloor=5, maxReplicas=2)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = kubectl(cluster, "apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "spec.scaling.warmFloor" in result.stderr, result.stderr
    assert "warmFloor must be <= maxReplicas" in result.stderr, result.stderr


def test_unservable_spec_is_degraded_and_children_untouched(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, small_pool("zoned", namespace))
    before = wait_deployment(k8s, namespace, "zoned", operator)
    wait_pool(
        k8s,
        namespace,
        "zoned",
        "first status",
        lambda p: (p.get("status") or {}).get("desiredReplicas") == 1,
        operator,
    )
    mark = len(cluster.audit_events())
    schedule = {
        "cron": "0 8 * * 1-5",
        "timezone": "Mars/Olympus",
        "warmFloor": 2,
        "durationMinutes": 60,
    }
    kubernetes.client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "zoned",
        {"spec": {"scaling": {"schedules": [schedule], "warmFloor": 3}}},
    )
    pool = wait_pool(
        k8s,
        namespace,
        "zoned",
        "Degraded",
        lambda p: (condition(p, "Degraded") or {}).get("status") == "True",
        operator,
    )
    degraded = condition(pool, "Degraded") or {}
    assert degraded["message"] == (
        "spec.scaling.schedules[0].timezone: unknown time zone 'Mars/Olympus'"
    )
    assert pool["status"]["phase"] == "Degraded"
    assert pool["status"]["desiredReplicas"] == 1  # the new warmFloor 3 was NOT applied
    warnings = [
        e
        for e in pool_events(cluster, namespace, "zoned")
        if e["type"] == "Warning" and e["reason"] == "Degraded"
    ]
    assert warnings and "Mars/Olympus" in warnings[0]["note"]
    after = kubernetes.client.AppsV1Api(k8s).read_namespaced_deployment("zoned", namespace)
    assert after.spec.replicas == 1
    assert after.metadata.annotations[SPEC_HASH] == before["metadata"]["annotations"][SPEC_HASH]
    children = {"deployments", "services", "serviceaccounts", "rolebindings", "endpointslices"}
    touched = [
        w
        for w in operator_writes(cluster, OPERATOR_USER, mark)
        if (w.get("objectRef") or {}).get("resource") in children
    ]
    assert touched == [], describe_writes(touched)


def test_deleting_a_pool_cascades_to_its_children(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, small_pool("doomed", namespace))
    wait_deployment(k8s, namespace, "doomed", operator)
    kubernetes.client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "doomed"
    )
    core = kubernetes.client.CoreV1Api(k8s)
    apps = kubernetes.client.AppsV1Api(k8s)
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s)
    reads = {
        "Deployment": lambda: apps.read_namespaced_deployment("doomed", namespace),
        "Service": lambda: core.read_namespaced_service("doomed", namespace),
        "Service pods": lambda: core.read_namespaced_service("doomed-pods", namespace),
        "ServiceAccount": lambda: core.read_namespaced_service_account("doomed-warmup", namespace),
        "RoleBinding": lambda: rbac.read_namespaced_role_binding("doomed-warmup", namespace),
    }

    def gone(read: Any) -> bool:
        try:
            read()
        except kubernetes.client.ApiException as error:
            return error.status == 404
        return False

    for kind, read in reads.items():
        poll_until(lambda read=read: gone(read), what=f"{kind} garbage-collected", timeout=TIMEOUT)


def test_resync_of_a_converged_pool_makes_zero_writes(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator_kubeconfig: Path,
    operator: OperatorProcess,
) -> None:
    """Converge a pool (children applied, pod warm, status written), restart the operator so
    that kopf's resume handler re-reconciles it, and let the refresh loop tick at least twice
    (2 s interval): the audit log must show no write by the operator's user in that window."""
    create_pool(k8s, small_pool("idle", namespace))
    wait_deployment(k8s, namespace, "idle", operator)
    pod = poll_until(
        lambda: next(iter(pool_pods(k8s, namespace, "idle")), None),
        what="the pool's pod",
        timeout=TIMEOUT,
    )
    poll_until(
        lambda: (
            (condition(pool_pods(k8s, namespace, "idle")[0], "ContainersReady") or {}).get("status")
            == "True"
        ),
        what="containers ready",
        timeout=TIMEOUT,
    )
    open_gate(k8s, namespace, pod["metadata"]["name"], now_rfc3339())
    wait_pool(
        k8s,
        namespace,
        "idle",
        "Ready",
        lambda p: (p.get("status") or {}).get("phase") == "Ready",
        operator,
    )
    operator.stop()

    mark = len(cluster.audit_events())
    restarted = OperatorProcess(
        cluster, operator_kubeconfig, cluster.logs_dir, extra=["--namespace", namespace]
    )
    try:
        poll_until(
            lambda: (
                restarted.metric("warmpool_reconcile_total", trigger="resume") >= 1
                and restarted.metric("warmpool_reconcile_total", trigger="tick") >= 2
            ),
            what="resume handler ran and two scaling ticks passed",
            timeout=TIMEOUT,
            describe=restarted.log_tail,
        )
        # The audit log is written in blocking mode: every request answered is in it.
        writes = operator_writes(cluster, OPERATOR_USER, mark)
        assert writes == [], describe_writes(writes)
        assert restarted.metric("warmpool_api_writes_total") == 0
        ticks = restarted.metric("warmpool_reconcile_duration_seconds_count", trigger="tick")
        spent = restarted.metric("warmpool_reconcile_duration_seconds_sum", trigger="tick")
        print(f"idle tick reconcile: {ticks:.0f} ticks, mean {1000 * spent / ticks:.2f} ms")
        reads = [
            e
            for e in cluster.audit_events()[mark:]
            if (e.get("user") or {}).get("username") == OPERATOR_USER
        ]
        assert reads, "the restarted operator made no request at all: the window is empty"
    finally:
        restarted.stop()


def test_wake_annotation_scales_a_pool_at_zero(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, small_pool("sleepy", namespace, warmFloor=0, scaleToZeroAfterSeconds=600))
    deployment = wait_deployment(k8s, namespace, "sleepy", operator)
    assert deployment["spec"]["replicas"] == 0
    wait_pool(
        k8s,
        namespace,
        "sleepy",
        "ScaledToZero",
        lambda p: (p.get("status") or {}).get("phase") == "ScaledToZero",
        operator,
    )
    apps = kubernetes.client.AppsV1Api(k8s)
    requested = datetime.now(UTC)
    started = time.monotonic()
    kubernetes.client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "sleepy",
        {
            "metadata": {
                "annotations": {
                    "warmpool.dev/wake-requested-at": requested.isoformat(
                        timespec="milliseconds"
                    ).replace("+00:00", "Z")
                }
            }
        },
    )
    poll_until(
        lambda: (apps.read_namespaced_deployment("sleepy", namespace).spec.replicas or 0) >= 1,
        what="Deployment scaled from zero",
        timeout=TIMEOUT,
        interval=0.02,
        describe=operator.log_tail,
    )
    # Reported, not asserted (no timed assertions in tests; benchmarks/ measure latency).
    print(f"wake -> Deployment replicas >= 1 observed after {time.monotonic() - started:.3f}s")
    pool = wait_pool(
        k8s,
        namespace,
        "sleepy",
        "desired 1 after wake",
        lambda p: (p.get("status") or {}).get("desiredReplicas") == 1,
        operator,
    )
    # The wake counts as traffic: the policy remembers it as the last request.
    assert pool["status"]["scaling"]["lastRequestTime"]
    scaled = [
        e["note"] for e in pool_events(cluster, namespace, "sleepy") if e["reason"] == "Scaled"
    ]
    assert any("0 -> 1" in note for note in scaled), scaled
    assert pool["status"]["scaling"]["owner"] == "warmpool"
