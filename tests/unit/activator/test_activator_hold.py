"""The hold queue: bound, per-request timeout, release order, shutdown, wake callback."""

from __future__ import annotations

import asyncio

import pytest

from warmpool.activator.endpoints import Endpoint, EndpointTable
from warmpool.activator.hold import HoldQueue, HoldTimedOut, QueueFull, ShuttingDown
from warmpool.activator.metrics import ActivatorMetrics
from warmpool.activator.routing import PoolKey

POOL = PoolKey("ml", "llama")
OTHER = PoolKey("ml", "bert")
EP = Endpoint("10.0.0.1", 8000, 8001)


def make_queue(
    capacity: int = 10, timeout: float = 60.0
) -> tuple[HoldQueue, EndpointTable, list[PoolKey], ActivatorMetrics]:
    table = EndpointTable()
    table.set_pool(POOL, [])
    table.set_pool(OTHER, [])
    woken: list[PoolKey] = []
    metrics = ActivatorMetrics()
    queue = HoldQueue(
        table, capacity=capacity, timeout=timeout, on_hold=woken.append, metrics=metrics
    )
    return queue, table, woken, metrics


async def wait_held(queue: HoldQueue, pool: PoolKey, count: int) -> None:
    """Let the event loop run (bounded) until ``count`` requests of ``pool`` are held."""
    for _ in range(1000):
        if queue.held(pool) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{queue.held(pool)} held, expected {count}")


def held_gauge(metrics: ActivatorMetrics, pool: PoolKey) -> float:
    value = metrics.registry.get_sample_value(
        "warmpool_activator_held_requests", {"namespace": pool.namespace, "pool": pool.name}
    )
    return value or 0.0


async def test_warm_pool_is_not_held() -> None:
    queue, table, woken, _ = make_queue()
    table.set_pool(POOL, [EP])
    assert await queue.acquire(POOL) == EP
    assert woken == []


async def test_held_requests_are_released_in_arrival_order() -> None:
    queue, table, woken, metrics = make_queue()
    order: list[int] = []

    async def client(i: int) -> None:
        await queue.acquire(POOL)
        order.append(i)

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(client(i)))
        await wait_held(queue, POOL, i + 1)
    assert held_gauge(metrics, POOL) == 5
    assert woken == [POOL] * 5  # the waker rate-limits itself
    table.set_pool(POOL, [EP])
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert queue.held(POOL) == 0
    assert held_gauge(metrics, POOL) == 0


async def test_other_pools_endpoints_do_not_release() -> None:
    queue, table, _, _ = make_queue()
    task = asyncio.create_task(queue.acquire(POOL))
    await wait_held(queue, POOL, 1)
    table.set_pool(OTHER, [EP])
    await asyncio.sleep(0)
    assert not task.done()
    table.set_pool(POOL, [EP])
    assert await task == EP


async def test_bound_is_per_pool() -> None:
    queue, table, _, _ = make_queue(capacity=2)
    tasks = [asyncio.create_task(queue.acquire(POOL)) for _ in range(2)]
    await wait_held(queue, POOL, 2)
    with pytest.raises(QueueFull, match="2 requests are already held"):
        await queue.acquire(POOL)
    other = asyncio.create_task(queue.acquire(OTHER))
    await wait_held(queue, OTHER, 1)
    table.set_pool(POOL, [EP])
    table.set_pool(OTHER, [EP])
    assert await asyncio.gather(*tasks, other) == [EP, EP, EP]


async def test_each_request_times_out_on_its_own() -> None:
    queue, _, _, metrics = make_queue(timeout=0.05)
    with pytest.raises(HoldTimedOut, match=r"within 0\.05s"):
        await queue.acquire(POOL)
    assert queue.held(POOL) == 0
    assert held_gauge(metrics, POOL) == 0
    count = metrics.registry.get_sample_value(
        "warmpool_activator_hold_seconds_count", {"namespace": "ml", "pool": "llama"}
    )
    assert count == 1


async def test_cancelled_client_leaves_the_queue() -> None:
    queue, _, _, _ = make_queue()
    task = asyncio.create_task(queue.acquire(POOL))
    await wait_held(queue, POOL, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue.held(POOL) == 0


async def test_close_fails_every_held_request_and_refuses_new_ones() -> None:
    queue, _, _, _ = make_queue()
    tasks = [asyncio.create_task(queue.acquire(POOL)) for _ in range(3)]
    await wait_held(queue, POOL, 3)
    queue.close()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ShuttingDown) for r in results)
    with pytest.raises(ShuttingDown):
        await queue.acquire(POOL)


async def test_endpoint_that_vanishes_before_resume_keeps_request_held() -> None:
    queue, table, _, _ = make_queue()
    task = asyncio.create_task(queue.acquire(POOL))
    await wait_held(queue, POOL, 1)
    table.set_pool(POOL, [EP])
    table.set_pool(POOL, [])  # gone again before the waiter ran
    await wait_held(queue, POOL, 1)
    assert not task.done()
    table.set_pool(POOL, [EP])
    assert await task == EP
