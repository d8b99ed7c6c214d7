"""The wake signal: tell the operator, at once, that a pool at zero has requests waiting.

It is a merge patch of the InferencePool setting ``warmpool.dev/wake-requested-at``; the
operator watches that annotation and scales up without waiting for a Prometheus scrape.
Sent on the first held request, then at most once per ``min_interval`` per pool while
requests keep arriving, and retried (same rate) when a patch fails while requests are held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from warmpool.activator.metrics import ActivatorMetrics
from warmpool.contract import GROUP, PLURAL, VERSION, WAKE_ANNOTATION, PoolKey, format_time

log = logging.getLogger(__name__)


class WakeSender(Protocol):
    """Delivers one wake signal; raises on failure."""

    async def __call__(self, pool: PoolKey, requested_at: datetime) -> None: ...


def wake_patch(requested_at: datetime) -> dict[str, Any]:
    """The merge patch body for the InferencePool."""
    return {"metadata": {"annotations": {WAKE_ANNOTATION: format_time(requested_at)}}}


class KubernetesWakeSender:
    """Merge-patches the InferencePool through a kubernetes_asyncio ApiClient."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes_asyncio import client

        self._api = client.CustomObjectsApi(api_client)

    async def __call__(self, pool: PoolKey, requested_at: datetime) -> None:
        await self._api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            pool.namespace,
            PLURAL,
            pool.name,
            wake_patch(requested_at),
            _content_type="application/merge-patch+json",  # type: ignore[call-arg]
        )


async def log_wake_sender(pool: PoolKey, requested_at: datetime) -> None:
    """For runs without Kubernetes (``--endpoints-file``): only log the signal."""
    log.info(
        "wake requested for pool %s at %s (no Kubernetes: not sent)",
        pool,
        format_time(requested_at),
    )


class Waker:
    """Rate-limited, fire-and-forget wake signals, one in flight per pool."""

    def __init__(
        self,
        send: WakeSender | Callable[[PoolKey, datetime], Awaitable[None]],
        *,
        is_held: Callable[[PoolKey], bool],
        metrics: ActivatorMetrics,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._is_held = is_held
        self._metrics = metrics
        self._min_interval = min_interval
        self._clock = clock
        self._last_attempt: dict[PoolKey, float] = {}
        self._tasks: dict[PoolKey, asyncio.Task[None]] = {}

    def request(self, pool: PoolKey) -> None:
        """A request for ``pool`` is being held: signal now unless signalled < interval ago."""
        if pool in self._tasks:
            return
        last = self._last_attempt.get(pool)
        if last is not None and self._clock() - last < self._min_interval:
            return
        self._last_attempt[pool] = self._clock()
        task = asyncio.get_running_loop().create_task(self._deliver(pool))
        self._tasks[pool] = task
        task.add_done_callback(lambda _t: self._tasks.pop(pool, None))

    async def _deliver(self, pool: PoolKey) -> None:
        while True:
            try:
                await self._send(pool, datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._metrics.wakes.labels(pool.namespace, pool.name, "error").inc()
                log.warning("wake signal for pool %s failed: %s", pool, _short(error))
                await asyncio.sleep(self._min_interval)
                if not self._is_held(pool):
                    return
                self._last_attempt[pool] = self._clock()
                continue
            self._metrics.wakes.labels(pool.namespace, pool.name, "sent").inc()
            log.info("wake signal sent for pool %s", pool)
            return

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _short(error: Exception) -> str:
    """One line for an ApiException (status and reason), else the exception itself."""
    status, reason = getattr(error, "status", None), getattr(error, "reason", None)
    if status is not None:
        return f"HTTP {status} {reason or ''}".strip()
    return str(error) or type(error).__name__
