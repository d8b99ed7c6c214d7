"""Smoke tests of the local control plane itself (warmpool.envtest.LocalCluster).

Everything here runs against the real Kubernetes components; only the kubelet is KWOK
(and the GPUs it reports are fake), see conftest.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from warmpool.envtest import ClusterStartError, ControlPlaneBinaries, LocalCluster, poll_until
from warmpool.envtest import cluster as cluster_module
from warmpool.envtest.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE

WARM_GATE = "warmpool.dev/warm"
TIMEOUT = 90.0  # generous bound for pod lifecycles on a loaded 2-core machine


def _pod(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pod = kubernetes.client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    data: dict[str, Any] = api.sanitize_for_serialization(pod)
    return data


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return None


def _gate_patch(status: str) -> dict[str, Any]:
    """What the warm-up sidecar sends to pods/status to open or close the gate."""
    return {"status": {"conditions": [{"type": WARM_GATE, "status": status}]}}


def test_server_version_is_1_34(cluster: LocalCluster) -> None:
    with cluster.client() as api:
        info = kubernetes.client.VersionApi(api).get_code()
    assert info.git_version.startswith("v1.34."), info
    assert (info.major, info.minor) == ("1", "34")
    assert cluster.server_version() == info.git_version


def test_gpu_nodes_advertise_gpus(k8s: kubernetes.client.ApiClient) -> None:
    nodes = kubernetes.client.CoreV1Api(k8s).list_node(label_selector="type=kwok").items
    assert len(nodes) >= 2
    for node in nodes:
        assert node.status.allocatable[GPU_RESOURCE] == "8"
        assert node.metadata.labels[GPU_PRODUCT_LABEL] == "NVIDIA-H100-80GB-HBM3"
        assert node.metadata.labels["nvidia.com/gpu.count"] == "8"
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"


def test_deployment_pods_are_scheduled_on_gpu_nodes_and_run(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    labels = {"app": "gpu-smoke"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gpu-smoke"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"},
                    "containers": [
                        {
                            "name": "server",
                            "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
                            "resources": {"limits": {GPU_RESOURCE: "1"}},
                        }
                    ],
                },
            },
        },
    }
    apps = kubernetes.client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(namespace, deployment)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("gpu-smoke", namespace).status
        return status.available_replicas == 2

    poll_until(available, what="Deployment gpu-smoke available", timeout=TIMEOUT)
    pods = kubernetes.client.CoreV1Api(k8s).list_namespaced_pod(namespace).items
    assert len(pods) == 2
    pod_network = ipaddress.ip_network(cluster.pod_cidr)
    for pod in pods:
        assert pod.spec.node_name.startswith("gpu-node-")
        assert pod.status.phase == "Running"
        assert ipaddress.ip_address(pod.status.pod_ip) in pod_network
        assert pod.status.container_statuses[0].state.running is not None

    # Deleting a pod (default grace period) completes only because KWOK's pod-delete
    # stage plays the kubelet confirming the containers stopped; the ReplicaSet replaces it.
    core = kubernetes.client.CoreV1Api(k8s)
    victim = pods[0].metadata.name
    core.delete_namespaced_pod(victim, namespace)

    def replaced() -> bool:
        names = [p.metadata.name for p in core.list_namespaced_pod(namespace).items]
        return victim not in names and available()

    poll_until(replaced, what=f"pod {victim} deleted and replaced", timeout=TIMEOUT)


def test_gpu_requests_beyond_capacity_stay_pending(
    k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    """The scheduler really accounts nvidia.com/gpu: 9 GPUs fit on no 8-GPU node."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big"},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {GPU_RESOURCE: "9"}}}
            ]
        },
    }
    core = kubernetes.client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod)

    def unschedulable() -> bool:
        status = core.read_namespaced_pod("too-big", namespace).status
        return any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in status.conditions or []
        )

    poll_until(unschedulable, what="pod too-big marked Unschedulable", timeout=TIMEOUT)
    assert core.read_namespaced_pod("too-big", namespace).spec.node_name is None


def test_readiness_gate_holds_pod_until_a_client_opens_it(
    k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    pod_manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gated"},
        "spec": {
            "readinessGates": [{"conditionType": WARM_GATE}],
            "initContainers": [
                {"name": "prefetch", "image": "warmpool/agent"},
                # A native sidecar, like warmpool's warm-up program: it keeps running.
                {"name": "warmup", "image": "warmpool/agent", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "server", "image": "nvcr.io/nvidia/tritonserver:25.01-py3"}],
        },
    }
    core = kubernetes.client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod_manifest)

    def containers_ready() -> dict[str, Any] | None:
        pod = _pod(k8s, namespace, "gated")
        condition = _condition(pod, "ContainersReady")
        return pod if condition and condition["status"] == "True" else None

    pod = poll_until(containers_ready, what="pod gated ContainersReady", timeout=TIMEOUT)
    # Containers run, yet the pod is not Ready: the gate has no condition.
    assert pod["status"]["phase"] == "Running"
    ready = _condition(pod, "Ready")
    assert ready is not None
    assert (ready["status"], ready.get("reason")) == ("False", "ReadinessGatesNotReady")
    assert WARM_GATE in ready["message"]
    assert _condition(pod, WARM_GATE) is None
    init = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert init["prefetch"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in init["warmup"]["state"]

    def ready_is(status: str) -> bool:
        condition = _condition(_pod(k8s, namespace, "gated"), "Ready")
        return condition is not None and condition["status"] == status

    # A gate condition that exists but is False keeps the pod un-Ready.
    core.patch_namespaced_pod_status("gated", namespace, _gate_patch("False"))
    reason = _condition(_pod(k8s, namespace, "gated"), "Ready")
    assert reason is not None and reason["status"] == "False"

    core.patch_namespaced_pod_status("gated", namespace, _gate_patch("True"))
    poll_until(lambda: ready_is("True"), what="pod gated Ready after opening", timeout=TIMEOUT)

    # Closing the gate takes the pod out of Ready again, as with a real kubelet.
    core.patch_namespaced_pod_status("gated", namespace, _gate_patch("False"))
    poll_until(lambda: ready_is("False"), what="pod gated un-Ready again", timeout=TIMEOUT)


def test_service_account_kubeconfig_is_bound_by_rbac(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s)
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader-reads-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    kubeconfig = cluster.kubeconfig_for(f"system:serviceaccount:{namespace}:reader")
    with cluster.client(kubeconfig) as api:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:reader"
        as_reader = kubernetes.client.CoreV1Api(api)
        assert as_reader.list_namespaced_pod(namespace).items == []
        with pytest.raises(ApiException) as denied:
            as_reader.list_namespaced_secret(namespace)
        assert denied.value.status == 403
        with pytest.raises(ApiException) as denied:
            as_reader.create_namespaced_config_map(namespace, {"metadata": {"name": "nope"}})
        assert denied.value.status == 403

    # A certificate user with no bindings is authenticated but may do nothing.
    with cluster.client(cluster.kubeconfig_for("alice", groups=["dev"])) as api:
        with pytest.raises(ApiException) as denied:
            kubernetes.client.CoreV1Api(api).list_namespaced_pod(namespace)
        assert denied.value.status == 403


def test_audit_log_records_each_write(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s)
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "audited"}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map("audited", namespace, {"data": {"a": "2"}})
    core.patch_namespaced_config_map("audited", namespace, {"data": {"a": "3"}})
    core.read_namespaced_config_map("audited", namespace)
    core.delete_namespaced_config_map("audited", namespace)

    writes = cluster.audit_writes(resource="configmaps", namespace=namespace, name="audited")
    assert [e["verb"] for e in writes] == ["create", "patch", "patch", "delete"]
    assert all(e["level"] == "Metadata" and e["stage"] == "ResponseComplete" for e in writes)
    assert {e["user"]["username"] for e in writes} == {"warmpool-envtest-admin"}
    reads = [
        e
        for e in cluster.audit_events()
        if e.get("verb") == "get" and (e.get("objectRef") or {}).get("name") == "audited"
    ]
    assert len(reads) == 1


def test_second_cluster_survives_a_taken_port_and_leaves_no_process(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second cluster (beside the session's) whose first etcd port is taken by another
    process (as happens when engineers share a machine) starts again on fresh ports,
    serves, and stops without leaving a process."""
    real_free_ports = cluster_module._free_ports
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        handed_out: list[list[int]] = []

        def first_port_taken(count: int) -> list[int]:
            ports = real_free_ports(count)
            if not handed_out:
                ports[0] = squatter.getsockname()[1]  # etcd's client port
            handed_out.append(ports)
            return ports

        monkeypatch.setattr(cluster_module, "_free_ports", first_port_taken)
        with LocalCluster() as second:
            pids = [p.pid for p in second.processes]
            root = second.root_dir
            assert len(handed_out) == 2
            assert len(pids) == 5
            assert second.server != cluster.server
            assert second.server_version() == cluster.server_version()
            assert "address already in use" in (second.logs_dir / "etcd.log").read_text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
    assert not root.exists()


def test_cli_keeps_a_cluster_running_detached_until_down(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """What `make demo` / `make demo-down` use: `python -m warmpool.envtest up|status|down`."""
    state = tmp_path / "state"

    def envtest(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "warmpool.envtest", *args, "--state", str(state)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)

    up = envtest("up", "--gpu-nodes", "1", "--timeout", "240")
    assert up.returncode == 0, up.stdout + up.stderr
    components = json.loads((state / "components.json").read_text())
    runner = int((state / "envtest.pid").read_text())
    assert envtest("status").returncode == 0
    # cluster.client() only builds an ApiClient from the kubeconfig it is given.
    with cluster.client(state / "kubeconfig") as api:
        assert api.configuration.host != cluster.server
        nodes = kubernetes.client.CoreV1Api(api).list_node().items
        version = kubernetes.client.VersionApi(api).get_code().git_version
    assert [n.metadata.name for n in nodes] == ["gpu-node-0"]
    assert version == cluster.server_version()

    down = envtest("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert envtest("status").returncode == 1
    for pid in [runner, *(int(c["pid"]) for c in components.values())]:
        assert not _running(pid)


def test_a_component_that_dies_fails_the_start_with_its_log(tmp_path: Path) -> None:
    """No binaries needed: etcd is replaced by a program that exits at once."""
    broken = tmp_path / "etcd"
    broken.write_text("#!/bin/sh\necho 'etcd: cannot start (test double)' >&2\nexit 3\n")
    broken.chmod(0o755)
    unused = Path("/nonexistent")
    binaries = ControlPlaneBinaries(
        etcd=broken,
        kube_apiserver=unused,
        kube_controller_manager=unused,
        kube_scheduler=unused,
        kwok=unused,
    )
    local = LocalCluster(binaries=binaries, start_timeout=30)
    with pytest.raises(ClusterStartError, match=r"etcd exited with status 3") as failure:
        local.start()
    assert "cannot start (test double)" in str(failure.value)
    assert local.processes == ()
    assert not local.root_dir.exists()


def _running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_components_die_with_a_parent_killed_before_teardown(tmp_path: Path) -> None:
    """No binaries needed: a `sleep` stands in for a component. When the Python process
    that started it is SIGKILLed (no teardown runs), the component must not linger."""
    script = (
        "import time\n"
        "from pathlib import Path\n"
        "from warmpool.envtest.process import ComponentProcess\n"
        f"log = Path({str(tmp_path / 's.log')!r})\n"
        "child = ComponentProcess('sleeper', ['sleep', '600'], log)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        # The guard (setpriv) is armed once it has exec'd the component's program.
        poll_until(
            lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep\0"),
            what=f"sleeper {child} running",
            timeout=30,
        )
    finally:
        parent.kill()
        parent.wait(timeout=30)
    poll_until(lambda: not _running(child), what=f"orphaned sleeper {child} gone", timeout=30)
