"""The warm-up sidecar against a real control plane, a real Triton and the chart's policy.

Real: kube-apiserver (admission, RBAC, ValidatingAdmissionPolicy, TokenRequest with pod-bound
tokens), scheduler, controllers, the chart's ClusterRole and policy (rendered by the real helm),
Triton (CPU) and the real ``warmpool warmup`` program. Stand-ins, because they cannot exist
here: KWOK plays the kubelet (its stages honour readiness gates), and the pod's "container" is
a local Triton bound to the pod's loopback IP; the program runs as a local process with the
pod's identity (a token bound to that pod, as the kubelet would project into the sidecar).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from pool_support import pod_bound_kubeconfig

from support.components import component_unavailable
from support.triton import TritonServer, free_port, require_triton
from warmpool.envtest import BinaryNotFoundError, LocalCluster, find_binary, poll_until
from warmpool.warmup.report import parse_message

GATE = "warmpool.dev/warm"
SERVICE_ACCOUNT = "pool-warmup"  # the operator names them `<pool>-warmup`
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "warmpool"
MODELS = REPO / "tests" / "models"
TIMEOUT = 120.0  # bound for pod lifecycles and warm-up on a loaded 2-core machine
INPUTS = '[{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}]'


# ---- the chart's warm-up RBAC and admission policy, applied once for this module ---------


def _render_chart_objects() -> list[dict[str, Any]]:
    try:
        helm = find_binary("helm")
    except BinaryNotFoundError as error:
        component_unavailable("helm", str(error))
    result = subprocess.run(
        [
            str(helm),
            "template",
            "wp",
            str(CHART),
            "--kube-version",
            "1.34.0",
            "--show-only",
            "templates/warmup-clusterrole.yaml",
            "--show-only",
            "templates/warmup-gate-policy.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/warmpool-helm-cache"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@contextmanager
def installed_gate_policy(cluster: LocalCluster) -> Iterator[dict[str, Any]]:
    """The chart's warm-up ClusterRole, ValidatingAdmissionPolicy and binding, installed (and
    removed on exit); yields them by kind."""
    objects = _render_chart_objects()
    kinds = {obj["kind"]: obj for obj in objects}
    assert set(kinds) == {
        "ClusterRole",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    with cluster.client() as api:
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        admission = kubernetes.client.AdmissionregistrationV1Api(api)
        rbac.create_cluster_role(kinds["ClusterRole"])
        admission.create_validating_admission_policy(kinds["ValidatingAdmissionPolicy"])
        admission.create_validating_admission_policy_binding(
            kinds["ValidatingAdmissionPolicyBinding"]
        )
        try:
            yield kinds
        finally:
            admission.delete_validating_admission_policy_binding(
                kinds["ValidatingAdmissionPolicyBinding"]["metadata"]["name"]
            )
            admission.delete_validating_admission_policy(
                kinds["ValidatingAdmissionPolicy"]["metadata"]["name"]
            )
            rbac.delete_cluster_role(kinds["ClusterRole"]["metadata"]["name"])


@pytest.fixture(scope="module")
def gate_policy(cluster: LocalCluster) -> Iterator[dict[str, Any]]:
    """The chart's warm-up ClusterRole, ValidatingAdmissionPolicy and binding, installed."""
    with installed_gate_policy(cluster) as kinds:
        yield kinds


# ---- helpers ---------------------------------------------------------------------------


def _pod(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pod = kubernetes.client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    data: dict[str, Any] = api.sanitize_for_serialization(pod)
    return data


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return None


def _setup_identity(api: kubernetes.client.ApiClient, namespace: str, cluster_role: str) -> None:
    """The pool's warm-up ServiceAccount and its RoleBinding, as the operator renders them."""
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_service_account(
        namespace,
        {"metadata": {"name": SERVICE_ACCOUNT}, "automountServiceAccountToken": False},
    )
    kubernetes.client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": SERVICE_ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
            ],
        },
    )


def _create_gated_pod(api: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    """A pool pod: readiness gate, warm-up sidecar (the only container with a token)."""
    kubernetes.client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "readinessGates": [{"conditionType": GATE}],
                "initContainers": [
                    {"name": "warmup", "image": "warmpool/agent", "restartPolicy": "Always"}
                ],
                "containers": [
                    {"name": "server", "image": "nvcr.io/nvidia/tritonserver:25.01-py3"}
                ],
            },
        },
    )


def _running_pod(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        pod = _pod(api, namespace, name)
        containers = _condition(pod, "ContainersReady")
        ip = pod.get("status", {}).get("podIP")
        return pod if ip and containers and containers["status"] == "True" else None

    return poll_until(running, what=f"pod {name} running with an IP", timeout=TIMEOUT)


def _gate_patch(status: str, **extra: str) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": GATE, "status": status, **extra}]}}


# ---- tests -----------------------------------------------------------------------------


@pytest.mark.triton
def test_sidecar_opens_the_gate_after_warm_up_and_pod_turns_ready_only_then(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gate_policy: dict[str, Any],
    tmp_path: Path,
) -> None:
    require_triton()
    _setup_identity(k8s, namespace, gate_policy["ClusterRole"]["metadata"]["name"])
    _create_gated_pod(k8s, namespace, "pool-0")
    pod = _running_pod(k8s, namespace, "pool-0")
    ip = pod["status"]["podIP"]
    kubeconfig = pod_bound_kubeconfig(cluster, k8s, namespace, pod, SERVICE_ACCOUNT)

    def ready_is(status: str) -> dict[str, Any] | None:
        current = _pod(k8s, namespace, "pool-0")
        condition = _condition(current, "Ready")
        return current if condition is not None and condition["status"] == status else None

    with TritonServer(
        MODELS,
        http_address=ip,
        extra_args=["--model-control-mode=explicit", "--load-model=warmup_curve"],
    ) as triton:
        # The server is up and says ready, yet the pod is not Ready: the gate is shut.
        assert triton.model_ready("warmup_curve")
        assert ready_is("False") is not None
        assert _condition(_pod(k8s, namespace, "pool-0"), GATE) is None

        log_path = tmp_path / "warmup.log"
        with open(log_path, "wb") as log:
            program = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "warmpool.warmup",
                    "--url",
                    triton.http_url,
                    "--model",
                    "warmup_curve",
                    "--inputs",
                    INPUTS,
                    "--tolerance",
                    "0.25",
                    "--timeout",
                    "240",
                    "--pod-name",
                    "pool-0",
                    "--pod-namespace",
                    namespace,
                    "--kubeconfig",
                    str(kubeconfig),
                    "--health-address",
                    ip,
                    "--health-port",
                    str(free_port(ip)),
                    "--watch-interval",
                    "0.5",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = poll_until(
                lambda: ready_is("True"),
                what="pod pool-0 Ready after warm-up",
                timeout=TIMEOUT + 120,
                describe=lambda: log_path.read_text(),
            )
            gate = _condition(ready, GATE)
            assert gate is not None, ready
            assert (gate["status"], gate["reason"]) == ("True", "WarmupSucceeded")
            pairs, _ = parse_message(gate["message"])
            assert int(pairs["requests"]) > 0
            assert pairs["serverReadyAt"] <= pairs["warmAt"]
            # Ready followed the gate (second precision, as metav1.Time).
            ready_condition = _condition(ready, "Ready")
            assert ready_condition is not None
            assert ready_condition["lastTransitionTime"] >= gate["lastTransitionTime"]
            # Only the gate was written: the kubelet's (KWOK's) conditions are still there.
            kinds = {c["type"] for c in ready["status"]["conditions"]}
            assert {"PodScheduled", "Initialized", "ContainersReady", "Ready", GATE} <= kinds
            # The program wrote through the pod-bound identity (audit log of the apiserver).
            writes = [
                event
                for event in cluster.audit_events()
                if event.get("objectRef", {}).get("subresource") == "status"
                and event.get("objectRef", {}).get("name") == "pool-0"
                and event.get("verb") == "patch"
                and event.get("user", {}).get("username", "").endswith(":" + SERVICE_ACCOUNT)
            ]
            assert writes, "no pods/status patch by the warm-up identity in the audit log"
            assert all(
                e["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["pool-0"]
                for e in writes
            )
        except BaseException:
            program.terminate()
            program.wait(timeout=30)
            raise
    # Triton is gone: the sidecar closes the gate and the pod leaves Ready.
    try:
        poll_until(
            lambda: ready_is("False"),
            what="pod pool-0 un-Ready after the server stopped",
            timeout=TIMEOUT,
            describe=lambda: log_path.read_text(),
        )
        gate = _condition(_pod(k8s, namespace, "pool-0"), GATE)
        assert gate is not None and (gate["status"], gate["reason"]) == ("False", "ServerNotReady")
        assert program.poll() is None, "the sidecar must keep running"
    finally:
        program.terminate()
        program.wait(timeout=30)


def test_policy_lets_the_identity_change_only_its_own_pods_gate(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gate_policy: dict[str, Any],
) -> None:
    _setup_identity(k8s, namespace, gate_policy["ClusterRole"]["metadata"]["name"])
    for name in ("own", "other"):
        _create_gated_pod(k8s, namespace, name)
    own = _running_pod(k8s, namespace, "own")
    _running_pod(k8s, namespace, "other")
    kubeconfig = pod_bound_kubeconfig(cluster, k8s, namespace, own, SERVICE_ACCOUNT)

    with cluster.client(kubeconfig) as api:
        as_sidecar = kubernetes.client.CoreV1Api(api)

        def denial(name: str, body: dict[str, Any]) -> ApiException | None:
            try:
                as_sidecar.patch_namespaced_pod_status(name, namespace, body)
            except ApiException as error:
                return error
            return None

        # The policy takes effect asynchronously after creation: wait (bounded) until the
        # apiserver enforces it. RBAC alone would allow this patch (patch pods/status).
        denied = poll_until(
            lambda: denial("other", _gate_patch("True")),
            what="the policy to deny patching another pod's gate",
            timeout=60,
        )
        assert denied.status == 403
        assert "ValidatingAdmissionPolicy" in str(denied.body)
        assert "may only change its own pod" in str(denied.body)

        # Its own pod, another condition: denied.
        other_condition = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        denied_ready = denial("own", other_condition)
        assert denied_ready is not None and denied_ready.status == 403
        assert "may only change the warmpool.dev/warm condition" in str(denied_ready.body)

        # Its own pod, another status field: denied.
        denied_field = denial("own", {"status": {"message": "hijacked"}})
        assert denied_field is not None and denied_field.status == 403
        assert "no other status field" in str(denied_field.body)

        # Its own pod, its own gate: allowed, and nothing else changed.
        before = _pod(k8s, namespace, "own")
        assert denial("own", _gate_patch("False", reason="NotSteady")) is None
        after = _pod(k8s, namespace, "own")
        gate = _condition(after, GATE)
        assert gate is not None and gate["reason"] == "NotSteady"
        strip = lambda pod: [c for c in pod["status"]["conditions"] if c["type"] != GATE]  # noqa: E731
        assert strip(before) == strip(after)
        assert after["status"].get("message") is None

    # A token of the same ServiceAccount NOT bound to a pod cannot patch even "its" pod.
    unbound = cluster.kubeconfig_for_service_account(namespace, SERVICE_ACCOUNT)
    with cluster.client(unbound) as api:
        with pytest.raises(ApiException) as error:
            kubernetes.client.CoreV1Api(api).patch_namespaced_pod_status(
                "own", namespace, _gate_patch("True")
            )
        assert error.value.status == 403

    # Admins (and the kubelet) are not restricted by the policy.
    kubernetes.client.CoreV1Api(k8s).patch_namespaced_pod_status(
        "other", namespace, _gate_patch("True")
    )


def test_policy_type_checks_clean(
    k8s: kubernetes.client.ApiClient, gate_policy: dict[str, Any]
) -> None:
    """The apiserver type-checks the policy's CEL against the Pod schema: no warnings."""
    admission = kubernetes.client.AdmissionregistrationV1Api(k8s)
    name = gate_policy["ValidatingAdmissionPolicy"]["metadata"]["name"]

    def checked() -> Any:
        policy = admission.read_validating_admission_policy(name)
        return policy.status if policy.status and policy.status.type_checking else None

    status = poll_until(checked, what=f"type checking of {name}", timeout=60)
    assert not status.type_checking.expression_warnings, status.type_checking
