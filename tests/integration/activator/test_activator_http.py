"""The activator's HTTP side against a real aiohttp upstream, in-process.

The endpoint source is the test, driving the EndpointTable as the EndpointSlice watch would;
the wake signal is recorded instead of patched (tests/e2e sends the real patch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import aiohttp
from activator_harness import HOST, POOL, EchoUpstream, eventually, free_port

from conftest import MakeActivator
from warmpool.activator.endpoints import Endpoint
from warmpool.activator.routing import PoolKey

CLIENTS = 200


def sample(activator: object, name: str, **labels: str) -> float:
    registry = activator.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels) or 0.0


async def test_requests_held_at_zero_are_each_forwarded_once_when_warm(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, wake = await make_activator()
    url = f"http://127.0.0.1:{activator.bound.http}/v2/models/echo/infer"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(i: int) -> tuple[int, dict[str, object]]:
            body = f"request {i}".encode()
            async with session.post(
                url, data=body, headers={"Host": HOST, "X-Request-Id": str(i)}
            ) as response:
                return response.status, await response.json()

        tasks = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
        await eventually(lambda: activator.hold.held(POOL) == CLIENTS, what="all clients held")
        assert upstream.served == []
        assert (
            sample(activator, "warmpool_activator_held_requests", namespace="ml", pool="llama")
            == CLIENTS
        )
        # Woken at the first held request, then at most once a second.
        assert wake.calls and wake.calls[0][0] == POOL
        gaps = [b[2] - a[2] for a, b in zip(wake.calls, wake.calls[1:], strict=False)]
        assert all(gap >= 0.99 for gap in gaps), gaps

        activator.table.set_pool(POOL, [Endpoint("127.0.0.1", upstream.port, None)])
        results = await asyncio.gather(*tasks)

    for i, (status, body) in enumerate(results):
        assert status == 200
        assert body["id"] == str(i)
        assert body["sha256"] == hashlib.sha256(f"request {i}".encode()).hexdigest()
    assert sorted(upstream.served, key=int) == [str(i) for i in range(CLIENTS)]
    assert (
        sample(
            activator,
            "warmpool_activator_requests_total",
            namespace="ml",
            pool="llama",
            outcome="forwarded",
        )
        == CLIENTS
    )
    assert activator.hold.held(POOL) == 0


async def test_bound_answers_503_with_retry_after(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, _ = await make_activator(queue_size=3)
    url = f"http://127.0.0.1:{activator.bound.http}/v2/health/ready"
    async with aiohttp.ClientSession() as session:
        held = [
            asyncio.create_task(session.get(url, headers={"Host": HOST, "X-Request-Id": str(i)}))
            for i in range(3)
        ]
        await eventually(lambda: activator.hold.held(POOL) == 3, what="3 held")
        async with session.get(url, headers={"Host": HOST}) as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "5"
            assert "already held" in (await refused.json())["error"]
        activator.table.set_pool(POOL, [Endpoint("127.0.0.1", upstream.port, None)])
        for response in await asyncio.gather(*held):
            assert response.status == 200
            response.release()
    assert sorted(upstream.served) == ["0", "1", "2"]
    assert (
        sample(
            activator,
            "warmpool_activator_requests_total",
            namespace="ml",
            pool="llama",
            outcome="rejected_full",
        )
        == 1
    )


async def test_hold_timeout_answers_504_and_sends_nothing(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, _ = await make_activator(hold_timeout=0.2)
    url = f"http://127.0.0.1:{activator.bound.http}/v2/models/echo/infer"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"x", headers={"Host": HOST}) as response,
    ):
        assert response.status == 504
        assert "no warm replica of pool ml/llama" in (await response.json())["error"]
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", upstream.port, None)])
    assert upstream.served == []


async def test_warm_pool_streams_bodies_and_keeps_end_to_end_headers(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, wake = await make_activator()
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", upstream.port, None)])
    base = f"http://127.0.0.1:{activator.bound.http}"
    payload = os.urandom(8 * 1024 * 1024 + 17)

    async def body() -> object:
        for start in range(0, len(payload), 1 << 20):
            yield payload[start : start + (1 << 20)]

    async with aiohttp.ClientSession() as session:
        async with session.put(
            base + "/v2/models/m%2Fx/infer?binary=1&a=%20",
            data=body(),  # chunked: no Content-Length
            headers={
                "Host": HOST,
                "Inference-Header-Content-Length": "123",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "secret",
            },
        ) as response:
            assert response.status == 200
            echoed = await response.json()
            assert response.headers["X-Upstream"] == "echo"
        async with session.get(base + "/stream/1000", headers={"Host": HOST}) as streamed:
            text = await streamed.text()
    assert echoed["method"] == "PUT"
    assert echoed["path"] == "/v2/models/m%2Fx/infer?binary=1&a=%20"
    assert echoed["size"] == len(payload)
    assert echoed["sha256"] == hashlib.sha256(payload).hexdigest()
    assert echoed["headers"]["inference-header-content-length"] == "123"
    assert echoed["headers"]["host"] == HOST
    assert "x-hop" not in echoed["headers"]
    assert echoed["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert text == "".join(f"chunk {i}\n" for i in range(1000))
    assert wake.calls == []  # warm: nothing held, nothing woken


async def test_unroutable_hosts_get_421_with_a_reason(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, wake = await make_activator()
    activator.table.set_pool(PoolKey("dev", "llama"), [Endpoint("127.0.0.1", upstream.port, None)])
    url = f"http://127.0.0.1:{activator.bound.http}/v2"
    async with aiohttp.ClientSession() as session:
        for host, reason in (
            ("llama", "ambiguous"),
            ("gpt.ml", "no InferencePool ml/gpt"),
            ("10.1.2.3:8000", "not '<pool>.<namespace>"),
        ):
            async with session.get(url, headers={"Host": host}) as response:
                assert response.status == 421
                assert reason in (await response.json())["error"]
        headers = {"Host": "llama", "X-Warmpool-Pool": "dev/llama", "X-Request-Id": "explicit"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 200
    assert upstream.served == ["explicit"]
    assert wake.calls == []


async def test_client_that_gives_up_leaves_the_queue(make_activator: MakeActivator) -> None:
    activator, _ = await make_activator()
    url = f"http://127.0.0.1:{activator.bound.http}/v2"
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(url, headers={"Host": HOST}))
        await eventually(lambda: activator.hold.held(POOL) == 1, what="held")
        task.cancel()
    await eventually(lambda: activator.hold.held(POOL) == 0, what="client left the queue")


async def test_shutdown_answers_held_requests_instead_of_hanging(
    make_activator: MakeActivator,
) -> None:
    activator, _ = await make_activator()
    url = f"http://127.0.0.1:{activator.bound.http}/v2"
    async with aiohttp.ClientSession() as session:
        held = [asyncio.create_task(session.get(url, headers={"Host": HOST})) for _ in range(5)]
        await eventually(lambda: activator.hold.held(POOL) == 5, what="5 held")
        await activator.stop()
        for response in await asyncio.gather(*held):
            assert response.status == 503
            assert "shutting down" in json.loads(await response.text())["error"]


async def test_endpoint_that_refuses_connections_is_retried_elsewhere(
    make_activator: MakeActivator, upstream: EchoUpstream
) -> None:
    activator, _ = await make_activator()
    dead = Endpoint("127.0.0.1", free_port(), None)  # listed, but nothing listens: a dead pod
    activator.table.set_pool(POOL, [dead, Endpoint("127.0.0.1", upstream.port, None)])
    url = f"http://127.0.0.1:{activator.bound.http}/v2/models/echo/infer"
    async with aiohttp.ClientSession() as session:
        for i in range(6):
            headers = {"Host": HOST, "X-Request-Id": str(i)}
            async with session.post(url, data=b"x", headers=headers) as response:
                assert response.status == 200
    assert upstream.served == [str(i) for i in range(6)]

    activator.table.set_pool(POOL, [dead])
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=b"x", headers={"Host": HOST}) as response,
    ):
        assert response.status == 502
        assert "no replica of pool ml/llama reachable" in (await response.json())["error"]
    assert (
        sample(
            activator,
            "warmpool_activator_requests_total",
            namespace="ml",
            pool="llama",
            outcome="upstream_error",
        )
        == 1
    )
