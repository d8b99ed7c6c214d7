"""The hold queue: requests wait here, per pool and bounded, until the pool has a warm endpoint.

Waiters are released in arrival order the moment the endpoint table reports an endpoint for
their pool. Each waiter has its own deadline (``hold_timeout``); the queue as a whole can be
closed at shutdown, which fails every waiter at once so no client hangs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from warmpool.activator.endpoints import Endpoint, EndpointTable, LeastOutstandingPicker
from warmpool.activator.metrics import ActivatorMetrics
from warmpool.activator.routing import PoolKey


class HoldRefused(Exception):
    """The request will not be forwarded; the message is meant for the client."""


class QueueFull(HoldRefused):
    """The pool's hold queue is at its bound."""


class HoldTimedOut(HoldRefused):
    """No warm endpoint appeared within the hold timeout."""


class ShuttingDown(HoldRefused):
    """The activator is stopping."""


@dataclass
class _Waiter:
    released: asyncio.Future[None]


class HoldQueue:
    """Per-pool FIFO of requests waiting for a warm endpoint.

    ``on_hold(pool)`` is called each time a request starts waiting (the wake signal,
    which rate-limits itself).
    """

    def __init__(
        self,
        table: EndpointTable,
        *,
        capacity: int,
        timeout: float,
        on_hold: Callable[[PoolKey], None],
        metrics: ActivatorMetrics,
    ) -> None:
        self._table = table
        self._capacity = capacity
        self._timeout = timeout
        self._on_hold = on_hold
        self._metrics = metrics
        self._picker = LeastOutstandingPicker()
        self._waiting: dict[PoolKey, deque[_Waiter]] = {}
        self._closed = False
        table.add_listener(self._endpoints_changed)

    def held(self, pool: PoolKey) -> int:
        return len(self._waiting.get(pool, ()))

    @asynccontextmanager
    async def lease(self, pool: PoolKey) -> AsyncIterator[Endpoint]:
        """Wait (bounded) for a warm endpoint of ``pool`` and hold it while the body runs."""
        endpoint = await self.acquire(pool)
        self._picker.started(endpoint)
        try:
            yield endpoint
        finally:
            self._picker.finished(endpoint)

    async def acquire(self, pool: PoolKey) -> Endpoint:
        """A warm endpoint of ``pool``, waiting for one if there is none yet."""
        endpoint = self._picker.pick(self._table.endpoints(pool))
        if endpoint is not None:
            return endpoint
        if self._closed:
            raise ShuttingDown("the activator is shutting down")
        queue = self._waiting.setdefault(pool, deque())
        if len(queue) >= self._capacity:
            raise QueueFull(
                f"{len(queue)} requests are already held for pool {pool} (the bound); "
                "it is scaling up from zero, retry later"
            )
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self._timeout
        labels = (pool.namespace, pool.name)
        self._metrics.held.labels(*labels).inc()
        try:
            while True:
                waiter = _Waiter(loop.create_future())
                queue.append(waiter)
                self._on_hold(pool)
                try:
                    async with asyncio.timeout_at(deadline):
                        await waiter.released
                except TimeoutError:
                    raise HoldTimedOut(
                        f"no warm replica of pool {pool} became ready within "
                        f"{self._timeout:g}s; the request was not sent"
                    ) from None
                finally:
                    if waiter in queue:
                        queue.remove(waiter)
                # Released: normally an endpoint is there; if it went away again in between,
                # wait again with the same deadline.
                endpoint = self._picker.pick(self._table.endpoints(pool))
                if endpoint is not None:
                    return endpoint
        finally:
            self._metrics.held.labels(*labels).dec()
            self._metrics.hold_seconds.labels(*labels).observe(loop.time() - start)
            if not queue and self._waiting.get(pool) is queue:
                del self._waiting[pool]

    def close(self) -> None:
        """Refuse new holds and fail every waiting request (shutdown)."""
        self._closed = True
        for queue in self._waiting.values():
            for waiter in queue:
                if not waiter.released.done():
                    waiter.released.set_exception(ShuttingDown("the activator is shutting down"))
            queue.clear()

    def _endpoints_changed(self, pool: PoolKey, endpoints: tuple[Endpoint, ...]) -> None:
        if not endpoints:
            return
        queue = self._waiting.get(pool)
        # Resolving in FIFO order resumes the waiting tasks in that order.
        while queue:
            waiter = queue.popleft()
            if not waiter.released.done():
                waiter.released.set_result(None)
