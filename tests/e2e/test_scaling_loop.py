"""The operator's scaling loop end to end: a real Prometheus scraping a real Triton drives the
pool's replicas on the real control plane.

- traffic up -> replicas up (to maxReplicas);
- idle -> down to the floor (0), then to zero;
- Prometheus stopped -> MetricsAvailable=False and replicas held, never scaled to zero;
- a cron schedule raises the floor when its window opens;
- periodic bursts: the cost-aware policy releases the pool between them and pre-warms a
  replica before the next one.

Real: kube-apiserver, controller-manager, scheduler, `warmpool operator` (its Prometheus reader
and the pure policy), Prometheus (Debian package), Triton (CPU) serving `affine`. Stand-ins:
KWOK plays the kubelet, and the pool's traffic is served by one local Triton whose series carry
the pool's `namespace`/`pool` labels through a static scrape config (what the chart's PodMonitor
relabelling attaches to a pod's series); replicas beyond it are KWOK pods.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    VERSION,
    OperatorProcess,
    condition,
    get_pool,
    install_crd,
)

from support.prometheus import PrometheusServer, require_prometheus, static_job
from support.triton import TritonServer, require_triton
from warmpool.envtest import LocalCluster, poll_until

MODELS = Path(__file__).resolve().parents[1] / "integration" / "activator" / "models"
POOL = "traffic"
TIMEOUT = 240.0  # rate windows and idle timers, on a loaded 2-core machine
RATE_PER_SECOND = 25.0


class Traffic:
    """A bounded load generator: about RATE_PER_SECOND inferences a second until stopped
    (and never longer than `limit_seconds`)."""

    def __init__(self, triton_url: str, limit_seconds: float = 300.0) -> None:
        self._url = f"http://{triton_url}/v2/models/affine/infer"
        self._stop = threading.Event()
        self._limit = limit_seconds
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        body = json.dumps(
            {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        ).encode()
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self._limit:
            request = urllib.request.Request(
                self._url, data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                reply.read()
            self.sent += 1
            self._stop.wait(1.0 / RATE_PER_SECOND)


def replicas(api: kubernetes.client.ApiClient, namespace: str) -> int:
    try:
        deployment = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(POOL, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return -1
        raise
    return int(deployment.spec.replicas or 0)


def create_pool(api: kubernetes.client.ApiClient, namespace: str, scaling: dict[str, Any]) -> None:
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": POOL, "namespace": namespace},
        "spec": {
            "model": {"uri": "s3://models/affine", "name": "affine"},
            "warmup": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1]}]},
            "scaling": scaling,
        },
    }
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )


@pytest.fixture
def operator_kubeconfig(cluster: LocalCluster, tmp_path: Path) -> Path:
    install_crd(cluster, tmp_path)
    return cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])


@pytest.fixture
def triton() -> Iterator[TritonServer]:
    require_triton()
    with TritonServer(
        MODELS, extra_args=["--model-control-mode=explicit", "--load-model=affine"]
    ) as server:
        yield server


@dataclass
class ScaledByTraffic:
    """A Prometheus scraping the Triton's series as the pool's, and an operator reading it."""

    prometheus: PrometheusServer
    operator: OperatorProcess


@pytest.fixture
def scaled_by_traffic(
    cluster: LocalCluster,
    namespace: str,
    operator_kubeconfig: Path,
    triton: TritonServer,
    tmp_path: Path,
) -> Iterator[ScaledByTraffic]:
    """Prometheus scrapes the Triton with the pool's `namespace`/`pool` labels (what the chart's
    PodMonitor attaches); the operator watches `namespace` and reads traffic from it. The
    Prometheus has scraped once before the test starts; both are stopped after it."""
    require_prometheus()
    metrics_target = triton.metrics_url.removeprefix("http://").removesuffix("/metrics")
    job = static_job("triton", [metrics_target], {"namespace": namespace, "pool": POOL})
    prometheus = PrometheusServer([job], tmp_path / "prometheus").start()
    try:
        operator = OperatorProcess(
            cluster,
            operator_kubeconfig,
            cluster.logs_dir,
            extra=["--namespace", namespace, "--prometheus-url", prometheus.url],
        )
        try:
            prometheus.wait_scraped()
            yield ScaledByTraffic(prometheus, operator)
        finally:
            operator.stop()
    finally:
        prometheus.stop()


def test_traffic_scales_up_idle_scales_to_zero_and_an_outage_holds(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    triton: TritonServer,
    scaled_by_traffic: ScaledByTraffic,
) -> None:
    prometheus, operator = scaled_by_traffic.prometheus, scaled_by_traffic.operator
    create_pool(
        k8s,
        namespace,
        {
            "warmFloor": 0,
            "maxReplicas": 3,
            "scaleToZeroAfterSeconds": 10,
            "scaleDownDelaySeconds": 5,
            "target": {"type": "RequestsPerSecond", "value": 5},
            # The learned keep-alive would (rightly) keep a replica through short gaps;
            # this test is about the reactive rules.
            "predictive": {"enabled": False},
        },
    )

    def wait_replicas(what: str, check: Any) -> int:
        def probe() -> tuple[int] | None:
            # A tuple: 0 replicas is an answer, not "not yet".
            n = replicas(k8s, namespace)
            return (n,) if check(n) else None

        return poll_until(
            probe,
            what=what,
            timeout=TIMEOUT,
            interval=0.5,
            describe=lambda: f"replicas={replicas(k8s, namespace)}\n{operator.log_tail(20)}",
        )[0]

    # Traffic up: ~25 rps against 5 rps per replica wants 5, capped at maxReplicas.
    with Traffic(triton.http_url):
        wait_replicas("traffic to scale the pool to maxReplicas", lambda n: n == 3)
    # Idle: down to the floor (0), then to zero, and how long that took.
    idle_since = time.monotonic()
    seen: list[int] = []

    def drained(n: int) -> bool:
        if not seen or seen[-1] != n:
            seen.append(n)
        return n == 0

    wait_replicas("idle to scale the pool to zero", drained)
    idle_to_zero = time.monotonic() - idle_since
    assert seen[0] == 3 and seen[-1] == 0, seen
    pool = get_pool(k8s, namespace, POOL)
    assert condition(pool, "MetricsAvailable")["status"] == "True"  # type: ignore[index]

    # Again up, then idle with Prometheus gone: the pool must hold, not go to zero.
    with Traffic(triton.http_url):
        held = wait_replicas("traffic to scale the pool up again", lambda n: n >= 1)
    prometheus.stop()

    def metrics_unavailable() -> dict[str, Any] | None:
        pool = get_pool(k8s, namespace, POOL)
        state = condition(pool, "MetricsAvailable")
        return pool if state and state["status"] == "False" else None

    poll_until(metrics_unavailable, what="MetricsAvailable=False", timeout=TIMEOUT)
    held = replicas(k8s, namespace)
    assert held >= 1
    # Wait for enough scaling ticks (2 s each) to cover 1.5x the time the pool took to
    # reach zero when metrics were there: the operator's own tick counter, not a sleep.
    ticks = operator.metric("warmpool_reconcile_total", trigger="tick")
    needed = ticks + max(10, int(1.5 * idle_to_zero / 2.0))
    poll_until(
        lambda: operator.metric("warmpool_reconcile_total", trigger="tick") >= needed,
        what=f"{needed - ticks:.0f} scaling ticks with Prometheus down",
        timeout=TIMEOUT * 2,
        interval=1.0,
    )
    assert replicas(k8s, namespace) == held
    reason = get_pool(k8s, namespace, POOL)["status"]["scaling"]["reason"]
    assert reason, reason


def test_schedule_raises_the_floor_when_its_window_opens(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    operator_kubeconfig: Path,
) -> None:
    # A window that opens at the start of the minute after next (UTC), an hour long.
    opens = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    schedule = {
        "cron": f"{opens.minute} {opens.hour} * * *",
        "timezone": "UTC",
        "warmFloor": 2,
        "durationMinutes": 60,
    }
    operator = OperatorProcess(
        cluster, operator_kubeconfig, cluster.logs_dir, extra=["--namespace", namespace]
    )
    try:
        create_pool(
            k8s,
            namespace,
            {
                "warmFloor": 0,
                "maxReplicas": 3,
                "schedules": [schedule],
                "predictive": {"enabled": False},
            },
        )
        poll_until(
            lambda: replicas(k8s, namespace) == 0, what="the pool at zero before", timeout=60
        )
        pool = get_pool(k8s, namespace, POOL)
        assert datetime.now(UTC) < opens, "the test took too long before the window opened"
        assert pool["status"]["scaling"]["effectiveWarmFloor"] == 0

        poll_until(
            lambda: replicas(k8s, namespace) == 2,
            what="the schedule to raise the floor to 2",
            timeout=TIMEOUT,
            describe=operator.log_tail,
        )
        assert datetime.now(UTC) >= opens
        # The Deployment is applied before the pool's status is written: wait for the status.
        poll_until(
            lambda: get_pool(k8s, namespace, POOL)["status"]["scaling"]["effectiveWarmFloor"] == 2,
            what="status.scaling.effectiveWarmFloor to show the raised floor",
            timeout=60,
            describe=operator.log_tail,
        )
    finally:
        operator.stop()


PERIOD = 100.0  # seconds between bursts: idle long enough to release and pre-warm in between
BURST = 4.0  # seconds of traffic per burst


def test_cost_aware_policy_learns_bursts_and_prewarms_before_the_next(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    triton: TritonServer,
    scaled_by_traffic: ScaledByTraffic,
) -> None:
    """Bursts every PERIOD seconds: after a few, the operator releases the pool between bursts
    and brings a replica back before the next one, with no traffic in flight, from the plan
    the cost-aware policy made on what it read from the real Prometheus."""
    operator = scaled_by_traffic.operator
    create_pool(
        k8s,
        namespace,
        {
            "warmFloor": 0,
            "maxReplicas": 1,
            "scaleToZeroAfterSeconds": 5,
            "target": {"type": "RequestsPerSecond", "value": 50},
            # A cold start is worth a lot: every predictable burst is pre-warmed.
            "predictive": {"enabled": True, "coldStartCostSeconds": 10000},
        },
    )
    start = time.monotonic()
    prewarm: dict[str, Any] | None = None
    released = False
    for burst in range(6):
        with Traffic(triton.http_url):
            time.sleep(BURST)  # shapes the traffic; nothing is asserted on time
        # Between bursts: watch for the pool released (0) and then a replica back (1)
        # while no request is sent: a pre-warm.
        while time.monotonic() < start + (burst + 1) * PERIOD:
            n = replicas(k8s, namespace)
            released = released or n == 0
            if burst >= 2 and released and n >= 1:
                prewarm = get_pool(k8s, namespace, POOL)
                break
            if n >= 1:
                released = False
            time.sleep(0.5)
        if prewarm is not None:
            break
        released = False
    assert prewarm is not None, (
        f"no pre-warm between bursts; reason: "
        f"{get_pool(k8s, namespace, POOL)['status']['scaling']['reason']}\n"
        f"{operator.log_tail(20)}"
    )
    status = prewarm["status"]
    assert "after last burst: pre-warm" in status["scaling"]["reason"], status["scaling"]
    assert status["scaling"]["effectiveWarmFloor"] == 1
    state = status["scalerState"]
    assert state["version"] == 2 and len(state["periods"]) >= 2, state
    assert state["burstPlan"], state
    assert condition(prewarm, "MetricsAvailable")["status"] == "True"  # type: ignore[index]
