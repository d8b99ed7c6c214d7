"""The refresh loop: pools marked by pod/Deployment events, and every pool on each tick.

One task for the whole operator instead of a kopf daemon or timer per pool: kopf puts a
finalizer on every object that has a daemon or a timer, which would make deleting a pool
depend on the operator running. Marks are a set, so a burst of events for one pool refreshes
it once; the per-pool lock in the Reconciler keeps this loop and kopf's handlers from racing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from warmpool.controller.cache import PoolKey

logger = logging.getLogger(__name__)

SyncFn = Callable[[PoolKey, str], Awaitable[object]]


class RefreshLoop:
    """Runs `sync(key, trigger)` for marked pools at once and for all pools every `interval`."""

    def __init__(
        self,
        sync: SyncFn,
        pool_keys: Callable[[], Iterable[PoolKey]],
        *,
        interval: float,
        debounce: float,
        workers: int,
    ) -> None:
        self._sync = sync
        self._pool_keys = pool_keys
        self._interval = interval
        self._debounce = debounce
        self._workers = asyncio.Semaphore(workers)
        self._dirty: set[PoolKey] = set()
        self._wakeup = asyncio.Event()

    def mark(self, key: PoolKey) -> None:
        """Ask for a refresh of `key` soon."""
        self._dirty.add(key)
        self._wakeup.set()

    async def run(self) -> None:
        next_tick = time.monotonic() + self._interval
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
                # Let the rest of a burst of events (a pod's status changes come in runs) land.
                await asyncio.sleep(self._debounce)
            except TimeoutError:
                pass
            self._wakeup.clear()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._interval
                keys, trigger = set(self._pool_keys()) | self._dirty, "tick"
            else:
                keys, trigger = set(self._dirty), "observe"
            self._dirty.clear()
            if keys:
                await asyncio.gather(*(self._one(key, trigger) for key in sorted(keys)))

    async def _one(self, key: PoolKey, trigger: str) -> None:
        async with self._workers:
            try:
                await self._sync(key, trigger)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one pool's failure must not stop the others' refreshes
                logger.warning("refresh of %s/%s failed: %s", key[0], key[1], error)
                self.mark_later(key)

    def mark_later(self, key: PoolKey) -> None:
        """Retry at the next tick (not at once: a failing pool must not spin the loop)."""
        self._dirty.add(key)
