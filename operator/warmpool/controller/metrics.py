"""The operator's Prometheus metrics, in a registry of their own (no module-level globals)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from warmpool.api.status import ColdStart, Phase
from warmpool.controller.pool.coldstart import phase_seconds

#: Cold starts run from seconds (a cached model on a warm node) to tens of minutes (a large
#: model downloaded onto a fresh node), so the buckets reach 30 minutes.
COLD_START_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900, 1200, 1800)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class OperatorMetrics:
    """Counters and histograms of one operator process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.cold_start_seconds = Histogram(
            "warmpool_cold_start_seconds",
            "Seconds of a replica's cold start, creation to warm, by phase "
            "(total, scheduling, prefetch, server_start, warmup).",
            ["phase"],
            buckets=COLD_START_BUCKETS,
            registry=self.registry,
        )
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

    def observe_cold_start(self, cold_start: ColdStart) -> None:
        for phase, seconds in phase_seconds(cold_start).items():
            self.cold_start_seconds.labels(phase=phase).observe(seconds)

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
