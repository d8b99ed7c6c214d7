"""e2e fixtures: one real local control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, KWOK) for the whole session, and a fresh namespace per test.

Real: every Kubernetes component and the API semantics (admission, RBAC, scheduling,
controllers, the audit log). Mocked because they cannot exist here: GPUs and kubelets —
KWOK plays the kubelet for fake nodes that advertise ``nvidia.com/gpu``, with the pod
stages in ``hack/kwok/stages/`` (readiness gates honoured, as by a real kubelet).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
import uuid
from collections.abc import Generator, Iterator

import kubernetes
import pytest
from pluggy import Result
from real_node_support import REAL_NODE, REAL_NODE_GPUS, REAL_NODE_IMAGES, require_real_node

from support.components import component_unavailable
from warmpool.envtest import (
    BinaryNotFoundError,
    ClusterStartError,
    ControlPlaneBinaries,
    LocalCluster,
    find_binary,
    poll_until,
)

_REAL_STARTUP = pytest.StashKey[str]()

# Two nodes so that tests can see pods spread, and 8 GPUs each like a real H100 box.
SESSION_GPU_NODES = ("gpu-node-0", "gpu-node-1")
GPUS_PER_NODE = 8


def _session_pod_cidr() -> str:
    """A loopback /24 for pod IPs, random per session so that two sessions on one machine
    (several engineers, or e2e next to `make demo`) do not hand out the same pod IPs
    that local stand-in servers then listen on. ``WARMPOOL_POD_CIDR`` pins it."""
    configured = os.environ.get("WARMPOOL_POD_CIDR")
    if configured:
        return configured
    rng = random.SystemRandom()
    return f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.0/24"


def pytest_report_header(config: pytest.Config) -> str:
    """The Kubernetes version e2e runs against (the binaries the cluster will run)."""
    try:
        apiserver = find_binary("kube-apiserver")
        version = subprocess.run(
            [str(apiserver), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (BinaryNotFoundError, OSError, subprocess.SubprocessError) as error:
        return f"control plane: unavailable ({error})"
    return f"control plane: {version} ({apiserver.parent})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test using the cluster carries the ``controlplane`` marker (``-m``)."""
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.controlplane)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """On failure, attach the tail of every component's log to the test's report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if isinstance(cluster, LocalCluster):
        report.sections.append(
            ("control plane logs", f"logs in {cluster.logs_dir}\n{cluster.log_tails(40)}")
        )


_STARTUP = pytest.StashKey[str]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """How the session's control plane started (version, seconds per component)."""
    for key in (_STARTUP, _REAL_STARTUP):
        line = config.stash.get(key, None)
        if line is not None:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    """A running LocalCluster with two fake 8-GPU H100 nodes, for the whole session.

    Its files (logs, audit log, kubeconfigs) stay under pytest's basetemp for inspection.
    """
    try:
        binaries = ControlPlaneBinaries.discover()
    except BinaryNotFoundError as error:
        component_unavailable("control plane", str(error))
    local = LocalCluster(
        tmp_path_factory.mktemp("cluster"), binaries=binaries, pod_cidr=_session_pod_cidr()
    )
    started = time.monotonic()
    local.start()
    try:
        for name in SESSION_GPU_NODES:
            local.add_gpu_node(name, gpus=GPUS_PER_NODE)
        pytestconfig.stash[_STARTUP] = (
            f"control plane: {local.server_version()} ready in "
            f"{time.monotonic() - started:.1f}s with {len(SESSION_GPU_NODES)} GPU nodes "
            f"(seconds to healthy: {local.startup_seconds}); pod CIDR {local.pod_cidr}; "
            f"logs {local.logs_dir}"
        )
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def real_cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    """A second LocalCluster for the whole session whose only node is a real one: kubelet,
    containerd, runc, CNI bridge, kube-proxy and a fake GPU device plugin in namespaces of
    their own (warmpool.envtest.realnode), with the built agent and CPU Triton images."""
    binaries = require_real_node()
    local = LocalCluster(tmp_path_factory.mktemp("real-cluster"), binaries=binaries)
    started = time.monotonic()
    try:
        local.start()
        node = local.add_real_node(REAL_NODE, gpus=REAL_NODE_GPUS, images=REAL_NODE_IMAGES)
    except BaseException as error:
        local.stop()
        if isinstance(error, ClusterStartError):
            component_unavailable("real node", str(error))
        raise
    pytestconfig.stash[_REAL_STARTUP] = (
        f"real node: {REAL_NODE} Ready in {time.monotonic() - started:.1f}s with its cluster "
        f"(steps: {node.startup_seconds}); logs {node.logs_dir}"
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def k8s(cluster: LocalCluster) -> Iterator[kubernetes.client.ApiClient]:
    """An admin ApiClient (sync ``kubernetes`` package) for the session cluster."""
    with cluster.client() as api:
        yield api


@pytest.fixture
def namespace(k8s: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting: the namespace
    controller finalizes it in the background). Yielded once its ``default``
    ServiceAccount exists, since admission refuses pods until then."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(k8s)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )

    def default_service_account() -> bool:
        accounts = core.list_namespaced_service_account(name).items
        return any(sa.metadata is not None and sa.metadata.name == "default" for sa in accounts)

    poll_until(default_service_account, what=f"ServiceAccount {name}/default", timeout=60)
    yield name
    core.delete_namespace(name)
