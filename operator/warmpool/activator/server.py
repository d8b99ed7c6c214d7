"""The activator assembled: endpoint table, hold queue, wake signal, HTTP/gRPC/metrics servers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from warmpool.activator.endpoints import EndpointTable
from warmpool.activator.grpc_proxy import GrpcProxy
from warmpool.activator.hold import HoldQueue
from warmpool.activator.http_proxy import HttpProxy
from warmpool.activator.metrics import ActivatorMetrics, metrics_app
from warmpool.activator.routing import PoolKey
from warmpool.activator.wake import Waker

log = logging.getLogger(__name__)

WakeSend = Callable[[PoolKey, datetime], Awaitable[None]]


@dataclass(frozen=True)
class ActivatorConfig:
    """Listening addresses and limits. Port 0 picks a free port (tests)."""

    bind: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int | None = 8001
    metrics_port: int | None = 9090
    queue_size: int = 1000
    hold_timeout: float = 600.0
    wake_min_interval: float = 1.0
    retry_after_seconds: int = 5
    #: How long requests already forwarded may run on after shutdown begins.
    shutdown_grace: float = 30.0


@dataclass
class BoundPorts:
    http: int
    grpc: int | None
    metrics: int | None


class Activator:
    """Runs the proxies over a shared EndpointTable (fed by whatever source the caller runs)."""

    def __init__(
        self,
        config: ActivatorConfig,
        table: EndpointTable,
        wake_send: WakeSend,
        *,
        on_hold: Callable[[PoolKey], None] | None = None,
    ) -> None:
        """``on_hold`` (optional) is told of every request that starts waiting (benchmarks)."""
        self.config = config
        self._hold_observer = on_hold
        self.table = table
        self.metrics = ActivatorMetrics()
        self.hold = HoldQueue(
            table,
            capacity=config.queue_size,
            timeout=config.hold_timeout,
            on_hold=self._on_hold,
            metrics=self.metrics,
        )
        self.waker = Waker(
            wake_send,
            is_held=lambda pool: self.hold.held(pool) > 0,
            metrics=self.metrics,
            min_interval=config.wake_min_interval,
        )
        self._http = HttpProxy(
            self.hold,
            table.pools,
            self.metrics,
            retry_after_seconds=config.retry_after_seconds,
        )
        self._grpc = GrpcProxy(self.hold, table.pools, self.metrics)
        table.add_listener(self._endpoints_changed)
        self._runners: list[web.AppRunner] = []
        self._http_runner: web.AppRunner | None = None
        self.ports: BoundPorts | None = None
        self._stopped = False

    @property
    def bound(self) -> BoundPorts:
        """The ports actually listened on (after ``start``)."""
        if self.ports is None:
            raise RuntimeError("the activator is not started")
        return self.ports

    def _endpoints_changed(self, _pool: PoolKey, _endpoints: object) -> None:
        live = {ep for pool in self.table.pools() for ep in self.table.endpoints(pool)}
        self._grpc.endpoints_changed(live)

    def _on_hold(self, pool: PoolKey) -> None:
        if self._hold_observer is not None:
            self._hold_observer(pool)
        self.waker.request(pool)

    async def start(self) -> BoundPorts:
        cfg = self.config
        await self._http.start()
        http_app = self._http.app()

        async def fail_held(_: web.Application) -> None:
            # Runs after the listener closed and before in-flight requests are awaited.
            self.hold.close()

        http_app.on_shutdown.append(fail_held)
        # handler_cancellation: a client that gives up while held leaves the queue at once.
        # auto_decompress off: bodies are relayed byte for byte.
        self._http_runner = web.AppRunner(
            http_app,
            handler_cancellation=True,
            auto_decompress=False,
            shutdown_timeout=cfg.shutdown_grace,
            access_log=None,
        )
        http_port = await self._serve(self._http_runner, cfg.http_port)
        grpc_port = None
        if cfg.grpc_port is not None:
            grpc_port = await self._grpc.start(cfg.bind, cfg.grpc_port)
        metrics_port = None
        if cfg.metrics_port is not None:
            metrics_port = await self._serve(
                web.AppRunner(metrics_app(self.metrics), access_log=None), cfg.metrics_port
            )
        self.ports = BoundPorts(http=http_port, grpc=grpc_port, metrics=metrics_port)
        log.info("activator listening: %s", self.ports)
        return self.ports

    async def _serve(self, runner: web.AppRunner, port: int) -> int:
        await runner.setup()
        site = web.TCPSite(runner, self.config.bind, port)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting, answer every held request with an error, let forwarded ones finish."""
        if self._stopped:
            return
        self._stopped = True
        self._grpc.stop_accepting()
        self.hold.close()
        grace = self.config.shutdown_grace
        # The HTTP runner first: it stops its listener, fails held requests (again, no-op),
        # then waits up to the grace period for forwarded requests.
        await asyncio.gather(
            *(runner.cleanup() for runner in self._runners),
            self._grpc.close(grace),
        )
        await self._http.close()
        await self.waker.close()
