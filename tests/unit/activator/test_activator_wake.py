"""The wake signal: its patch, its timestamp format, its rate limit and its retry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from warmpool.activator.metrics import ActivatorMetrics
from warmpool.activator.routing import PoolKey
from warmpool.activator.wake import Waker, wake_patch
from warmpool.contract import WAKE_ANNOTATION

POOL = PoolKey("ml", "llama")


def test_the_patch_stamps_the_contract_time_format() -> None:
    moment = datetime(2026, 11, 27, 21, 30, 5, 123456, tzinfo=UTC)
    assert wake_patch(moment) == {
        "metadata": {"annotations": {WAKE_ANNOTATION: "2026-11-27T21:30:05.123Z"}}
    }


async def until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate`` for up to 5 s."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5s")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_rate_limited_per_pool() -> None:
    sent: list[PoolKey] = []

    async def send(pool: PoolKey, _at: datetime) -> None:
        sent.append(pool)

    clock = FakeClock()
    waker = Waker(send, is_held=lambda _p: True, metrics=ActivatorMetrics(), clock=clock)
    other = PoolKey("dev", "llama")
    for _ in range(10):
        waker.request(POOL)
        waker.request(other)
        await settle()
    assert sorted(sent) == sorted([POOL, other])
    clock.now += 1.0
    waker.request(POOL)
    await settle()
    assert sent.count(POOL) == 2


async def test_failed_signal_is_retried_while_requests_are_held() -> None:
    attempts: list[datetime] = []
    held = True

    async def send(_pool: PoolKey, at: datetime) -> None:
        attempts.append(at)
        if len(attempts) < 3:
            raise ConnectionError("apiserver unavailable")

    metrics = ActivatorMetrics()
    waker = Waker(send, is_held=lambda _p: held, metrics=metrics, min_interval=0.01)
    waker.request(POOL)
    await until(
        lambda: (
            metrics.registry.get_sample_value(
                "warmpool_activator_wake_signals_total",
                {"namespace": "ml", "pool": "llama", "result": "sent"},
            )
            == 1
        )
    )
    assert len(attempts) == 3
    await waker.close()


async def test_no_retry_once_nothing_is_held() -> None:
    attempts = 0

    async def send(_pool: PoolKey, _at: datetime) -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("apiserver unavailable")

    waker = Waker(send, is_held=lambda _p: False, metrics=ActivatorMetrics(), min_interval=0.01)
    waker.request(POOL)
    await until(lambda: not waker._tasks)
    assert attempts == 1
