"""Helpers of the fault tests (test_faults.py): pools in bulk, their children grouped by pool,
convergence checks, test-owned KWOK nodes, a real S3 server (versitygw), a bandwidth-limited
TCP relay that stands in for a slow network link, and a pod's prefetch run as a kubelet would.

Nothing here nudges the operator: helpers only read the cluster, or do what a user (create,
update, delete pools), the warm-up sidecar (open a pod's gate) or a kubelet (run and signal a
pod's program) would do.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    as_dict,
    condition,
    get_pool,
    open_gate,
)

from warmpool.envtest import poll_until

POOL_LABEL = "warmpool.dev/pool"


def random_pod_cidr() -> str:
    """A loopback /24 of its own, so the fault cluster's pod IPs never collide with the session
    cluster's or another engineer's (see conftest._session_pod_cidr)."""
    rng = random.SystemRandom()
    return f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.0/24"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pool_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A small pool (1 GPU a replica, warm floor 1); top-level keys of `spec` replace those
    defaults."""
    body: dict[str, Any] = {
        "model": {"uri": "s3://models/tiny"},
        "scaling": {"warmFloor": 1, "maxReplicas": 4},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def pools_api(api: kubernetes.client.ApiClient) -> Any:
    return kubernetes.client.CustomObjectsApi(api)


def create_pools(api: kubernetes.client.ApiClient, manifests: Iterable[dict[str, Any]]) -> None:
    for manifest in manifests:
        namespace = manifest["metadata"]["namespace"]
        pools_api(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)


def patch_pool(
    api: kubernetes.client.ApiClient, namespace: str, name: str, patch: dict[str, Any]
) -> None:
    pools_api(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def pool_exists(api: kubernetes.client.ApiClient, namespace: str, name: str) -> bool:
    try:
        get_pool(api, namespace, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


@dataclass
class Children:
    """The objects of a namespace that pools own, counted per pool and kind."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    owner_problems: list[str] = field(default_factory=list)

    def of(self, pool: str) -> dict[str, int]:
        return dict(self.counts.get(pool, Counter()))


def children_of(
    api: kubernetes.client.ApiClient, namespace: str, pools: dict[str, str]
) -> Children:
    """Every Deployment, DaemonSet, Service, ServiceAccount and RoleBinding of the namespace
    owned by one of `pools` (name -> uid), and every ReplicaSet owned by those Deployments,
    counted per pool and kind; each must have exactly one owner reference, as controller."""
    apps = kubernetes.client.AppsV1Api(api)
    core = kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    by_uid = {uid: name for name, uid in pools.items()}
    found = Children(counts={name: Counter() for name in pools})
    listings = {
        "Deployment": apps.list_namespaced_deployment(namespace).items,
        "DaemonSet": apps.list_namespaced_daemon_set(namespace).items,
        "Service": core.list_namespaced_service(namespace).items,
        "ServiceAccount": core.list_namespaced_service_account(namespace).items,
        "RoleBinding": rbac.list_namespaced_role_binding(namespace).items,
    }
    deployment_owner: dict[str, str] = {}
    for kind, items in listings.items():
        for item in items:
            pool = _owning_pool(found, kind, item.metadata, by_uid)
            if pool is not None:
                found.counts[pool][kind] += 1
                if kind == "Deployment":
                    deployment_owner[item.metadata.uid] = pool
    for replicaset in apps.list_namespaced_replica_set(namespace).items:
        pool = _owning_pool(found, "ReplicaSet", replicaset.metadata, deployment_owner)
        if pool is not None:
            found.counts[pool]["ReplicaSet"] += 1
    return found


def _owning_pool(
    found: Children, kind: str, meta: Any, owners_by_uid: dict[str, str]
) -> str | None:
    owners = meta.owner_references or []
    pools = [owners_by_uid[o.uid] for o in owners if o.uid in owners_by_uid]
    if not pools:
        return None
    if len(owners) != 1 or not owners[0].controller:
        found.owner_problems.append(
            f"{kind} {meta.name}: owners {[(o.kind, o.name) for o in owners]}"
        )
    return pools[0]


def pool_uids(
    api: kubernetes.client.ApiClient, namespace: str, names: Iterable[str]
) -> dict[str, str]:
    return {name: get_pool(api, namespace, name)["metadata"]["uid"] for name in names}


def live_pods(api: kubernetes.client.ApiClient, namespace: str, pool: str) -> list[dict[str, Any]]:
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{POOL_LABEL}={pool}"
    )
    return [as_dict(api, p) for p in pods.items if p.metadata.deletion_timestamp is None]


def open_ready_gates(api: kubernetes.client.ApiClient, namespace: str, pool: str) -> int:
    """What the warm-up sidecar does once warm: open the gate of every pod of `pool` whose
    containers run and whose gate is still closed. Returns how many pods are warm now."""
    warm = 0
    for pod in live_pods(api, namespace, pool):
        gate = condition(pod, "warmpool.dev/warm") or {}
        if gate.get("status") == "True":
            warm += 1
            continue
        if (condition(pod, "ContainersReady") or {}).get("status") == "True":
            open_gate(api, namespace, pod["metadata"]["name"], now_rfc3339())
            warm += 1
    return warm


def converged(pool: dict[str, Any], replicas: int) -> bool:
    """Status written for the current generation, `replicas` desired, present and warm."""
    status = pool.get("status") or {}
    return (
        status.get("observedGeneration") == pool["metadata"]["generation"]
        and status.get("desiredReplicas") == replicas
        and status.get("replicas") == replicas
        and status.get("warmReplicas") == replicas
        and status.get("phase") == "Ready"
    )


def wait_all_converged(
    api: kubernetes.client.ApiClient,
    namespace: str,
    replicas_by_pool: dict[str, int],
    operator: OperatorProcess,
    timeout: float = TIMEOUT,
) -> dict[str, dict[str, Any]]:
    """Play every pool's warm-up sidecars (open gates of running pods) until every pool of
    `replicas_by_pool` has converged; returns the pools as last read."""
    pending = dict(replicas_by_pool)
    done: dict[str, dict[str, Any]] = {}

    def probe() -> bool:
        for name, replicas in list(pending.items()):
            open_ready_gates(api, namespace, name)
            pool = get_pool(api, namespace, name)
            if converged(pool, replicas):
                done[name] = pool
                del pending[name]
        return not pending

    def describe() -> str:
        lines = []
        for name in sorted(pending)[:5]:
            status = get_pool(api, namespace, name).get("status") or {}
            fields = ("phase", "desiredReplicas", "replicas", "warmReplicas", "observedGeneration")
            lines.append(f"{name}: " + ", ".join(f"{f}={status.get(f)}" for f in fields))
        return (
            f"{len(pending)} pools not converged: "
            + "; ".join(lines)
            + "\n"
            + operator.log_tail(30)
        )

    poll_until(probe, what="every pool converged", timeout=timeout, interval=0.5, describe=describe)
    return done


def operator_alive(operator: OperatorProcess) -> bool:
    return operator.process.exit_code() is None


class ThrottledRelay:
    """A loopback TCP relay to `upstream` that sends at most `bytes_per_second` per connection
    towards the client: a slow network link between a node and its object store (a stand-in
    for the network, not for the store: the store behind it is the real S3 server)."""

    def __init__(self, upstream: tuple[str, int], bytes_per_second: int) -> None:
        self._upstream = upstream
        self._rate = bytes_per_second
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.relayed = 0
        """Bytes sent to clients so far (what a download has received)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThrottledRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._pump, client, server, None)
            self._spawn(self._pump, server, client, self._rate)

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int | None) -> None:
        chunk = 16 * 1024 if rate is None else max(1024, rate // 20)
        with contextlib.suppress(OSError):
            while not self._stopped.is_set():
                data = source.recv(chunk)
                if not data:
                    break
                sink.sendall(data)
                if rate is not None:
                    with self._lock:
                        self.relayed += len(data)
                    # Pacing of the relay itself (not a test's wait): len/rate seconds a chunk.
                    self._stopped.wait(len(data) / rate)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed:` ... `elapsed[0]` seconds afterwards (reported, not
    asserted: no timed assertions in tests)."""
    result: list[float] = []
    started = time.monotonic()
    try:
        yield result
    finally:
        result.append(round(time.monotonic() - started, 2))


class S3Store:
    """A real S3 server (versitygw, posix backend, built by hack/build-s3.sh) on loopback with
    one bucket; a context manager that leaves no process behind."""

    ACCESS_KEY = "warmpoolfaults"
    SECRET_KEY = "warmpool-faults-not-a-secret"

    def __init__(self, root: Path, bucket: str) -> None:
        self.root = root
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = root.parent / f"versitygw-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> Path | None:
        cache = Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))
        found = cache / "bin" / "versitygw"
        return found if found.exists() else None

    def __enter__(self) -> S3Store:
        binary = self.binary()
        if binary is None:
            raise FileNotFoundError("versitygw not built: run hack/build-s3.sh")
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    str(binary),
                    "--access",
                    self.ACCESS_KEY,
                    "--secret",
                    self.SECRET_KEY,
                    "--port",
                    f"127.0.0.1:{self.port}",
                    "--quiet",
                    "posix",
                    str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            poll_until(self._listening, what="versitygw listening", timeout=30)
            self.client().create_bucket(Bucket=self.bucket)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def _listening(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"versitygw exited: {self.log_path.read_text()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
            return True
        return False

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
        )

    def put_random(self, key: str, size: int) -> None:
        """An object of `size` pseudo-random bytes (incompressible, like weights)."""
        data = random.Random(key).randbytes(size)
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrefetchAsKubelet:
    """Runs one pod's `prefetch` init container as a local process, as a kubelet would: its
    command and args from the pod spec, `fieldRef` and `secretRef` environment resolved, and
    the node cache volume (`--cache-dir`) and the pod's own volumes mapped to local
    directories. Only for pods whose prefetch the test drives: KWOK plays every other one."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        pod: dict[str, Any],
        node_cache: Path,
        pod_dir: Path,
        executable: str,
    ) -> None:
        self.pod = pod
        self.node_cache = node_cache
        self.pod_dir = pod_dir
        container = next(c for c in pod["spec"]["initContainers"] if c["name"] == "prefetch")
        command = [executable, *container["command"][1:]]  # `warmpool` of this venv
        self.argv = [*command, *(self._local(arg) for arg in container.get("args", []))]
        self.env = {"PATH": os.environ.get("PATH", ""), **self._environment(api, container)}
        self.termination_log = pod_dir / "termination-log"
        self.log_path = pod_dir / "prefetch.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _local(self, arg: str) -> str:
        flag, sep, _ = arg.partition("=")
        if not sep:
            return arg
        if flag == "--cache-dir":
            return f"{flag}={self.node_cache}"
        if flag == "--ref-dir":
            return f"{flag}={self.pod_dir / 'ref'}"
        if flag == "--termination-log":
            return f"{flag}={self.pod_dir / 'termination-log'}"
        return arg

    def _environment(
        self, api: kubernetes.client.ApiClient, container: dict[str, Any]
    ) -> dict[str, str]:
        core = kubernetes.client.CoreV1Api(api)
        namespace = self.pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef")
            if ref:
                secret = core.read_namespaced_secret(ref["name"], namespace)
                for key, value in (secret.data or {}).items():
                    env[key] = base64.b64decode(value).decode()
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.uid":
                env[item["name"]] = self.pod["metadata"]["uid"]
        return env

    def start(self) -> PrefetchAsKubelet:
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        return self

    def exit_code(self) -> int | None:
        assert self._process is not None
        return self._process.poll()

    def terminate(self, grace_seconds: float = 30.0) -> int:
        """What the kubelet does to a deleted pod's container: SIGTERM, then SIGKILL after the
        grace period. Returns the exit status (negative: the signal that ended it)."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        return int(self._process.returncode)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
