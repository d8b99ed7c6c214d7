"""The refresh loop: pools marked by pod/Deployment events, and every pool once per interval.

One task for the whole operator instead of a kopf daemon or timer per pool: kopf puts a
finalizer on every object that has a daemon or a timer, which would make deleting a pool
depend on the operator running. Marks are a set, so a burst of events for one pool refreshes
it once; the per-pool lock in the Reconciler keeps this loop and kopf's handlers from racing.

Ticks are spread: the interval is cut into `slices` and each pool is ticked in the slice its
name hashes to, so 1,000 pools make 1,000 small refreshes spread over the interval (bounded by
`workers` at a time) rather than one burst that stalls kopf's event processing and, when
something changed for all pools at once (a Prometheus outage), sends every write together.

Nothing runs before `ready` is set: the operator sets it once kopf has finished its initial
listings (kopf runs no non-index handler before that), so a tick never sees a pool whose
Deployment is not in the cache yet (it would re-apply it as "missing").
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable

from warmpool.contract import PoolKey

logger = logging.getLogger(__name__)

SyncFn = Callable[[PoolKey, str], Awaitable[object]]

#: Sub-ticks per interval (each pool is ticked in one of them).
DEFAULT_SLICES = 10


def tick_slice(key: PoolKey, slices: int) -> int:
    """The slice of the interval `key` is ticked in (stable across restarts)."""
    return zlib.crc32(f"{key[0]}/{key[1]}".encode()) % slices


class RefreshLoop:
    """Runs `sync(key, trigger)` for marked pools at once and for every pool once per
    `interval`, spread over `slices` sub-ticks."""

    def __init__(
        self,
        sync: SyncFn,
        pool_keys: Callable[[], Iterable[PoolKey]],
        *,
        interval: float,
        debounce: float,
        workers: int,
        slices: int = DEFAULT_SLICES,
        ready: asyncio.Event | None = None,
    ) -> None:
        self._sync = sync
        self._pool_keys = pool_keys
        self._interval = interval
        self._debounce = debounce
        self._workers = asyncio.Semaphore(workers)
        self._slices = max(1, slices)
        self._ready = ready
        self._dirty: set[PoolKey] = set()
        self._retry: set[PoolKey] = set()
        self._wakeup = asyncio.Event()

    def mark(self, key: PoolKey) -> None:
        """Ask for a refresh of `key` soon."""
        self._dirty.add(key)
        self._wakeup.set()

    async def run(self) -> None:
        if self._ready is not None:
            await self._ready.wait()
        step = self._interval / self._slices
        current = 0
        next_tick = time.monotonic() + step
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
                next_tick = time.monotonic() + step
                candidates = set(self._pool_keys()) | self._retry
                due = {k for k in candidates if tick_slice(k, self._slices) == current}
                self._retry -= due
                current = (current + 1) % self._slices
                keys, trigger = due | self._dirty, "tick"
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
        """Retry at the pool's next tick, an interval later (not at once, nor at the next
        slice: a failing pool must not spin the loop)."""
        self._retry.add(key)
