"""LocalCluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK as
local processes on loopback, with fake GPU nodes."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import kubernetes
import yaml

from warmpool.envtest.audit import parse_audit_log, select_writes
from warmpool.envtest.binaries import ControlPlaneBinaries
from warmpool.envtest.certs import (
    COMPONENT_CLIENTS,
    CertificateAuthority,
    KeyPair,
    write_cluster_pki,
)
from warmpool.envtest.components import (
    AUDIT_POLICY,
    Layout,
    Ports,
    apiserver_argv,
    controller_manager_argv,
    egress_selector_config,
    etcd_argv,
    kwok_argv,
    scheduler_argv,
)
from warmpool.envtest.health import ClusterStartError, http_ok, tls_context, wait_until
from warmpool.envtest.images import IMAGE_NAMES, built_image
from warmpool.envtest.kubeconfig import build_kubeconfig, write_kubeconfig
from warmpool.envtest.netns import Dialer, EgressProxy, dial_host, is_loopback
from warmpool.envtest.nodes import DEFAULT_GPU_PRODUCT, build_gpu_node
from warmpool.envtest.process import ComponentProcess, tail
from warmpool.envtest.realnode import RealNode

# Pod IPs are loopback addresses, so a local process listening on a pod's IP stands in for
# the pod's container (see ARCHITECTURE.md, "Real parts in tests").
DEFAULT_POD_CIDR = "127.0.1.0/24"
# A port picked as free may be taken by another process before the component binds it
# (several engineers' clusters share this machine): start again with new ports.
_START_ATTEMPTS = 3


def default_kwok_dir() -> Path:
    """``hack/kwok`` of the source tree this package is installed from (editable install),
    or ``$WARMPOOL_KWOK_DIR``."""
    configured = os.environ.get("WARMPOOL_KWOK_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "hack" / "kwok"


class LocalCluster:
    """A real Kubernetes control plane for tests and the demo, with KWOK as every kubelet.

    Use as a context manager (``with LocalCluster() as cluster: ...``) or call
    :meth:`start` / :meth:`stop`. Everything lives under ``root_dir`` (a temporary
    directory removed on stop when none is given): certificates in ``pki/``, component
    logs in ``logs/`` (:attr:`logs_dir`), the audit log, etcd's data, kubeconfigs.
    """

    def __init__(
        self,
        root_dir: Path | None = None,
        *,
        binaries: ControlPlaneBinaries | None = None,
        pod_cidr: str = DEFAULT_POD_CIDR,
        node_ip: str = "127.0.0.1",
        kwok_dir: Path | None = None,
        start_timeout: float = 120.0,
        stop_grace: float = 10.0,
    ) -> None:
        self._owns_root = root_dir is None
        self.root_dir = Path(root_dir) if root_dir else Path(tempfile.mkdtemp(prefix="wp-k8s-"))
        self._layout = Layout(self.root_dir)
        self._binaries = binaries
        self.pod_cidr = pod_cidr
        self.node_ip = node_ip
        self.kwok_dir = kwok_dir or default_kwok_dir()
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.pki_dir = self._layout.pki
        self.logs_dir = self._layout.logs
        self.audit_log_path = self._layout.audit_log
        self.kubeconfig = self._layout.kubeconfig("admin")
        self._ports: Ports | None = None
        self._ca: CertificateAuthority | None = None
        self._processes: list[ComponentProcess] = []
        self._egress: EgressProxy | None = None
        self._real_nodes: list[RealNode] = []
        self.startup_seconds: dict[str, float] = {}
        """Seconds from each component's launch until it was healthy (last start)."""

    # ---- lifecycle ------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until each is healthy (bounded by
        ``start_timeout`` per component). On failure, stop what started and raise
        ClusterStartError with the failing component's log tail."""
        binaries = self._binaries or ControlPlaneBinaries.discover()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once(binaries)
                return
            except ClusterStartError as error:
                self._stop_processes()
                if "address already in use" not in str(error) or attempt == _START_ATTEMPTS:
                    self._remove_owned_root()
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop every real node, then every component (newest first), and leave nothing
        behind. Idempotent."""
        self._stop_real_nodes()
        self._stop_processes()
        self._remove_owned_root()

    def restart_apiserver(
        self, *, crash: bool = False, while_down: Callable[[], object] | None = None
    ) -> float:
        """Stop kube-apiserver and start it again with the same ports, certificates, etcd and
        audit log; wait until /readyz answers. ``crash`` SIGKILLs it (no graceful shutdown)
        instead of SIGTERM; ``while_down`` is called between stop and start (e.g. a bounded
        wait until a client has felt the outage). Returns the seconds from the stop signal
        to ready."""
        return self._restart(
            "kube-apiserver",
            f"{self.server}/readyz",
            self._admin_tls(),
            crash=crash,
            while_down=while_down,
        )

    def restart_etcd(
        self, *, crash: bool = False, while_down: Callable[[], object] | None = None
    ) -> float:
        """Stop etcd and start it again on the same data directory and ports (nothing is
        lost: writes are in the page cache even without fsync); wait until etcd's /health
        and then the apiserver's /readyz (its etcd check) answer. ``crash`` SIGKILLs it;
        ``while_down`` as for restart_apiserver. Returns the seconds from the stop signal to
        the apiserver ready again."""
        started = time.monotonic()
        health = f"http://127.0.0.1:{self._started_ports.etcd}/health"
        self._restart("etcd", health, crash=crash, while_down=while_down)
        apiserver = self._process("kube-apiserver")
        self._wait_http(apiserver, f"{self.server}/readyz", self._admin_tls())
        return round(time.monotonic() - started, 2)

    def apiserver_ready(self) -> bool:
        """Whether kube-apiserver's /readyz answers 200: it serves, and every readiness check
        (its etcd connection included) passes."""
        return http_ok(f"{self.server}/readyz", self._admin_tls(), timeout=2.0)

    @property
    def processes(self) -> Sequence[ComponentProcess]:
        """The running components, oldest first."""
        return tuple(self._processes)

    # ---- access ---------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The apiserver's URL."""
        return f"https://127.0.0.1:{self._started_ports.apiserver}"

    @property
    def apiserver_port(self) -> int:
        """The apiserver's port on 127.0.0.1 (and, through the relays, inside real nodes)."""
        return self._started_ports.apiserver

    @property
    def ca_cert(self) -> Path:
        """The cluster CA certificate (PEM) that signed the apiserver's serving cert."""
        return self.pki_dir / "ca.crt"

    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``KUBECONFIG`` for the admin, for subprocesses, and a kubectl
        discovery cache of this cluster's own (``KUBECACHEDIR``): the shared ``~/.kube/cache``
        is keyed by host and port, and loopback ports are reused by the next cluster (of any
        engineer on the machine), whose kubectl would read a dead cluster's discovery: the
        suspected cause of ``kubectl wait crd/...`` failing twice here right after the CRD was
        applied (not reproduced in isolation)."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.root_dir / "kube-cache"),
        }

    def api_client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
        """A new sync ``kubernetes`` ApiClient (admin unless ``kubeconfig``); close it."""
        api: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig)
        )
        return api

    @contextlib.contextmanager
    def client(self, kubeconfig: Path | None = None) -> Iterator[kubernetes.client.ApiClient]:
        """``with cluster.client() as api:`` an ApiClient closed on exit."""
        api = self.api_client(kubeconfig)
        try:
            yield api
        finally:
            api.close()  # type: ignore[no-untyped-call]

    def server_version(self) -> str:
        """``gitVersion`` from GET /version (e.g. ``v1.34.4``)."""
        with self.client() as api:
            return str(kubernetes.client.VersionApi(api).get_code().git_version)

    def kubeconfig_for(
        self, subject: str, *, groups: Sequence[str] = (), expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig authenticated as ``subject``.

        ``system:serviceaccount:<namespace>:<name>`` gets a bound token from the
        TokenRequest API (the ServiceAccount must exist), exactly what a pod of that
        ServiceAccount would present; any other name gets a client certificate signed by
        the cluster CA with ``groups`` as its organizations.
        """
        prefix = "system:serviceaccount:"
        if subject.startswith(prefix):
            namespace, _, name = subject[len(prefix) :].partition(":")
            return self.kubeconfig_for_service_account(namespace, name, expiration_seconds)
        return self.kubeconfig_for_user(subject, groups)

    def kubeconfig_for_service_account(
        self, namespace: str, name: str, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig with a TokenRequest token for ServiceAccount ``namespace/name``."""
        # No audiences: the token gets the apiserver's own (the issuer), like a pod's.
        body = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=[], expiration_seconds=expiration_seconds
            )
        )
        with self.client() as api:
            response = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, body
            )
        if response.status is None or not response.status.token:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} returned no token")
        config = build_kubeconfig(
            server=self.server,
            ca_pem=self.ca_cert.read_bytes(),
            user=f"system:serviceaccount:{namespace}:{name}",
            token=response.status.token,
            namespace=namespace,
        )
        return write_kubeconfig(self._layout.kubeconfig(f"sa-{namespace}-{name}"), config)

    def kubeconfig_for_user(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig with a client certificate for ``user`` in ``groups``."""
        stem = "user-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        pair = self._authority.issue(
            self.pki_dir, stem, common_name=user, organizations=tuple(groups), client=True
        )
        return self._write_cert_kubeconfig(stem, user, pair)

    # ---- fake GPU nodes ---------------------------------------------------------------

    def add_gpu_node(
        self,
        name: str,
        *,
        gpus: int = 8,
        product: str = DEFAULT_GPU_PRODUCT,
        labels: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        wait_ready: bool = True,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Create a KWOK-managed node with ``gpus`` ``nvidia.com/gpu`` and wait (bounded)
        until KWOK reports it Ready. Returns the node as the API last returned it."""
        manifest = build_gpu_node(name, gpus=gpus, product=product, labels=labels, taints=taints)
        with self.client() as api:
            core = kubernetes.client.CoreV1Api(api)
            # The client sends a plain dict as it is; a V1Node would only be converted back.
            core.create_node(cast(kubernetes.client.V1Node, manifest))
            node: dict[str, Any] = {}

            def ready() -> bool:
                nonlocal node
                node = _as_dict(api, core.read_node(name))
                conditions = node.get("status", {}).get("conditions") or []
                return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

            if not wait_ready:
                ready()
                return node
            wait_until(ready, what=f"node {name} Ready (KWOK)", timeout=timeout, process=self._kwok)
            return node

    # ---- real nodes ---------------------------------------------------------------------

    def add_real_node(
        self,
        name: str = "real-node-0",
        *,
        gpus: int = 2,
        product: str = DEFAULT_GPU_PRODUCT,
        labels: Mapping[str, str] | None = None,
        images: Sequence[str] = IMAGE_NAMES,
        start_timeout: float = 180.0,
    ) -> RealNode:
        """Start a real node (kubelet, containerd, runc, CNI bridge, kube-proxy, and a fake
        device plugin advertising ``gpus`` ``nvidia.com/gpu``) in namespaces of its own, with
        the built ``images`` (names from warmpool.envtest.images) imported, and wait until it
        is Ready with its GPUs allocatable. Stopped with the cluster (or ``node.stop()``).

        One real node per cluster: each node's namespace has the same addresses.
        """
        if self._real_nodes:
            raise RuntimeError("this cluster already has a real node (one per cluster)")
        pause = built_image("pause")
        archives = [pause.archive]
        archives += [built_image(image).archive for image in images if image != "pause"]
        node = RealNode(
            self,
            name,
            self._layout.nodes / name,
            gpus=gpus,
            gpu_product=product,
            labels=labels,
            images=archives,
            sandbox_image=pause.ref,
            start_timeout=start_timeout,
        )
        self._real_nodes.append(node)
        try:
            node.start()
        except BaseException:
            self._real_nodes.remove(node)
            raise
        return node

    @property
    def real_nodes(self) -> Sequence[RealNode]:
        return tuple(self._real_nodes)

    @property
    def egress_refused(self) -> Sequence[str]:
        """``host:port`` of every connection the apiserver asked for and was refused (not
        loopback, not a real node's)."""
        return tuple(self._egress.refused) if self._egress else ()

    def _egress_route(self, host: str) -> Dialer | None:
        if is_loopback(host):
            return dial_host
        for node in self._real_nodes:
            if node.network.owns(host):
                return node.dial
        return None

    def _stop_real_nodes(self) -> None:
        errors = []
        while self._real_nodes:
            node = self._real_nodes.pop()
            try:
                node.stop()
            except Exception as error:  # stop the rest, then report the first
                errors.append(error)
        if errors:
            raise errors[0]

    # ---- diagnostics ------------------------------------------------------------------

    def log_tails(self, lines: int = 30) -> str:
        """The last ``lines`` of every component's log, for a failing test's report."""
        parts = []
        for path in sorted(self.logs_dir.glob("*.log")):
            if path == self.audit_log_path:
                continue
            parts.append(f"----- {path.name} (last {lines} lines) -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audit event logged so far (JSON lines, Metadata level)."""
        try:
            return parse_audit_log(self.audit_log_path.read_text())
        except FileNotFoundError:
            return []

    def audit_writes(
        self,
        *,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        user: str | None = None,
    ) -> list[dict[str, Any]]:
        """Audit events of write verbs, filtered by resource / namespace / name / user."""
        return select_writes(
            self.audit_events(), resource=resource, namespace=namespace, name=name, user=user
        )

    # ---- internals --------------------------------------------------------------------

    @property
    def _started_ports(self) -> Ports:
        if self._ports is None:
            raise RuntimeError("the cluster has not been started")
        return self._ports

    @property
    def _authority(self) -> CertificateAuthority:
        if self._ca is None:
            raise RuntimeError("the cluster has not been started")
        return self._ca

    @property
    def _kwok(self) -> ComponentProcess | None:
        return next((p for p in self._processes if p.name == "kwok"), None)

    def _start_once(self, binaries: ControlPlaneBinaries) -> None:
        layout = self._layout
        for directory in (layout.pki, layout.logs):
            directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(layout.etcd_data, ignore_errors=True)
        self._ports = ports = Ports(*_free_ports(6))
        self._ca, clients = write_cluster_pki(layout.pki)
        for stem, (user, _) in COMPONENT_CLIENTS.items():
            self._write_cert_kubeconfig(stem, user, clients[stem])
        layout.audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        layout.egress_config.write_text(yaml.safe_dump(egress_selector_config(layout)))
        if self._egress is None:
            self._egress = EgressProxy(layout.egress_socket, self._egress_route)
            self._egress.start()

        etcd = self._spawn("etcd", etcd_argv(binaries.etcd, layout, ports))
        self._wait_http(etcd, f"http://127.0.0.1:{ports.etcd}/health")

        apiserver = self._spawn(
            "kube-apiserver", apiserver_argv(binaries.kube_apiserver, layout, ports)
        )
        admin = tls_context(self.ca_cert, (layout.pki / "admin.crt", layout.pki / "admin.key"))
        self._wait_http(apiserver, f"{self.server}/readyz", admin)

        # kube-controller-manager and kube-scheduler serve self-signed certificates.
        insecure = tls_context(None)
        controller_manager = self._spawn(
            "kube-controller-manager",
            controller_manager_argv(binaries.kube_controller_manager, layout, ports),
        )
        self._wait_http(
            controller_manager, f"https://127.0.0.1:{ports.controller_manager}/healthz", insecure
        )
        scheduler = self._spawn(
            "kube-scheduler", scheduler_argv(binaries.kube_scheduler, layout, ports)
        )
        self._wait_http(scheduler, f"https://127.0.0.1:{ports.scheduler}/healthz", insecure)

        kwok = self._spawn_kwok(binaries.kwok, ports)
        self._wait_http(kwok, f"http://127.0.0.1:{ports.kwok}/healthz")
        self._wait_for_default_service_account(controller_manager)

    def _spawn_kwok(self, binary: Path, ports: Ports) -> ComponentProcess:
        stages = sorted((self.kwok_dir / "stages").glob("*.yaml"))
        config = self.kwok_dir / "kwok.yaml"
        if not config.is_file() or not stages:
            raise ClusterStartError(
                f"KWOK configuration missing: expected {config} and {self.kwok_dir}/stages/"
                "*.yaml (set WARMPOOL_KWOK_DIR to the repository's hack/kwok)"
            )
        argv = kwok_argv(
            binary,
            self._layout,
            ports,
            config=config,
            stages=stages,
            pod_cidr=self.pod_cidr,
            node_ip=self.node_ip,
        )
        # KWOK also loads ~/.kwok/kwok.yaml when it exists; a private HOME keeps a
        # developer's own KWOK settings out of the cluster.
        return self._spawn("kwok", argv, env={**os.environ, "HOME": str(self.root_dir)})

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ComponentProcess:
        process = ComponentProcess(
            name, argv, self.logs_dir / f"{name}.log", cwd=self.root_dir, env=env
        )
        self._processes.append(process)
        return process

    def _wait_http(
        self, process: ComponentProcess, url: str, context: ssl.SSLContext | None = None
    ) -> None:
        path = url.rsplit("/", 1)[-1]
        wait_until(
            lambda: http_ok(url, context),
            what=f"{process.name} /{path}",
            timeout=self.start_timeout,
            process=process,
        )
        self.startup_seconds[process.name] = round(time.monotonic() - process.started_at, 2)

    def _admin_tls(self) -> ssl.SSLContext:
        return tls_context(self.ca_cert, (self.pki_dir / "admin.crt", self.pki_dir / "admin.key"))

    def _process(self, name: str) -> ComponentProcess:
        found = next((p for p in self._processes if p.name == name), None)
        if found is None:
            raise RuntimeError(f"{name} is not running in this cluster")
        return found

    def _restart(
        self,
        name: str,
        health_url: str,
        context: ssl.SSLContext | None = None,
        *,
        crash: bool,
        while_down: Callable[[], object] | None,
    ) -> float:
        """Replace component ``name`` by a new process of the same command line, in the same
        place in the start order (so stop() still stops newest first); wait until healthy."""
        old = self._process(name)
        started = time.monotonic()
        if crash:
            old.kill()
        else:
            old.stop(self.stop_grace)
        try:
            if while_down is not None:
                while_down()
        finally:
            # Started again even when while_down failed: later users of the cluster need it.
            new = old.respawn()
            self._processes[self._processes.index(old)] = new
        self._wait_http(new, health_url, context)
        return round(time.monotonic() - started, 2)

    def _wait_for_default_service_account(self, controller_manager: ComponentProcess) -> None:
        """Pods cannot be created before the ServiceAccount controller made ``default``
        in their namespace: wait for it in ``default`` so the cluster is usable."""
        with self.client() as api:
            core = kubernetes.client.CoreV1Api(api)

            def exists() -> bool:
                accounts = core.list_namespaced_service_account("default").items
                return any(sa.metadata and sa.metadata.name == "default" for sa in accounts)

            wait_until(
                exists,
                what="ServiceAccount default/default (kube-controller-manager)",
                timeout=self.start_timeout,
                process=controller_manager,
            )

    def _write_cert_kubeconfig(self, stem: str, user: str, pair: KeyPair) -> Path:
        config = build_kubeconfig(
            server=self.server,
            ca_pem=self.ca_cert.read_bytes(),
            user=user,
            client_cert=pair.cert,
            client_key=pair.key,
        )
        return write_kubeconfig(self._layout.kubeconfig(stem), config)

    def _stop_processes(self) -> None:
        while self._processes:
            self._processes.pop().stop(self.stop_grace)
        if self._egress is not None:
            self._egress.close()
            self._egress.path.unlink(missing_ok=True)
            self._egress = None

    def _remove_owned_root(self) -> None:
        if self._owns_root:
            shutil.rmtree(self.root_dir, ignore_errors=True)


def _as_dict(api: kubernetes.client.ApiClient, obj: object) -> dict[str, Any]:
    """A client model as the plain JSON-shaped dict the API sent."""
    data: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return data


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together while picking
    so they differ; another process may still take one before the component binds: see
    _START_ATTEMPTS)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
