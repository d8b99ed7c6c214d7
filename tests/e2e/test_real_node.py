"""The real node itself: a real kubelet runs pods (init container, native sidecar, readiness
gate), GPUs come through the kubelet's real device-plugin allocation path, pods reach the
apiserver through the ``kubernetes`` Service (kube-proxy) and nothing else, and stopping the
node leaves nothing on the host.

Real: kube-apiserver, controller-manager, scheduler, kubelet v1.34, containerd 2, runc, the
CNI bridge, kube-proxy (iptables), the built agent image. Stood in: the GPUs (a device plugin
advertising devices that do not exist: warmpool.envtest's fake-gpu-plugin).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import TIMEOUT, as_dict, condition, open_gate
from real_node_support import REAL_NODE, REAL_NODE_GPUS, require_real_node

from warmpool.envtest import LocalCluster, NodeBinaries, RealNode, poll_until
from warmpool.envtest.hostguard import host_state
from warmpool.envtest.images import built_image

GATE = "warmpool.dev/warm"
OUTSIDE = "203.0.113.9"  # TEST-NET-3: an address that is not the node's


@pytest.fixture(scope="module")
def cluster(real_cluster: LocalCluster) -> LocalCluster:
    """Every test of this module runs on the session's real-node cluster."""
    return real_cluster


def node_of(cluster: LocalCluster) -> RealNode:
    return cluster.real_nodes[0]


def wait_pod(
    api: kubernetes.client.ApiClient, namespace: str, name: str, what: str, test: Any
) -> dict[str, Any]:
    core = kubernetes.client.CoreV1Api(api)
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = as_dict(api, core.read_namespaced_pod(name, namespace))
        return last if test(last) else None

    return poll_until(probe, what=what, timeout=TIMEOUT, describe=lambda: str(last.get("status")))


def status_of(pod: dict[str, Any], kind: str) -> str | None:
    found = condition(pod, kind)
    return found["status"] if found else None


# Runs in the pod: the kubernetes Service answers a TCP connect; an address that is not the
# node's gets no route (the node's namespace routes nowhere else).
NETWORK_PROBE = f"""
import errno, os, socket
print("gpus=" + os.environ.get("NVIDIA_VISIBLE_DEVICES", "none"), flush=True)
print("init=" + open("/work/init").read().strip(), flush=True)
host = os.environ["KUBERNETES_SERVICE_HOST"]
port = int(os.environ["KUBERNETES_SERVICE_PORT"])
socket.create_connection((host, port), timeout=10).close()
print("service=" + host, flush=True)
try:
    socket.create_connection(("{OUTSIDE}", 80), timeout=10).close()
    print("outside=connected", flush=True)
except OSError as error:
    print("outside=" + errno.errorcode.get(error.errno, str(error.errno)), flush=True)
import time
time.sleep(3600)
"""


def probe_pod(namespace: str, image: str) -> dict[str, Any]:
    """A pod with an init container, a native sidecar, a readiness gate and one GPU."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "readinessGates": [{"conditionType": GATE}],
            "terminationGracePeriodSeconds": 1,
            "initContainers": [
                {
                    "name": "init",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo done > /work/init"],
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                },
                {
                    "name": "sidecar",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "restartPolicy": "Always",
                    "command": ["sleep", "3600"],
                },
            ],
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", NETWORK_PROBE],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
            ],
            "volumes": [{"name": "work", "emptyDir": {}}],
        },
    }


def test_node_is_ready_with_gpus_from_the_device_plugin(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient
) -> None:
    node = as_dict(k8s, kubernetes.client.CoreV1Api(k8s).read_node(REAL_NODE))
    assert status_of(node, "Ready") == "True"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(REAL_NODE_GPUS)
    assert node["status"]["nodeInfo"]["kubeletVersion"] == cluster.server_version()
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
    assert node["metadata"]["labels"]["warmpool.dev/real-node"] == "true"


def test_pod_runs_its_init_container_and_sidecar_and_waits_for_its_gate(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s)
    agent = built_image("agent").ref
    core.create_namespaced_pod(namespace, probe_pod(namespace, agent))

    running = wait_pod(
        k8s,
        namespace,
        "probe",
        "containers ready, the gate still closed",
        lambda p: status_of(p, "ContainersReady") == "True",
    )
    assert running["spec"]["nodeName"] == REAL_NODE
    assert status_of(running, "Ready") == "False"
    assert condition(running, "Ready")["reason"] == "ReadinessGatesNotReady"  # type: ignore[index]
    sidecar = running["status"]["initContainerStatuses"][1]
    assert sidecar["name"] == "sidecar" and sidecar["started"] is True

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    open_gate(k8s, namespace, "probe", now)
    wait_pod(
        k8s,
        namespace,
        "probe",
        "Ready once the gate is open",
        lambda p: status_of(p, "Ready") == "True",
    )

    # The log comes from the kubelet, through the apiserver's egress proxy into the node.
    def log_complete() -> str | None:
        text = str(core.read_namespaced_pod_log("probe", namespace, container="main"))
        return text if "outside=" in text else None

    log = poll_until(log_complete, what="the probe's log", timeout=TIMEOUT)
    lines = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
    assert lines["init"] == "done"
    # The device the kubelet's device manager allocated, handed over by the plugin's Allocate.
    assert lines["gpus"].startswith(f"GPU-fake-{REAL_NODE}-")
    assert lines["service"] == "10.96.0.1"
    assert lines["outside"] in {"EHOSTUNREACH", "ENETUNREACH"}, log
    assert not cluster.egress_refused


def test_the_node_namespace_routes_nowhere_but_its_own_addresses(cluster: LocalCluster) -> None:
    node = node_of(cluster)
    routes = [
        r.strip() for r in node.run(["ip", "-4", "route", "show", "table", "all"]).splitlines()
    ]
    defaults = [r for r in routes if r.startswith("default") or r.startswith("unreachable default")]
    assert defaults == ["unreachable default"], routes
    # Only the node's own networks: the pod bridge, local and broadcast entries of its links.
    for route in routes:
        assert any(
            part in route
            for part in ("unreachable default", node.network.pod_cidr, "local ", "broadcast ")
        ), route
    assert "KUBE-SERVICES" in "\n".join(node.iptables_rules())


def test_stopping_a_node_leaves_nothing_on_the_host(tmp_path: Path) -> None:
    """A cluster and node of its own, its registry, a pod pulled from it running on it; the
    host compared before, while the node runs (no route, link, netns or rule of the host
    changes: the node lives in its own namespaces), and after it stopped (cgroups and the
    kubelet's sysctls restored too, the registry gone)."""
    binaries = require_real_node()
    before = host_state(_host_iptables_save())
    with LocalCluster(tmp_path / "cluster", binaries=binaries) as local:
        node = local.add_real_node("leftover-check", gpus=1, images=())
        pause = built_image("pause")
        registry = node.start_registry()
        image = registry.push_archive(pause.archive, "warmpool/pause", pause.ref.split(":")[-1])
        registry_pid = next(p.pid for p in node.processes if p.name == "registry")
        with local.client() as api:
            core = kubernetes.client.CoreV1Api(api)
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "sleeper"},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "pause",
                            "image": image,
                            "imagePullPolicy": "Always",
                        }
                    ],
                },
            }
            core.create_namespaced_pod("default", pod)
            wait_pod(
                api,
                "default",
                "sleeper",
                "a running pod",
                lambda p: p["status"].get("phase") == "Running",
            )
        during = host_state(_host_iptables_save())
        cgroup_root = node.cgroup_root
        state_dir = str(node.layout.root)
        assert any(cgroup_root in entry for entry in during["cgroups"])
    after = host_state(_host_iptables_save())

    for key in ("routes", "links", "netns", "iptables"):
        assert during[key] == before[key], key
        assert after[key] == before[key], key
    assert after["sysctls"] == before["sysctls"]
    assert not [c for c in after["cgroups"] if cgroup_root in c]
    assert not _runs(registry_pid, "registry")
    ours = (state_dir, "/var/lib/kubelet", "/var/lib/containerd", "/run/containerd", "/run/netns")
    for snapshot in (during, after):
        assert not [m for m in snapshot["mounts"] if m.startswith(ours)], snapshot["mounts"]


def _runs(pid: int, program: str) -> bool:
    """Whether process ``pid`` exists and its command line names ``program``."""
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _host_iptables_save() -> Path:
    """Debian's iptables-save unpacked by hack/build-node.sh (the host has none installed):
    it only reads the host's tables."""
    return NodeBinaries.discover().debs_dir / "bin" / "iptables-save"
