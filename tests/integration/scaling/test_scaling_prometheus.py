"""The Prometheus reader and the scaling service against a REAL Prometheus.

Prometheus (Debian package, hack/install-prometheus.sh) scrapes, every second:
- in-process exporters (prometheus_client on loopback ports) exposing Triton-named series
  (`nv_inference_*`) whose counters grow at known rates, one per "pod", with the `namespace`
  and `pool` target labels the chart's relabelling attaches;
- the activator's real metrics class (`warmpool_activator_held_requests{namespace,pool}`),
  scraped with `honor_labels: true` as the chart does;
- when Triton is installed, a REAL Triton's metrics port, after real inferences.
The exporters stand in for Triton pods only for the known-demand cases (a CPU Triton cannot be
driven at an exact concurrency); the real-Triton case checks the default query on real series.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

from support.prometheus import PrometheusServer, free_port, require_prometheus, static_job
from warmpool.activator.metrics import ActivatorMetrics
from warmpool.api.resource import InferencePool
from warmpool.scaling.policy import Sample
from warmpool.scaling.prometheus import DemandWindow, MetricsUnavailable, PrometheusReader
from warmpool.scaling.service import evaluate
from warmpool.scaling.state import PolicyState

pytestmark = pytest.mark.prometheus

T = TypeVar("T")
WINDOW = "5s"  # rate() window: five 1 s scrapes


@dataclass(eq=False)  # hashable by identity: a prometheus_client collector
class TritonLike:
    """Triton's metric names and labels, with counters growing at set rates (per second).

    Samples carry their own timestamps (text-format timestamps, honored by Prometheus): a
    counter's value and its time come from the same clock reading, so rate() sees the exact
    slope even when a loaded machine delays a scrape between its start and collect().
    """

    concurrency: float  # mean requests in Triton: request_duration_us grows by this * 1e6 / s
    rps: float
    pending: float
    started: float = field(default_factory=time.time)

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        elapsed = now - self.started
        labels = {"model": "llama", "version": "1"}
        for name, kind, value in (
            ("nv_inference_request_duration_us", "counter", self.concurrency * 1e6 * elapsed),
            ("nv_inference_request_success", "counter", self.rps * elapsed),
            ("nv_inference_exec_count", "counter", self.rps * elapsed),
            ("nv_inference_pending_request_count", "gauge", self.pending),
        ):
            metric = Metric(name, f"Triton-named {name}", kind)
            metric.add_sample(name, labels, value, timestamp=now)
            yield metric


class Exporter:
    """A prometheus_client HTTP exporter on a free loopback port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, "127.0.0.1", registry)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass
class Setup:
    prometheus: PrometheusServer
    jobs: list[dict[str, Any]]
    llama: TritonLike
    other: TritonLike
    activator: ActivatorMetrics


def pool(name: str = "llama", **scaling: Any) -> InferencePool:
    return InferencePool.from_manifest(
        {
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "model": {"uri": "s3://models/llama"},
                "scaling": {
                    "warmFloor": 0,
                    "maxReplicas": 8,
                    "scaleToZeroAfterSeconds": 60,
                    "target": {"type": "Concurrency", "value": 4},
                    **scaling,
                },
            },
        }
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """Exporters and one Prometheus for the module (tests only read; none stops it)."""
    require_prometheus()
    exporters: list[Exporter] = []
    llama = TritonLike(concurrency=3.0, rps=7.0, pending=1.0)
    other = TritonLike(concurrency=20.0, rps=50.0, pending=4.0)
    activator = ActivatorMetrics()
    activator.held.labels(namespace="ml", pool="llama").set(2)
    try:
        jobs = []
        for name, source in (("llama", llama), ("other", other)):
            registry = CollectorRegistry()
            registry.register(source)
            exporters.append(Exporter(registry))
            jobs.append(
                static_job(
                    f"triton-{name}", [exporters[-1].target], {"namespace": "ml", "pool": name}
                )
            )
        exporters.append(Exporter(activator.registry))
        activator_job = static_job("activator", [exporters[-1].target])
        activator_job["honor_labels"] = True  # the activator labels series with their pool
        jobs.append(activator_job)
        with PrometheusServer(jobs, tmp_path_factory.mktemp("prometheus")) as prometheus:
            prometheus.wait_scraped()
            yield Setup(prometheus, jobs, llama, other, activator)
    finally:
        for exporter in exporters:
            exporter.stop()


def reader(url: str, **kwargs: Any) -> PrometheusReader:
    return PrometheusReader(url, window=WINDOW, lookback_seconds=30, step_seconds=1, **kwargs)


def latest(samples: list[Sample]) -> float | None:
    return samples[-1].value if samples else None


async def test_default_concurrency_query_sums_triton_and_held_requests(setup: Setup) -> None:
    probe = reader(setup.prometheus.url)

    async def read() -> DemandWindow:
        result = await probe.read("ml", "llama", now=datetime.now(UTC))
        assert isinstance(result, DemandWindow), result
        return result

    # rate(request_duration_us[5s]) / 1e6 = 3 in flight, + 1 pending, + 2 held by the activator.
    # A scrape delayed on a loaded machine skews one window's rate(): read until it settles.
    result = await settled(read, lambda r: latest(r.samples) == pytest.approx(6.0, rel=0.05))
    assert latest(result.samples) == pytest.approx(6.0, rel=0.05)
    assert 'pool="llama"' in result.query and "[5s]" in result.query


async def test_requests_per_second_query(setup: Setup) -> None:
    result = await reader(setup.prometheus.url).read(
        "ml", "other", now=datetime.now(UTC), target_type="RequestsPerSecond"
    )
    assert isinstance(result, DemandWindow), result
    assert latest(result.samples) == pytest.approx(50.0, rel=0.05)  # no held requests for other


async def test_query_override_with_placeholders(setup: Setup) -> None:
    query = 'sum(nv_inference_pending_request_count{namespace="{namespace}",pool="{pool}"})'
    result = await reader(setup.prometheus.url).read(
        "ml", "other", now=datetime.now(UTC), query=query
    )
    assert isinstance(result, DemandWindow), result
    assert latest(result.samples) == pytest.approx(4.0)


async def test_pool_with_only_held_requests_is_demand(setup: Setup) -> None:
    setup.activator.held.labels(namespace="ml", pool="sleepy").set(3)
    probe = reader(setup.prometheus.url)

    async def read_sleepy() -> float | None:
        result = await probe.read("ml", "sleepy", now=datetime.now(UTC))
        assert isinstance(result, DemandWindow), result
        return latest(result.samples)

    # A pool at zero has no Triton series: held requests alone are its demand.
    deadline = time.monotonic() + 30
    value = await read_sleepy()
    while value != 3.0 and time.monotonic() < deadline:
        await _tick()
        value = await read_sleepy()
    assert value == 3.0


async def test_service_scales_on_real_metrics(setup: Setup) -> None:
    async def decide() -> Any:
        return await evaluate(
            pool(),
            PolicyState(),
            datetime.now(UTC),
            reader(setup.prometheus.url),
            current_replicas=1,
            ready_replicas=1,
        )

    decision = await settled(decide, lambda d: d.observed_demand == pytest.approx(6.0, rel=0.05))
    assert decision.metrics_available, decision.reason
    assert decision.desired == 2, decision.reason  # ceil(6 / 4)
    assert decision.observed_demand == pytest.approx(6.0, rel=0.05)
    assert decision.state.last_request_at is not None and decision.state.last_request_at > 0


async def test_prometheus_stopped_reader_unavailable_and_policy_holds(
    setup: Setup, tmp_path: Path
) -> None:
    own = PrometheusServer(setup.jobs, tmp_path / "prometheus").start()
    try:
        own.wait_scraped()
        url = own.url
        first = await evaluate(
            pool(),
            PolicyState(),
            datetime.now(UTC),
            reader(url),
            current_replicas=3,
            ready_replicas=3,
        )
        assert first.metrics_available, first.reason
    finally:
        own.stop()
    state = first.state
    result = await reader(url).read("ml", "llama", now=datetime.now(UTC))
    assert isinstance(result, MetricsUnavailable)
    assert "failed" in result.reason or "timed out" in result.reason
    decision = await evaluate(
        pool(), state, datetime.now(UTC), reader(url), current_replicas=3, ready_replicas=3
    )
    assert not decision.metrics_available
    assert decision.desired == 3
    assert decision.reason.startswith("metrics unavailable")


async def test_unresponsive_prometheus_times_out_into_unavailable() -> None:
    # A socket that accepts connections and never answers: the bounded timeout must fire.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = await reader(url, timeout_seconds=1.0).read("ml", "llama", now=datetime.now(UTC))
    assert isinstance(result, MetricsUnavailable)
    assert "timed out" in result.reason or "Timeout" in result.reason


async def settled(read: Callable[[], Awaitable[T]], accept: Callable[[T], bool]) -> T:
    """Read until `accept` holds (bounded: 30 s) and return the last reading; the caller
    then asserts on it, so a value that never settles still fails with its own message."""
    deadline = time.monotonic() + 30
    value = await read()
    while not accept(value) and time.monotonic() < deadline:
        await _tick()
        value = await read()
    return value


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.5)  # poll interval of a bounded wait, not a timing assumption
