"""The activator's Prometheus metrics; the scaler reads held requests as demand.

Each Activator gets its own registry (no module-level global), so tests can run several.
"""

from __future__ import annotations

from enum import StrEnum

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from warmpool.activator.routing import PoolKey

# Cold starts of GPU pools take from seconds to many minutes: buckets span both.
HOLD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)


class Outcome(StrEnum):
    """How a request that reached the activator ended."""

    FORWARDED = "forwarded"
    REJECTED_FULL = "rejected_full"
    TIMED_OUT = "timed_out"
    UPSTREAM_ERROR = "upstream_error"
    NO_ROUTE = "no_route"
    #: The activator was stopping while the request was held.
    SHUTTING_DOWN = "shutting_down"


class ActivatorMetrics:
    """``warmpool_activator_*`` metrics in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.held = Gauge(
            "warmpool_activator_held_requests",
            "Requests held by the activator, waiting for a warm replica of their pool.",
            ["namespace", "pool"],
            registry=self.registry,
        )
        self.hold_seconds = Histogram(
            "warmpool_activator_hold_seconds",
            "Seconds a request was held before it was forwarded, refused or timed out.",
            ["namespace", "pool"],
            buckets=HOLD_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "warmpool_activator_requests",
            "Requests that reached the activator, by outcome.",
            ["namespace", "pool", "outcome"],
            registry=self.registry,
        )
        self.wakes = Counter(
            "warmpool_activator_wake_signals",
            "Wake signals (InferencePool annotation patches) sent, by result.",
            ["namespace", "pool", "result"],
            registry=self.registry,
        )

    def count(self, pool: PoolKey | None, outcome: Outcome) -> None:
        namespace, name = (pool.namespace, pool.name) if pool else ("", "")
        self.requests.labels(namespace, name, outcome.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metrics_app(metrics: ActivatorMetrics) -> web.Application:
    """A tiny aiohttp app serving ``/metrics`` (on the activator's own loop)."""

    async def handle(_: web.Request) -> web.Response:
        body = metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    app.router.add_get("/healthz", healthz)
    return app
