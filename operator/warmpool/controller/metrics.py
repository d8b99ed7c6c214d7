"""The operator's Prometheus metrics, in a registry of their own (no module-level globals)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from warmpool.api.status import ColdStart, Phase
from warmpool.controller.pool.coldstart import phase_seconds

#: Cold starts run from seconds (a cached model on a warm node) to tens of minutes (a large
#: model downloaded onto a fresh node), so the buckets reach 30 minutes.
COLD_START_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800)
CONDITION_STATUSES = ("True", "False", "Unknown")
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class OperatorMetrics:
    """Counters and histograms of one operator process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        # Per pool: an SLO and a dashboard are per model. 19 series per phase and pool (17
        # buckets, sum, count); removed when the pool goes (`forget_pool`).
        self.cold_start_seconds = Histogram(
            "warmpool_cold_start_seconds",
            "Seconds of a replica's cold start, creation to warm, by pool and phase "
            "(total, node_provisioning, image_pull, scheduling, prefetch, server_start, warmup).",
            ["namespace", "pool", "phase"],
            buckets=COLD_START_BUCKETS,
            registry=self.registry,
        )
        self.cold_starts = Counter(
            "warmpool_cold_starts_total",
            "Cold starts measured (a replica became warm), by pool.",
            ["namespace", "pool"],
            registry=self.registry,
        )
        # Registered here, third, so the exposition keeps its order.
        self.pool_condition = PoolConditions()
        self.registry.register(self.pool_condition)
        self.reconciles = Counter(
            "warmpool_reconcile_total",
            "Pool reconciliations by trigger and result.",
            ["trigger", "result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "warmpool_reconcile_duration_seconds",
            "Duration of one pool reconciliation.",
            ["trigger"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.api_writes = Counter(
            "warmpool_api_writes_total",
            "Write requests the operator made, by verb and kind (an idle operator makes none).",
            ["verb", "kind"],
            registry=self.registry,
        )
        self.pools = Gauge(
            "warmpool_pools",
            "InferencePools by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.scale_decisions = Counter(
            "warmpool_scale_decisions_total",
            "Changes of a pool's desired replicas, by direction.",
            ["direction"],
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_cold_start(self, namespace: str, pool: str, cold_start: ColdStart) -> None:
        for phase, seconds in phase_seconds(cold_start).items():
            self.cold_start_seconds.labels(namespace=namespace, pool=pool, phase=phase).observe(
                seconds
            )
        self.cold_starts.labels(namespace=namespace, pool=pool).inc()

    def set_pool_conditions(self, namespace: str, pool: str, conditions: Mapping[str, str]) -> None:
        """Set a pool's condition series from {type: status}."""
        self.pool_condition.set(namespace, pool, conditions)

    def forget_pool(self, namespace: str, pool: str) -> None:
        """Drop a deleted pool's series (a label set per pool would otherwise grow forever)."""
        for metric in (self.cold_start_seconds, self.cold_starts):
            for labels in list(_label_sets(metric)):
                if labels.get("namespace") == namespace and labels.get("pool") == pool:
                    metric.remove(*labels.values())
        self.pool_condition.forget(namespace, pool)

    def count_write(self, verb: str, kind: str) -> None:
        self.api_writes.labels(verb=verb, kind=kind).inc()

    def set_pool_phases(self, phases: Iterable[str]) -> None:
        counts: Mapping[str, int] = {phase.value: 0 for phase in Phase}
        tally = dict(counts)
        for phase in phases:
            tally[phase] = tally.get(phase, 0) + 1
        for phase, count in tally.items():
            self.pools.labels(phase=phase).set(count)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve /metrics on `port` from a background thread (0: do not serve)."""
        if port:
            self._server, self._thread = start_http_server(port, address, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class PoolConditions:
    """`warmpool_pool_condition`, like kube-state-metrics' *_status_condition: one series per
    pool, condition and status, 1 for the status the condition has. Alerts select
    Stalled="True" and MetricsAvailable="False" (docs/operations.md).

    A collector over one small map per pool rather than a labelled Gauge: 9 conditions x 3
    statuses made 27 Gauge children per pool (27,000 objects, each with its own lock, for
    1,000 pools), which held ~18 MiB and were walked one by one on every scrape
    (benchmarks/scale.py). The series are the Gauge's: a condition once set keeps its series
    until the pool is forgotten. Pools come in the order first set, each with its conditions
    (the Gauge listed a condition first seen later after every other series; the order within
    a family means nothing to Prometheus, and a pool's first status sets all of them)."""

    NAME = "warmpool_pool_condition"
    HELP = "A pool's status conditions: 1 for the status each condition has, else 0."
    LABELS = ("namespace", "pool", "condition", "status")

    def __init__(self) -> None:
        # Written by the event loop, read by the /metrics thread.
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], dict[str, str]] = {}

    def set(self, namespace: str, pool: str, conditions: Mapping[str, str]) -> None:
        with self._lock:
            self._pools.setdefault((namespace, pool), {}).update(conditions)

    def forget(self, namespace: str, pool: str) -> None:
        with self._lock:
            self._pools.pop((namespace, pool), None)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=self.LABELS)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            pools = [(key, list(conditions.items())) for key, conditions in self._pools.items()]
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=self.LABELS)
        for (namespace, pool), conditions in pools:
            for kind, current in conditions:
                for value in CONDITION_STATUSES:
                    family.add_metric(
                        (namespace, pool, kind, value), 1.0 if value == current else 0.0
                    )
        yield family


def _label_sets(metric: Counter | Gauge | Histogram) -> Iterable[dict[str, str]]:
    """The label sets a labelled metric has children for, in label order."""
    names = metric._labelnames  # prometheus_client keeps no public accessor for these
    for values in list(metric._metrics):
        yield dict(zip(names, values, strict=True))
