"""RealNode: a real Kubernetes node (kubelet, containerd, runc, CNI bridge, kube-proxy and a
fake GPU device plugin) in namespaces the harness creates, joined to a LocalCluster.

Isolation (see docs/development.md, "Real nodes"):

- one process, ``unshare --net --mount --propagation private sleep infinity``, holds a new
  network namespace and a private mount namespace; every node component runs in both
  (``nsenter``). The network namespace has only ``lo`` (which also holds the node IP), the
  CNI bridge and the pods' veths, and an ``unreachable default`` route: no packet from the
  node or a pod can go anywhere but to the node's own addresses.
- /run, /var/lib and /var/log, paths the kubelet and containerd use whatever their flags
  say, are the node's state directories, bind-mounted in the private mount namespace only.
- nothing on the host routes into the node: the harness carries TCP across namespaces in
  user space (netns.py): the apiserver to the node (``kubernetes`` Service endpoint and the
  kubelet's server URL), the apiserver's egress proxy to the kubelet, and :meth:`forward`
  from the host to a pod or Service address.
- the host-wide rest (cgroups, the kubelet's sysctls, processes) is undone at stop
  (hostguard.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import kubernetes
import yaml

from warmpool.api.spec import CacheSpec
from warmpool.envtest import hostguard
from warmpool.envtest.binaries import NodeBinaries, cache_dir
from warmpool.envtest.health import http_ok, wait_until
from warmpool.envtest.netns import NetnsSockets, TcpRelay, dial_host, host_listener, is_loopback
from warmpool.envtest.nodeconfig import (
    CONTAINERD_SOCKET,
    DEVICE_PLUGIN_DIR,
    GPU_RESOURCE,
    REGISTRY_ADDRESS,
    REGISTRY_HOST,
    RESOLV_CONF,
    NodeLayout,
    NodeNetwork,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
    registry_config,
    registry_hosts_toml,
)
from warmpool.envtest.nodes import DEFAULT_GPU_PRODUCT, gpu_labels
from warmpool.envtest.process import ComponentProcess
from warmpool.envtest.registry import NodeRegistry, RegistryBinaries
from warmpool.render.config import RenderConfig

REAL_NODE_LABEL = "warmpool.dev/real-node"
KUBERNETES_SLICE = "kubernetes-warmpool-envtest"


class ClusterAccess(Protocol):
    """What a node needs from its LocalCluster."""

    @property
    def ca_cert(self) -> Path: ...

    @property
    def apiserver_port(self) -> int: ...

    def kubeconfig_for_user(self, user: str, groups: Sequence[str] = ()) -> Path: ...

    def api_client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient: ...


class RealNode:
    """One real node. Created and started by :meth:`LocalCluster.add_real_node`; stopped by
    :meth:`stop` or with its cluster."""

    def __init__(
        self,
        cluster: ClusterAccess,
        name: str,
        root_dir: Path,
        *,
        gpus: int = 2,
        gpu_product: str = DEFAULT_GPU_PRODUCT,
        labels: Mapping[str, str] | None = None,
        images: Iterable[Path] = (),
        sandbox_image: str,
        binaries: NodeBinaries | None = None,
        network: NodeNetwork | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.layout = NodeLayout(root_dir)
        self.gpus = gpus
        self.gpu_product = gpu_product
        self.labels = dict(labels or {})
        self.images = list(images)
        self.sandbox_image = sandbox_image
        self.binaries = binaries or NodeBinaries.discover()
        self.network = network or NodeNetwork()
        self.start_timeout = start_timeout
        self.cgroup_root = f"warmpool-{name}-{uuid.uuid4().hex[:8]}"
        self.startup_seconds: dict[str, float] = {}
        """Seconds each step of the last start took."""
        self._sysctls = hostguard.HostSysctls(
            cache_dir() / "run" / "kubelet-sysctls.json", f"{self.cgroup_root}"
        )
        self._holder: ComponentProcess | None = None
        self._sockets: NetnsSockets | None = None
        self._relays: list[TcpRelay] = []
        self._processes: list[ComponentProcess] = []
        self._netns_inodes: set[int] = set()
        self._registry: NodeRegistry | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start every component and wait until the node is Ready with its GPUs allocatable
        and kube-proxy serving; on failure stop what started and raise ClusterStartError."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the node and undo everything it did on the host. Idempotent."""
        for process in reversed(self._processes):
            if process.name != "containerd":
                process.stop(10.0)
        # Containers and their shims live outside the components' process groups.
        hostguard.kill_until_gone(self._node_pids)
        for process in reversed(self._processes):
            process.stop(10.0)
        self._processes.clear()
        # The registry's storage holds copies of built images (hundreds of MB); its log stays.
        shutil.rmtree(self.layout.registry, ignore_errors=True)
        shutil.rmtree(self.layout.registry_scratch, ignore_errors=True)
        self._registry = None
        if self._holder is not None:
            self._holder.stop(5.0)
            self._holder = None
        hostguard.kill_until_gone(self._node_pids)
        for relay in self._relays:
            relay.close()
        self._relays.clear()
        if self._sockets is not None:
            self._sockets.close()
            self._sockets = None
        left = hostguard.remove_cgroup_root(self.cgroup_root)
        self._sysctls.release()
        self._delete_api_objects()
        if left:
            raise RuntimeError(f"node {self.name}: cgroups left behind: {left}")

    # ---- access ---------------------------------------------------------------------

    @property
    def netns_path(self) -> Path:
        """The node's network namespace (``/proc/<pid>/ns/net``) while it runs."""
        if self._holder is None:
            raise RuntimeError(f"node {self.name} is not running")
        return Path(f"/proc/{self._holder.pid}/ns/net")

    def netns_command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the node's network namespace (only: the host's files), e.g. a
        test client or the activator that must reach pod and Service addresses."""
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    def node_command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the node's network and mount namespaces, where the node's
        components run (``ctr``, ``iptables-save``)."""
        if self._holder is None:
            raise RuntimeError(f"node {self.name} is not running")
        pid = str(self._holder.pid)
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--", *argv]

    def run(self, argv: Sequence[str], timeout: float = 120.0) -> str:
        """Run ``argv`` in the node's namespaces; its stdout (raises on failure)."""
        result = subprocess.run(
            self.node_command(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PATH": self.binaries.path},
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} on node {self.name}: {result.stderr.strip()}")
        return result.stdout

    def forward(self, host: str, port: int) -> int:
        """A port on the host's 127.0.0.1 whose connections are carried to ``host:port``
        inside the node (a pod IP, a ClusterIP, the node IP): how a test on the host
        talks to a pod. Closed when the node stops."""
        if not (self.network.owns(host) or is_loopback(host)):
            raise ValueError(f"{host} is not an address of node {self.name}")
        sockets = self._netns_sockets
        listener = host_listener("127.0.0.1", 0)
        relay = TcpRelay(listener, sockets.dial, (host, port), f"forward-{host}:{port}")
        relay.start()
        self._relays.append(relay)
        return relay.port

    def expose_host_port(self, port: int) -> str:
        """Make a server on the host's ``127.0.0.1:port`` (the S3 server, Prometheus's
        remote end) reachable from pods at the returned ``<node IP>:<port>``. Closed when
        the node stops."""
        listener = self._netns_sockets.listen(self.network.node_ip, port)
        relay = TcpRelay(listener, dial_host, ("127.0.0.1", port), f"expose-{port}")
        relay.start()
        self._relays.append(relay)
        return f"{self.network.node_ip}:{port}"

    def dial(self, host: str, port: int) -> Any:
        """A socket connected to ``host:port`` from inside the node's network namespace
        (the apiserver's egress proxy uses it to reach the kubelet)."""
        return self._netns_sockets.dial(host, port)

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive into the node's containerd (namespace ``k8s.io``), where
        the kubelet finds it (``imagePullPolicy: IfNotPresent``)."""
        self._ctr("images", "import", str(archive), timeout=600)

    def start_registry(self, binaries: RegistryBinaries | None = None) -> NodeRegistry:
        """The node's OCI registry (started on first use, stopped with the node): the CNCF
        distribution registry on the node's loopback, from which its containerd pulls
        ``REGISTRY_HOST/...`` references over plain HTTP (registry.py)."""
        if self._registry is not None:
            return self._registry
        binaries = binaries or RegistryBinaries.discover()
        config = self.layout.config / "registry.yaml"
        config.write_text(yaml.safe_dump(registry_config(self.layout.registry)))
        process = self._spawn("registry", [str(binaries.registry), "serve", str(config)])
        port = self.forward(*REGISTRY_ADDRESS)
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/v2/"),
            what=f"the registry of node {self.name}",
            timeout=self.start_timeout,
            process=process,
        )
        self._registry = NodeRegistry(self, binaries.crane, self.layout.registry_scratch)
        return self._registry

    def container_images(self) -> list[str]:
        """References of the images in the node's containerd."""
        return self._ctr("images", "list", "--quiet").split()

    def _ctr(self, *args: str, timeout: float = 120.0) -> str:
        ctr = [str(self.binaries.ctr), f"--address={CONTAINERD_SOCKET}", "--namespace=k8s.io"]
        return self.run([*ctr, *args], timeout=timeout)

    def _prepare_node_cache(self) -> None:
        """What a GPU node's bootstrap does for warmpool's node cache (``spec.cache.kind:
        node``): the directory exists, owned by the user the pods run as, so the non-root
        prefetcher can write where the kubelet would otherwise create a root-owned one."""
        config = RenderConfig()
        cache = self.layout.var_cache / Path(CacheSpec().path).relative_to("/var/cache")
        cache.mkdir(parents=True, exist_ok=True)
        os.chown(cache, config.run_as_user, config.run_as_group)

    def iptables_rules(self) -> list[str]:
        """``iptables-save`` inside the node (kube-proxy's rules live there)."""
        return self.run([str(self.binaries.debs_dir / "bin" / "iptables-save")]).splitlines()

    @property
    def processes(self) -> Sequence[ComponentProcess]:
        return tuple(self._processes)

    @property
    def logs_dir(self) -> Path:
        return self.layout.logs

    # ---- internals --------------------------------------------------------------------

    @property
    def _netns_sockets(self) -> NetnsSockets:
        if self._sockets is None:
            raise RuntimeError(f"node {self.name} is not running")
        return self._sockets

    def _step(self, name: str, started: float) -> None:
        self.startup_seconds[name] = round(time.monotonic() - started, 2)

    def _start(self) -> None:
        layout = self.layout
        directories = (*(source for source, _ in layout.mounts()), layout.cni_conf_dir)
        for directory in (*directories, layout.config, layout.logs, layout.containerd_root):
            directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._sysctls.acquire()
        hostguard.create_cgroup_root(self.cgroup_root)
        self._start_namespaces()
        self._step("namespaces", started)

        step = time.monotonic()
        self._prepare_node_cache()
        self._start_containerd()
        for archive in self.images:
            self.import_image(archive)
        # The image warmpool's placeholder and pre-pull pods name by default, which no
        # registry can serve here: the pause image, under that name too (pre-loaded, as a
        # node image would have it).
        self._ctr("images", "tag", "--force", self.sandbox_image, RenderConfig().pause_image)
        self._step("containerd and images", step)

        step = time.monotonic()
        self._relay_apiserver()
        self._start_kubelet()
        self._step("kubelet Ready", step)

        step = time.monotonic()
        self._start_kube_proxy()
        self._publish_apiserver_endpoint()
        self._start_gpu_plugin()
        self._step("kube-proxy and GPUs", step)
        self._step("total", started)

    def _start_namespaces(self) -> None:
        holder = ComponentProcess(
            "node-namespaces",
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            self.layout.logs / "namespaces.log",
        )
        self._holder = holder
        own = os.stat("/proc/self/ns/net").st_ino

        def unshared() -> bool:
            try:
                return os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own
            except FileNotFoundError:
                return False

        wait_until(unshared, what="the node's namespaces", timeout=10, process=holder)
        self._netns_inodes = {
            os.stat(f"/proc/{holder.pid}/ns/net").st_ino,
            os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino,
        }
        net = self.network
        script = [
            *(f"mount --bind {source} {target}" for source, target in self.layout.mounts()),
            "ip link set lo up",
            f"ip addr add {net.node_ip}/32 dev lo",
            # The guard: anything that is not the node's own goes nowhere, at once.
            "ip route add unreachable default",
            # A connection the node itself opens to a ClusterIP is routed before kube-proxy's
            # nat OUTPUT rule rewrites it to a pod: the route must exist, and stay inside.
            f"ip route add local {net.service_cidr} dev lo",
        ]
        self.run(["sh", "-euc", "\n".join(script)])
        self._sockets = NetnsSockets(self.netns_path)

    def _spawn(self, name: str, argv: Sequence[str]) -> ComponentProcess:
        process = ComponentProcess(
            name,
            self.node_command(argv),
            self.layout.logs / f"{name}.log",
            cwd=self.layout.root,
            env={**os.environ, "PATH": self.binaries.path},
        )
        self._processes.append(process)
        return process

    def _start_containerd(self) -> None:
        config = self.layout.config / "containerd.toml"
        config.write_text(
            containerd_config(
                self.layout,
                runc=self.binaries.runc,
                cni_bin=self.binaries.cni_bin,
                sandbox_image=self.sandbox_image,
            )
        )
        hosts = self.layout.registry_hosts / REGISTRY_HOST
        hosts.mkdir(parents=True, exist_ok=True)
        (hosts / "hosts.toml").write_text(registry_hosts_toml())
        (self.layout.cni_conf_dir / "10-warmpool.conflist").write_text(
            json.dumps(cni_config(self.network), indent=2) + "\n"
        )
        argv = [str(self.binaries.containerd), f"--config={config}"]
        containerd = self._spawn("containerd", argv)
        ctr_version = [str(self.binaries.ctr), f"--address={CONTAINERD_SOCKET}", "version"]

        def serving() -> bool:
            try:
                self.run(ctr_version, timeout=10)
            except (RuntimeError, subprocess.TimeoutExpired):
                return False
            return True

        wait_until(serving, what="containerd", timeout=self.start_timeout, process=containerd)

    def _relay_apiserver(self) -> None:
        """The apiserver, which listens on the host's loopback, as seen from inside the node:
        on the node's 127.0.0.1 (the kubelet's and kube-proxy's server URL, so the cluster's
        kubeconfigs work unchanged) and on the node IP (the ``kubernetes`` Service's
        endpoint, for pods), both on the apiserver's own port."""
        port = self.cluster.apiserver_port
        for address in ("127.0.0.1", self.network.node_ip):
            listener = self._netns_sockets.listen(address, port)
            relay = TcpRelay(listener, dial_host, ("127.0.0.1", port), f"apiserver-{address}")
            relay.start()
            self._relays.append(relay)

    def _start_kubelet(self) -> None:
        config = self.layout.config
        kubeconfig = self.cluster.kubeconfig_for_user(
            f"system:node:{self.name}", groups=("system:nodes",)
        )
        (config / "resolv.conf").write_text(RESOLV_CONF)
        (config / "kubelet.yaml").write_text(
            yaml.safe_dump(
                kubelet_config(
                    network=self.network,
                    cgroup_root=f"/{self.cgroup_root}",
                    ca_cert=self.cluster.ca_cert,
                    resolv_conf=config / "resolv.conf",
                )
            )
        )
        labels = {**gpu_labels(self.gpus, self.gpu_product), REAL_NODE_LABEL: "true", **self.labels}
        kubelet = self._spawn(
            "kubelet",
            [
                str(self.binaries.kube_node),
                "kubelet",
                f"--config={config / 'kubelet.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.network.node_ip}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                # A negative score is refused on this machine (no CAP_SYS_RESOURCE).
                "--oom-score-adj=0",
                "--v=1",
            ],
        )
        what = f"node {self.name} Ready"
        wait_until(self._node_ready, what=what, timeout=self.start_timeout, process=kubelet)

    def _start_kube_proxy(self) -> None:
        config = self.layout.config / "kube-proxy.yaml"
        kubeconfig = self.cluster.kubeconfig_for_user("system:kube-proxy")
        config.write_text(
            yaml.safe_dump(
                kube_proxy_config(network=self.network, kubeconfig=kubeconfig, node_name=self.name)
            )
        )
        argv = [str(self.binaries.kube_node), "kube-proxy", f"--config={config}", "--v=1"]
        proxy = self._spawn("kube-proxy", argv)
        healthz = self.forward("127.0.0.1", 10256)
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{healthz}/healthz"),
            what="kube-proxy /healthz",
            timeout=self.start_timeout,
            process=proxy,
        )

    def _start_gpu_plugin(self) -> None:
        plugin = self._spawn(
            "fake-gpu-plugin",
            [
                str(self.binaries.kube_node),
                "fake-gpu-plugin",
                f"--count={self.gpus}",
                f"--node={self.name}",
                f"--dir={DEVICE_PLUGIN_DIR}",
                f"--resource={GPU_RESOURCE}",
            ],
        )
        if self.gpus == 0:
            return

        def allocatable() -> bool:
            node = self._read_node()
            status = (node or {}).get("status", {})
            return bool(status.get("allocatable", {}).get(GPU_RESOURCE) == str(self.gpus))

        what = f"{self.gpus} {GPU_RESOURCE} allocatable on {self.name}"
        wait_until(allocatable, what=what, timeout=self.start_timeout, process=plugin)

    def _publish_apiserver_endpoint(self) -> None:
        """The ``kubernetes`` Service's endpoint: the node IP, where the relay listens (the
        cluster's apiserver runs with ``--endpoint-reconciler-type=none``)."""
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": KUBERNETES_SLICE,
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "envtest.warmpool.dev",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.network.node_ip], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": self.cluster.apiserver_port, "protocol": "TCP"}],
        }
        with self._api() as api:
            discovery = kubernetes.client.DiscoveryV1Api(api)
            try:
                discovery.create_namespaced_endpoint_slice(
                    "default", cast(kubernetes.client.V1EndpointSlice, body)
                )
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise

    def _api(self) -> contextlib.closing[kubernetes.client.ApiClient]:
        return contextlib.closing(self.cluster.api_client())

    def _read_node(self) -> dict[str, Any] | None:
        with self._api() as api:
            try:
                node = kubernetes.client.CoreV1Api(api).read_node(self.name)
            except kubernetes.client.ApiException as error:
                if error.status == 404:
                    return None
                raise
            data: dict[str, Any] = api.sanitize_for_serialization(node)  # type: ignore[no-untyped-call]
            return data

    def _node_ready(self) -> bool:
        node = self._read_node()
        conditions = (node or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _node_pids(self) -> set[int]:
        pids = hostguard.cgroup_pids(self.cgroup_root)
        if self._netns_inodes:
            pids |= hostguard.namespace_pids(self._netns_inodes)
        return pids

    def _delete_api_objects(self) -> None:
        """The Node and the ``kubernetes`` endpoint go with the node, so that nothing in the
        cluster still points at addresses that exist no more."""
        try:
            with self._api() as api:
                for delete in (
                    lambda: kubernetes.client.CoreV1Api(api).delete_node(self.name),
                    lambda: kubernetes.client.DiscoveryV1Api(api).delete_namespaced_endpoint_slice(
                        KUBERNETES_SLICE, "default"
                    ),
                ):
                    _ignore_missing(delete)
        except Exception:  # the cluster may be down already
            pass


def _ignore_missing(call: Callable[[], object]) -> None:
    try:
        call()
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
