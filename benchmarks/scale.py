"""Benchmark: N InferencePools on the real local control plane, reconciled by the real operator.

    .venv/bin/python benchmarks/scale.py [--pools 1000 | --quick] [--namespaces 10]
        [--warm-floor 0] [--scaling-interval 3] [--profile DIR] [--results PATH]
        [--baseline GITREF [--rounds 2]] [--code GITREF]

What runs: a LocalCluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK
with fake 8-GPU nodes), the checked-in CRD, and `warmpool operator` as its own process
(cluster-wide, user `warmpool-operator`). The benchmark creates N pools as fast as its client
allows (16 concurrent creates) and measures:

- converge_s: first create -> every pool has all its rendered children (Deployment, Services,
  ServiceAccount, RoleBinding: the names come from the operator's own `build_children`) AND a
  status for its current generation (status.observedGeneration == metadata.generation, with
  conditions). Seen through watches (metadata-only for the children), so the moment is the
  arrival of the last event that completed the picture, not a poll tick.
- rss_mib: the operator's RSS (/proc/<pid>/status VmRSS) at convergence, and its peak (VmHWM).
- API requests per pool while converging, from the apiserver's audit log (user
  `warmpool-operator`), split into reads (get, list, watch) and writes.
- writes_per_idle_resync: after convergence, the operator's writes (audit log) over >= 2 full
  refresh ticks, an operator restart (SIGTERM, a new process resuming every pool) and >= 2
  ticks of the new process. Must be 0.
- the operator's CPU per idle refresh tick, and per full /metrics scrape. Ticks are counted
  from `warmpool_reconcile_total`, polled every 0.5 s as `/metrics?name[]=...` (one family
  formatted). Until 2026-12-04 each poll was a full scrape, 6 per 3-s tick: with 27 condition
  series per pool, that probe was most of the "idle tick" (see results/scale.md).

`--code GITREF` runs GITREF's operator (same way) for the whole benchmark instead of this tree's:
convergence and its peak RSS can only be compared run against run.

`--baseline GITREF`: after the run, the operator of GITREF's `operator/` sources (git archive,
this venv's packages) and this tree's take turns (B A A B ...) on the same pools and control
plane: each resumes every pool, then its idle tick CPU (filtered probe and full-scrape probe),
its CPU per full scrape and its peak RSS are measured; the report prints medians and ratios.

Pool spec: a realistic scale-to-zero pool (S3 model with revision and checksums file, Triton
image, 1 GPU, warm-up inputs, warmFloor 0, maxReplicas 4, scaleToZeroAfterSeconds 600).
warmFloor 0 is the default because a cluster with 1,000 pools has most of them idle at zero (no
cluster has 1,000 spare GPUs); it measures the operator, not KWOK. `--warm-floor 1` gives every
pool a pod (one GPU each, ceil(N/8) KWOK nodes) and then "converged" also needs each pool's
status to show its pod through its lifecycle (replicas >= 1, phase WarmingUp: KWOK runs the
containers; the warm gate stays closed without a warm-up sidecar), which measures the
controller-manager, scheduler and KWOK as well. No Prometheus is configured: the scaler reports
MetricsAvailable False and holds replicas (traffic-driven scaling is benchmarks/autoscale.py's
subject).

`--profile DIR` samples the operator with py-spy (non-blocking) from the first create to
convergence and writes DIR/operator.txt (collapsed stacks) and DIR/top.txt (functions by
inclusive samples); the same over the 2 measured idle ticks into DIR/idle.txt, DIR/idle-top.txt.

Last line: `pools=<n> converge_s=<x> rss_mib=<y> writes_per_idle_resync=<z>` (rss_mib is the
peak). Targets for 1,000 pools: converge <= 60 s, RSS <= 300 MiB, zero idle writes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import urllib3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from operator_support import (  # noqa: E402
    GROUP,
    OPERATOR_USER,
    PLURAL,
    VERSION,
    OperatorProcess,
    install_crd,
)

from warmpool.api.resource import InferencePool  # noqa: E402
from warmpool.envtest import ControlPlaneBinaries, LocalCluster, poll_until  # noqa: E402
from warmpool.render.children import build_children  # noqa: E402
from warmpool.render.config import RenderConfig  # noqa: E402
from warmpool.render.labels import MANAGED_BY_LABEL  # noqa: E402

READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
GPUS_PER_NODE = 8
CREATE_CONCURRENCY = 16
AGENT_IMAGE = "ghcr.io/warmpool/agent:e2e"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
#: The child kinds a scale-to-zero pool renders, watched cluster-wide (path, kind).
CHILD_WATCHES: tuple[tuple[str, str], ...] = (
    ("/apis/apps/v1/deployments", "Deployment"),
    ("/api/v1/services", "Service"),
    ("/api/v1/serviceaccounts", "ServiceAccount"),
    ("/apis/rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding"),
)
POOLS_PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"


def pool_manifest(name: str, namespace: str, warm_floor: int) -> dict[str, Any]:
    """A realistic pool: verified S3 weights, a Triton image, one GPU, warm-up, scale to zero."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": namespace}},
        "spec": {
            "model": {
                "uri": f"s3://models/{name}",
                "revision": "2024-07-01",
                "sha256File": "SHA256SUMS",
                "name": "model",
            },
            "server": {
                "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
                "gpu": {"count": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            },
            "warmup": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16]}]},
            # scaleToZeroAfterSeconds is only valid with a warm floor of 0.
            "scaling": {"warmFloor": warm_floor, "maxReplicas": 4}
            | ({"scaleToZeroAfterSeconds": 600} if warm_floor == 0 else {}),
        },
    }


def expected_children(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of what the operator renders for `manifest` (its own render code)."""
    pool = InferencePool.model_validate({**manifest, "metadata": {**manifest["metadata"]}})
    children = build_children(pool, RenderConfig(agent_image=AGENT_IMAGE), replicas=0)
    return {(str(c["kind"]), str(c["metadata"]["name"])) for c in children}


# ---- watching what exists ----------------------------------------------------------------


@dataclass
class Picture:
    """What the benchmark's watches have seen (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    children: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, ns, name)
    pools: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    last_event_at: float = 0.0
    changed: threading.Event = field(default_factory=threading.Event)


class RawApi:
    """Plain HTTPS GETs with the admin's client certificate: watch streams are read line by
    line without the typed client's deserialisation (cheap next to the operator's CPU)."""

    def __init__(self, configuration: kubernetes.client.Configuration, pool_size: int) -> None:
        self._host = str(configuration.host)
        self._http = urllib3.PoolManager(
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED",
            ca_certs=configuration.ssl_ca_cert,
            cert_file=configuration.cert_file,
            key_file=configuration.key_file,
        )

    def get(
        self, path: str, query: list[tuple[str, str]], *, accept: str, timeout: float
    ) -> urllib3.BaseHTTPResponse:
        response = self._http.request(
            "GET",
            self._host + path,
            fields=query,
            headers={"Accept": accept},
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout),
        )
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.data[:300]!r}")
        return response


class Watcher(threading.Thread):
    """A raw watch of one collection (JSON lines), reconnecting from the last resourceVersion."""

    def __init__(
        self,
        api: RawApi,
        path: str,
        apply: Callable[[str, dict[str, Any]], None],
        picture: Picture,
        *,
        accept: str = "application/json",
        label_selector: str = "",
    ) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self._api, self._path, self._apply, self._picture = api, path, apply, picture
        self._accept, self._selector = accept, label_selector
        self._stop = threading.Event()
        self.error: BaseException | None = None

    def _get(self, query: list[tuple[str, str]], timeout: float) -> Any:
        if self._selector:
            query = [*query, ("labelSelector", self._selector)]
        return self._api.get(self._path, query, accept=self._accept, timeout=timeout)

    def run(self) -> None:
        try:
            accept = self._accept
            self._accept = accept.replace("PartialObjectMetadata", "PartialObjectMetadataList")
            listed = json.loads(self._get([], 60).data)
            self._accept = accept
            with self._picture.lock:
                for item in listed.get("items") or []:
                    self._apply("ADDED", item)
            version = str(listed["metadata"]["resourceVersion"])
            while not self._stop.is_set():
                query = [("watch", "1"), ("resourceVersion", version), ("timeoutSeconds", "300")]
                response = self._get(query, 330)
                for line in response:  # urllib3 yields line by line for chunked JSON streams
                    if self._stop.is_set():
                        break
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise RuntimeError(f"watch {self._path}: {event.get('object')}")
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    with self._picture.lock:
                        self._apply(str(event.get("type")), obj)
                        self._picture.last_event_at = time.monotonic()
                    self._picture.changed.set()
                response.release_conn()
        except BaseException as error:  # reported by the main thread
            if not self._stop.is_set():
                self.error = error
                self._picture.changed.set()

    def stop(self) -> None:
        self._stop.set()


def child_applier(picture: Picture, kind: str) -> Callable[[str, dict[str, Any]], None]:
    def apply(event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            picture.children.discard(key)
        elif event_type in ("ADDED", "MODIFIED"):
            picture.children.add(key)

    return apply


def pool_applier(picture: Picture) -> Callable[[str, dict[str, Any]], None]:
    def apply(event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            picture.pools.pop(key, None)
        elif event_type in ("ADDED", "MODIFIED"):
            status = obj.get("status") or {}
            picture.pools[key] = {
                "generation": meta.get("generation"),
                "observedGeneration": status.get("observedGeneration"),
                "conditions": len(status.get("conditions") or []),
                "replicas": status.get("replicas") or 0,
                "phase": status.get("phase"),
            }

    return apply


def pool_converged(
    picture: Picture, key: tuple[str, str], children: set[tuple[str, str]], need_pods: bool
) -> bool:
    seen = picture.pools.get(key)
    if seen is None or seen["observedGeneration"] != seen["generation"] or not seen["conditions"]:
        return False
    # With a pod: its lifecycle is through (KWOK ran it; the warm gate stays closed without a
    # warm-up sidecar, so the pool rests in WarmingUp) and the status says so.
    if need_pods and (seen["replicas"] < 1 or seen["phase"] != "WarmingUp"):
        return False
    namespace = key[0]
    return all((kind, namespace, name) in picture.children for kind, name in children)


# ---- the operator process ----------------------------------------------------------------


def proc_status_kib(pid: int, field_name: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise KeyError(field_name)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component_pids(cluster: LocalCluster) -> dict[str, int]:
    return {process.name: process.pid for process in cluster.processes}


class AuditReader:
    """Reads the audit log incrementally; one record per request (ResponseComplete, or
    ResponseStarted for a watch, which completes only when it ends)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._torn = b""

    def skip_to_end(self) -> None:
        self._offset = self._path.stat().st_size if self._path.exists() else 0
        self._torn = b""

    def read(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        with self._path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        lines = (self._torn + data).split(b"\n")
        self._torn = lines.pop()
        events = []
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            stage = event.get("stage")
            if event.get("verb") == "watch" and stage != "ResponseStarted":
                continue
            if event.get("verb") != "watch" and stage != "ResponseComplete":
                continue
            events.append(event)
        return events


def by_user(events: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [e for e in events if (e.get("user") or {}).get("username") == user]


def received_at(event: dict[str, Any]) -> float:
    """Wall-clock seconds of the request's arrival."""
    stamp = str(event.get("requestReceivedTimestamp") or event.get("stageTimestamp"))
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def verb_resource(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource") or event.get("requestURI"))
    if ref.get("subresource"):
        resource += f"/{ref['subresource']}"
    return f"{event.get('verb')} {resource}"


def describe(events: list[dict[str, Any]], limit: int = 12) -> str:
    counts = collections.Counter(verb_resource(e) for e in events)
    return ", ".join(f"{name} x{n}" for name, n in counts.most_common(limit))


@dataclass
class Profiler:
    """py-spy sampling the operator (non-blocking: the operator is never paused)."""

    process: subprocess.Popen[bytes]
    out_dir: Path
    name: str

    @classmethod
    def start(cls, pid: int, out_dir: Path, name: str = "operator") -> Profiler:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out_dir.mkdir(parents=True, exist_ok=True)
        argv = [py_spy, "record", "--pid", str(pid), "--nonblocking", "--rate", "50"]
        argv += ["--format", "raw", "--output", str(out_dir / f"{name}.txt")]
        log = (out_dir / f"{name}-py-spy.log").open("wb")
        return cls(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), out_dir, name)

    def stop(self) -> None:
        self.process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stacks = self.out_dir / f"{self.name}.txt"
        if stacks.exists():
            top = "top.txt" if self.name == "operator" else f"{self.name}-top.txt"
            (self.out_dir / top).write_text(top_functions(stacks.read_text()))


def top_functions(collapsed: str, limit: int = 60) -> str:
    """Functions by inclusive samples (each counted once per stack) from py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            inclusive[frame] += samples
    rows = [f"{n * 100 / max(total, 1):5.1f}% {frame}" for frame, n in inclusive.most_common(limit)]
    return f"{total} samples\n" + "\n".join(rows) + "\n"


# ---- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    pools: int
    namespaces: int
    warm_floor: int
    scaling_interval: float
    create_s: float = 0.0
    converge_s: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    reads: int = 0
    writes: int = 0
    read_detail: str = ""
    write_detail: str = ""
    operator_cpu_s: float = 0.0
    component_cpu_s: dict[str, float] = field(default_factory=dict)
    idle_tick_cpu_s: float = 0.0
    idle_ticks: int = 0
    restart_resume_s: float = 0.0
    restart_rss_mib: float = 0.0
    restart_reads: int = 0
    idle_writes: int = 0
    idle_write_detail: str = ""
    load_before: str = ""
    load_after: str = ""
    kubernetes: str = ""
    operator_args: list[str] = field(default_factory=list)
    scrape_cpu_s: float = 0.0
    series: int = 0
    side_by_side: list[IdleSample] = field(default_factory=list)


def uptime_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{os.cpu_count()} CPUs ({model}), {mem_kib / 2**20:.0f} GiB RAM, {platform.platform()}"


def admin_client(cluster: LocalCluster, pool_size: int) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = pool_size
    return kubernetes.client.ApiClient(configuration)


def ready_nodes(core: kubernetes.client.CoreV1Api) -> int:
    return sum(
        any(
            c.type == "Ready" and c.status == "True"
            for c in (node.status.conditions if node.status else None) or []
        )
        for node in core.list_node().items
    )


def has_default_account(core: kubernetes.client.CoreV1Api, namespace: str) -> bool:
    return any(
        sa.metadata is not None and sa.metadata.name == "default"
        for sa in core.list_namespaced_service_account(namespace).items
    )


def metric_sum(
    operator: OperatorProcess, name: str, *, full_scrape: bool = False, **labels: str
) -> float:
    """The sum of `name`'s samples with `labels`, read from `/metrics?name[]=<name>` (the
    operator formats that one family only); `full_scrape`: from the whole page, as this
    benchmark read it until 2026-12-04 (each such read is a full scrape, see `scrape_cpu`)."""
    try:
        if not full_scrape:
            return float(operator.metric(name, **labels))
        total = 0.0
        for line in operator.metrics().splitlines():
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] == name and all(
                f'{k}="{v}"' in series for k, v in labels.items()
            ):
                total += float(value)
        return total
    except OSError:
        return 0.0


def wait_ticks(
    operator: OperatorProcess, ticks: int, pools: int, timeout: float, *, full_scrape: bool = False
) -> None:
    """Until `ticks` full refresh ticks ran (every pool synced with trigger=tick that often),
    polled every 0.5 s (`full_scrape`: each poll scrapes the whole /metrics page)."""

    def ticked() -> float:
        return metric_sum(
            operator, "warmpool_reconcile_total", full_scrape=full_scrape, trigger="tick"
        )

    start = ticked()
    poll_until(
        lambda: ticked() >= start + ticks * pools,
        what=f"{ticks} refresh ticks of {pools} pools",
        timeout=timeout,
        interval=0.5,
        describe=operator.log_tail,
    )


def scrape_cpu(operator: OperatorProcess, scrapes: int = 5) -> tuple[float, int]:
    """Operator CPU seconds per full /metrics scrape, and the series the page holds."""
    before = cpu_seconds(operator.process.pid)
    for _ in range(scrapes):
        page = operator.metrics()
    spent = (cpu_seconds(operator.process.pid) - before) / scrapes
    return spent, sum(1 for line in page.splitlines() if line and not line.startswith("#"))


@dataclass
class IdleSample:
    """One operator process's idle figures (side by side with --baseline)."""

    code: str
    load: str
    tick_cpu_s: float
    tick_cpu_full_probe_s: float
    scrape_cpu_s: float
    series: int
    hwm_mib: float


def baseline_command(ref: str, workdir: Path) -> list[str]:
    """`warmpool` from `ref`'s operator/ sources (git archive), with this venv's packages."""
    source = workdir / "baseline"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "operator"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    launch = (
        f"import sys; sys.path.insert(0, {str(source / 'operator')!r}); "
        "from warmpool.cli import main; sys.exit(main())"
    )
    return [sys.executable, "-c", launch]


@dataclass
class Bench:
    args: argparse.Namespace
    cluster: LocalCluster
    workdir: Path
    result: Result
    watchers: list[Watcher] = field(default_factory=list)
    #: How the operator is started ([]: this venv's `warmpool`; `--code REF`: REF's sources).
    command: list[str] = field(default_factory=list)

    def run(self) -> Result:
        args, cluster, result = self.args, self.cluster, self.result
        n, ns_count = args.pools, self.result.namespaces
        api = admin_client(cluster, CREATE_CONCURRENCY + len(CHILD_WATCHES) + 4)
        core = kubernetes.client.CoreV1Api(api)
        namespaces = [f"team-{i:02d}" for i in range(ns_count)]
        for name in namespaces:
            core.create_namespace(
                kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
            )
        if args.warm_floor > 0:
            nodes = -(-n * args.warm_floor // GPUS_PER_NODE)
            for index in range(nodes):
                cluster.add_gpu_node(f"gpu-{index:03d}", gpus=GPUS_PER_NODE, wait_ready=False)
            poll_until(
                lambda: ready_nodes(core) >= nodes,
                what=f"{nodes} KWOK nodes Ready",
                timeout=300,
                interval=1,
            )
        else:
            cluster.add_gpu_node("gpu-000", gpus=GPUS_PER_NODE)
        for name in namespaces:
            poll_until(
                lambda name=name: has_default_account(core, name),  # type: ignore[misc]
                what=f"ServiceAccount {name}/default",
                timeout=60,
            )
        try:
            install_crd(cluster, self.workdir)
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"installing the CRD failed: {error.stderr}") from error
        kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
        extra = ["--scaling-interval", str(args.scaling_interval), *args.operator_arg]
        result.operator_args = extra
        self.command = baseline_command(args.code, self.workdir) if args.code else []
        operator = OperatorProcess(
            cluster, kubeconfig, self.workdir / "logs", extra=extra, command=self.command
        )
        try:
            self._measure(api, operator, kubeconfig, namespaces, extra)
        finally:
            for watcher in self.watchers:
                watcher.stop()
            operator.stop()
            api.close()  # type: ignore[no-untyped-call]
        return result

    def _measure(
        self,
        api: kubernetes.client.ApiClient,
        operator: OperatorProcess,
        kubeconfig: Path,
        namespaces: list[str],
        extra: list[str],
    ) -> None:
        args, result, n = self.args, self.result, self.args.pools
        picture = Picture()
        raw = RawApi(api.configuration, len(CHILD_WATCHES) + 2)
        selector = f"{MANAGED_BY_LABEL}=warmpool"
        self.watchers = [
            Watcher(raw, POOLS_PATH, pool_applier(picture), picture),
            *(
                Watcher(
                    raw,
                    path,
                    child_applier(picture, kind),
                    picture,
                    accept=METADATA_ACCEPT,
                    label_selector=selector,
                )
                for path, kind in CHILD_WATCHES
            ),
        ]
        for watcher in self.watchers:
            watcher.start()
        manifests = [
            pool_manifest(f"pool-{i:04d}", namespaces[i % len(namespaces)], args.warm_floor)
            for i in range(n)
        ]
        random.Random(8).shuffle(manifests)  # namespaces interleaved, like many teams at once
        children = expected_children(manifests[0])
        prefix = manifests[0]["metadata"]["name"]
        expected = {
            (m["metadata"]["namespace"], m["metadata"]["name"]): {
                (kind, name.replace(prefix, m["metadata"]["name"], 1)) for kind, name in children
            }
            for m in manifests
        }
        time.sleep(1.0)  # let the watches establish (they list first, then watch)
        audit = AuditReader(self.cluster.audit_log_path)
        audit.skip_to_end()
        result.load_before = uptime_load()
        profiler = Profiler.start(operator.process.pid, args.profile) if args.profile else None
        custom = kubernetes.client.CustomObjectsApi(api)

        def create(manifest: dict[str, Any]) -> None:
            ns = manifest["metadata"]["namespace"]
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest)

        pids = component_pids(self.cluster)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        operator_cpu_before = cpu_seconds(operator.process.pid)
        started = time.monotonic()
        started_wall = time.time()
        with ThreadPoolExecutor(CREATE_CONCURRENCY) as pool:
            creating = pool.map(create, manifests)
            list(creating)
            result.create_s = time.monotonic() - started
            print(f"created {n} pools in {result.create_s:.1f}s", flush=True)
        converged_at = self._wait_converged(picture, expected, started, operator)
        result.converge_s = converged_at - started
        result.operator_cpu_s = cpu_seconds(operator.process.pid) - operator_cpu_before
        result.component_cpu_s = {
            name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()
        }
        result.rss_mib = proc_status_kib(operator.process.pid, "VmRSS") / 1024
        result.peak_rss_mib = proc_status_kib(operator.process.pid, "VmHWM") / 1024
        if profiler is not None:
            profiler.stop()
        converged_wall = started_wall + result.converge_s
        mine = [
            e
            for e in by_user(audit.read(), OPERATOR_USER)
            if received_at(e) <= converged_wall + 0.5
        ]
        reads = [e for e in mine if e.get("verb") in READ_VERBS]
        writes = [e for e in mine if e.get("verb") in WRITE_VERBS]
        result.reads, result.writes = len(reads), len(writes)
        result.read_detail, result.write_detail = describe(reads), describe(writes)
        print(
            f"converged in {result.converge_s:.1f}s; rss {result.rss_mib:.0f} MiB "
            f"(peak {result.peak_rss_mib:.0f}); per pool {len(reads) / n:.2f} reads "
            f"{len(writes) / n:.2f} writes; operator CPU {result.operator_cpu_s:.1f}s, "
            + ", ".join(f"{k} {v:.1f}s" for k, v in result.component_cpu_s.items()),
            flush=True,
        )
        self._idle_resync(operator, kubeconfig, audit, extra)

    def _wait_converged(
        self,
        picture: Picture,
        expected: dict[tuple[str, str], set[tuple[str, str]]],
        started: float,
        operator: OperatorProcess,
    ) -> float:
        need_pods = self.args.warm_floor > 0
        pending = set(expected)
        deadline = started + self.args.timeout
        last_report = started
        while True:
            picture.changed.wait(timeout=1.0)
            picture.changed.clear()
            for watcher in self.watchers:
                if watcher.error is not None:
                    raise RuntimeError(f"{watcher.name} failed: {watcher.error}")
            with picture.lock:
                pending = {
                    key
                    for key in pending
                    if not pool_converged(picture, key, expected[key], need_pods)
                }
                last_event = picture.last_event_at
            now = time.monotonic()
            if not pending:
                return last_event
            if now > deadline:
                sample = sorted(pending)[:5]
                raise TimeoutError(
                    f"{len(pending)} pools not converged after {self.args.timeout}s, e.g. "
                    f"{sample}\n{operator.log_tail(30)}"
                )
            if now - last_report >= 10:
                last_report = now
                print(
                    f"  {now - started:5.0f}s: {len(expected) - len(pending)}/{len(expected)} "
                    f"converged",
                    flush=True,
                )

    def _idle_resync(
        self, operator: OperatorProcess, kubeconfig: Path, audit: AuditReader, extra: list[str]
    ) -> None:
        args, result, n = self.args, self.result, self.args.pools
        tick_timeout = max(120.0, 20 * args.scaling_interval)
        # Let the last status writes' own watch events come back before the idle window opens.
        wait_ticks(operator, 1, n, tick_timeout)
        audit.read()
        idle: list[dict[str, Any]] = []
        profiler = (
            Profiler.start(operator.process.pid, args.profile, "idle") if args.profile else None
        )
        cpu_before = cpu_seconds(operator.process.pid)
        wait_ticks(operator, 2, n, tick_timeout)
        result.idle_tick_cpu_s = (cpu_seconds(operator.process.pid) - cpu_before) / 2
        if profiler is not None:
            profiler.stop()
        result.scrape_cpu_s, result.series = scrape_cpu(operator)
        result.idle_ticks = 2
        operator.stop()
        idle += by_user(audit.read(), OPERATOR_USER)
        restarted = time.monotonic()
        operator = OperatorProcess(
            self.cluster, kubeconfig, self.workdir / "logs", extra=extra, command=self.command
        )
        try:
            poll_until(
                lambda: metric_sum(operator, "warmpool_reconcile_total", trigger="resume") >= n,
                what=f"the restarted operator resumed {n} pools",
                timeout=max(120.0, n * 0.5),
                interval=0.5,
                describe=operator.log_tail,
            )
            result.restart_resume_s = time.monotonic() - restarted
            wait_ticks(operator, 2, n, tick_timeout)
            result.idle_ticks += 2
            result.restart_rss_mib = proc_status_kib(operator.process.pid, "VmHWM") / 1024
            after = by_user(audit.read(), OPERATOR_USER)
        finally:
            operator.stop()
        idle += after
        result.restart_reads = sum(1 for e in after if e.get("verb") in READ_VERBS)
        idle_writes = [e for e in idle if e.get("verb") in WRITE_VERBS]
        result.idle_writes = len(idle_writes)
        result.idle_write_detail = describe(idle_writes)
        if args.baseline:
            self._side_by_side(kubeconfig, extra, baseline_command(args.baseline, self.workdir))
        result.load_after = uptime_load()

    def _side_by_side(self, kubeconfig: Path, extra: list[str], baseline: list[str]) -> None:
        """This tree's operator and `--baseline`'s, in turns (B A, A B, ...) on the same pools
        and control plane: each resumes every pool, then idle ticks are measured with the
        filtered probe and with the full-scrape probe, then 5 full scrapes."""
        args, result, n = self.args, self.result, self.args.pools
        tick_timeout = max(120.0, 20 * args.scaling_interval)
        codes = {"baseline": baseline, "this tree": []}
        for turn in range(args.rounds * 2):
            code = ("baseline", "this tree")[(turn + turn // 2) % 2]
            operator = OperatorProcess(
                self.cluster, kubeconfig, self.workdir / "logs", extra=extra, command=codes[code]
            )
            try:
                load = uptime_load()
                poll_until(
                    lambda operator=operator: (
                        metric_sum(  # type: ignore[misc]
                            operator, "warmpool_reconcile_total", trigger="resume"
                        )
                        >= n
                    ),
                    what=f"{code}: {n} pools resumed",
                    timeout=max(120.0, n * 0.5),
                    interval=0.5,
                    describe=operator.log_tail,
                )
                wait_ticks(operator, 1, n, tick_timeout)
                pid = operator.process.pid
                before = cpu_seconds(pid)
                wait_ticks(operator, 2, n, tick_timeout)
                tick = (cpu_seconds(pid) - before) / 2
                before = cpu_seconds(pid)
                wait_ticks(operator, 2, n, tick_timeout, full_scrape=True)
                tick_full = (cpu_seconds(pid) - before) / 2
                scrape, series = scrape_cpu(operator)
                sample = IdleSample(
                    code,
                    load,
                    tick,
                    tick_full,
                    scrape,
                    series,
                    proc_status_kib(pid, "VmHWM") / 1024,
                )
            finally:
                operator.stop()
            print(f"  side by side: {sample}", flush=True)
            result.side_by_side.append(sample)


def report(result: Result, args: argparse.Namespace) -> str:
    n = result.pools
    rows = [
        ("pools (namespaces)", f"{n} ({result.namespaces})"),
        ("create all pools (client, 16 concurrent)", f"{result.create_s:.1f} s"),
        ("**converge_s** (first create -> all children + status)", f"{result.converge_s:.1f} s"),
        ("operator RSS at convergence", f"{result.rss_mib:.0f} MiB"),
        ("**operator peak RSS** (VmHWM)", f"{result.peak_rss_mib:.0f} MiB"),
        ("operator reads while converging (per pool)", f"{result.reads} ({result.reads / n:.2f})"),
        (
            "operator writes while converging (per pool)",
            f"{result.writes} ({result.writes / n:.2f})",
        ),
        (
            "CPU seconds while converging: operator; " + ", ".join(result.component_cpu_s),
            f"{result.operator_cpu_s:.1f}; "
            + ", ".join(f"{v:.1f}" for v in result.component_cpu_s.values()),
        ),
        (
            f"operator CPU per idle refresh tick of {n} pools",
            f"{result.idle_tick_cpu_s:.2f} s",
        ),
        (
            "operator CPU per full /metrics scrape (series on the page)",
            f"{result.scrape_cpu_s:.3f} s ({result.series})",
        ),
        ("restart: new process -> every pool resumed", f"{result.restart_resume_s:.1f} s"),
        (
            "restart: peak RSS of the new process (resume + 2 ticks)",
            f"{result.restart_rss_mib:.0f} MiB",
        ),
        ("restart: reads until 2 ticks later (per pool)", f"{result.restart_reads / n:.2f}"),
        (
            f"**writes in the idle resync** ({result.idle_ticks} ticks + a restart)",
            f"{result.idle_writes}",
        ),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    side = side_by_side_report(result.side_by_side, args.baseline, n)
    code = f", the code of {args.code}" if args.code else ""
    line = (
        f"pools={n} converge_s={result.converge_s:.1f} rss_mib={result.peak_rss_mib:.0f} "
        f"writes_per_idle_resync={result.idle_writes}"
    )
    return f"""# Scale: {n} InferencePools

`{" ".join(["benchmarks/scale.py", *sys.argv[1:]])}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.

- Machine: {machine()}; shared with other engineers' builds and tests (numbers are noisy).
- Load average (1/5/15 min): {result.load_before} when the creates began,
  {result.load_after} at the end.
- Control plane: {result.kubernetes} (etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, KWOK) on loopback; the operator runs as its own process, cluster-wide
  (`warmpool operator {" ".join(result.operator_args)}`{code}).
- Pools: scale-to-zero spec (S3 model, Triton image, 1 GPU, warm-up inputs, warmFloor
  {result.warm_floor}, maxReplicas 4), spread over {result.namespaces} namespaces; no Prometheus.

| measure | value |
|---|---|
{table}

Reads while converging: {result.read_detail or "none"}.

Writes while converging: {result.write_detail or "none"}.

Idle writes: {result.idle_write_detail or "none"}.
{side}
{line}
"""


def side_by_side_report(samples: list[IdleSample], baseline: str | None, pools: int) -> str:
    """The --baseline table: every turn, then medians and this tree / baseline ratios."""
    if not samples:
        return ""
    rows = [
        f"| {s.code} | {s.load} | {s.tick_cpu_s:.2f} | {s.tick_cpu_full_probe_s:.2f} "
        f"| {s.scrape_cpu_s:.3f} | {s.series} | {s.hwm_mib:.0f} |"
        for s in samples
    ]

    def median(code: str, attribute: str) -> float:
        return float(statistics.median(getattr(s, attribute) for s in samples if s.code == code))

    ratios = []
    for attribute, what in (
        ("tick_cpu_s", "CPU per idle tick"),
        ("tick_cpu_full_probe_s", "CPU per idle tick, full-scrape probe"),
        ("scrape_cpu_s", "CPU per full scrape"),
        ("hwm_mib", "peak RSS after resume + ticks"),
    ):
        before, after = median("baseline", attribute), median("this tree", attribute)
        ratios.append(
            f"- {what}: baseline {before:.3f}, this tree {after:.3f}, "
            f"ratio {after / before if before else float('nan'):.2f}"
        )
    header = (
        "| code | load (1/5/15) at start | CPU s per idle tick | same, full-scrape probe "
        "| CPU s per full scrape | series | peak RSS MiB (resume + 5 ticks + scrapes) |"
    )
    table = "\n".join([header, "|---|---|---|---|---|---|---|", *rows])
    return f"""
## Side by side: this tree and `{baseline}` ({pools} pools, same control plane, in turns)

Each turn starts a new operator process that resumes every pool; it is then measured over 2 idle
ticks polled with `?name[]=warmpool_reconcile_total` (the operator formats one family), 2 idle
ticks polled with full scrapes (every 0.5 s, as this benchmark polled before), and 5 full
scrapes. CPU seconds are the operator process's own (user + system).

{table}

Medians, this tree / baseline:
{chr(10).join(ratios)}
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 pools")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--warm-floor", type=int, default=0, choices=[0, 1])
    parser.add_argument(
        "--scaling-interval",
        type=float,
        default=3.0,
        help="operator --scaling-interval (short, so that idle ticks come quickly)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on convergence (s)")
    parser.add_argument("--profile", type=Path, help="py-spy the operator into this directory")
    parser.add_argument(
        "--operator-arg", action="append", default=[], help="extra `warmpool operator` flag"
    )
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks" / "results" / "scale.md"
    )
    parser.add_argument("--keep", type=Path, help="keep the cluster's files in this directory")
    parser.add_argument(
        "--baseline",
        help="git ref: after the run, measure its operator and this tree's side by side",
    )
    parser.add_argument("--rounds", type=int, default=2, help="side-by-side turns per code")
    parser.add_argument(
        "--code",
        help="git ref: run that ref's operator (its operator/ sources) instead of this tree's",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pools = 100
    args.namespaces = max(1, min(args.namespaces, args.pools))
    return args


@dataclass
class Workspace:
    root: Path
    owned: bool

    @classmethod
    def make(cls, keep: Path | None) -> Workspace:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            return cls(keep, False)
        return cls(Path(tempfile.mkdtemp(prefix="wp-scale-")), True)

    def close(self) -> None:
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    urllib3.disable_warnings()
    workspace = Workspace.make(args.keep)
    rng = random.SystemRandom()
    cidr = f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.0/24"
    cluster = LocalCluster(
        workspace.root / "cluster", binaries=ControlPlaneBinaries.discover(), pod_cidr=cidr
    )
    result = Result(
        pools=args.pools,
        namespaces=args.namespaces,
        warm_floor=args.warm_floor,
        scaling_interval=args.scaling_interval,
    )
    cluster.start()
    try:
        result.kubernetes = cluster.server_version()
        Bench(args, cluster, workspace.root, result).run()
    finally:
        cluster.stop()
        workspace.close()
    text = report(result, args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text.rstrip().splitlines()[-1])
    return 0 if result.idle_writes == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
