"""The activator's gRPC side (generic h2c proxy) against a real grpcio upstream server.

grpc.aio on both ends: the client dials the activator with the pool's name as :authority,
exactly as a client of the pool's Service would; the upstream is a generic echo service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from activator_harness import POOL, eventually, free_port

from conftest import MakeActivator
from warmpool.activator.endpoints import Endpoint

AUTHORITY = "llama.ml:8001"


class EchoService(grpc.GenericRpcHandler):
    """/test.Echo/Unary answers b"echo:" + request; /test.Echo/Chat echoes each message."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == "/test.Echo/Unary":
            return grpc.unary_unary_rpc_method_handler(self._unary)
        if details.method == "/test.Echo/Chat":
            return grpc.stream_stream_rpc_method_handler(self._chat)
        return None

    async def _unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls.append(request)
        await context.send_initial_metadata((("x-upstream", "echo"),))
        context.set_trailing_metadata((("x-served", request.decode()),))
        return b"echo:" + request

    async def _chat(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for message in requests:
            self.calls.append(message)
            yield message[::-1]


@pytest.fixture
async def echo_grpc() -> AsyncIterator[tuple[EchoService, int]]:
    service = EchoService()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, port
    await server.stop(None)


def channel(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.default_authority", AUTHORITY)]
    )


async def test_unary_calls_held_at_zero_are_forwarded_once(
    make_activator: MakeActivator, echo_grpc: tuple[EchoService, int]
) -> None:
    service, upstream_port = echo_grpc
    activator, wake = await make_activator()
    async with channel(activator.bound.grpc) as ch:
        unary = ch.unary_unary("/test.Echo/Unary")
        calls = [unary(f"call {i}".encode(), timeout=60) for i in range(100)]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await eventually(lambda: activator.hold.held(POOL) == 100, what="100 calls held")
        assert wake.calls and service.calls == []
        activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
        answers = await asyncio.gather(*tasks)
        assert answers == [f"echo:call {i}".encode() for i in range(100)]
        assert (await calls[0].initial_metadata())["x-upstream"] == "echo"
        assert (await calls[7].trailing_metadata())["x-served"] == "call 7"
    assert sorted(service.calls) == sorted(f"call {i}".encode() for i in range(100))
    # The replica leaves the pool: its upstream connection is closed (a terminating Triton
    # waits for open connections before it exits).
    assert activator._grpc.upstream_connections() == 1
    activator.table.set_pool(POOL, [])
    await eventually(lambda: activator._grpc.upstream_connections() == 0, what="drained")


async def test_bidirectional_stream_and_large_messages(
    make_activator: MakeActivator, echo_grpc: tuple[EchoService, int]
) -> None:
    _, upstream_port = echo_grpc
    activator, _ = await make_activator()
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB: crosses every flow-control window
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{activator.bound.grpc}",
        options=[
            ("grpc.default_authority", AUTHORITY),
            ("grpc.max_receive_message_length", 16 << 20),
            ("grpc.max_send_message_length", 16 << 20),
        ],
    ) as ch:
        chat = ch.stream_stream("/test.Echo/Chat")

        async def messages() -> AsyncIterator[bytes]:
            for message in (b"one", big, b"three"):
                yield message

        replies = [reply async for reply in chat(messages(), timeout=60)]
    assert replies == [b"eno", big[::-1], b"eerht"]


async def test_refusals_are_grpc_statuses(make_activator: MakeActivator) -> None:
    activator, _ = await make_activator(queue_size=1, hold_timeout=0.3)
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{activator.bound.grpc}",
        options=[("grpc.default_authority", "gpt.ml:8001")],
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await ch.unary_unary("/test.Echo/Unary")(b"x", timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no InferencePool ml/gpt" in (unknown.value.details() or "")
    async with channel(activator.bound.grpc) as ch:
        unary = ch.unary_unary("/test.Echo/Unary")
        first = asyncio.ensure_future(unary(b"held", timeout=10))
        await eventually(lambda: activator.hold.held(POOL) == 1, what="held")
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await unary(b"over the bound", timeout=10)
        assert full.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "already held" in (full.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as timed_out:
            await first
        assert timed_out.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "no warm replica of pool ml/llama" in (timed_out.value.details() or "")


async def test_client_deadline_removes_the_call_from_the_queue(
    make_activator: MakeActivator,
) -> None:
    activator, _ = await make_activator()
    async with channel(activator.bound.grpc) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ch.unary_unary("/test.Echo/Unary")(b"x", timeout=0.5)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await eventually(lambda: activator.hold.held(POOL) == 0, what="queue emptied")


async def test_shutdown_fails_held_calls(make_activator: MakeActivator) -> None:
    activator, _ = await make_activator()
    async with channel(activator.bound.grpc) as ch:
        unary = ch.unary_unary("/test.Echo/Unary")
        held = [asyncio.ensure_future(unary(b"x", timeout=30)) for _ in range(3)]
        await eventually(lambda: activator.hold.held(POOL) == 3, what="3 held")
        await activator.stop()
        for result in await asyncio.gather(*held, return_exceptions=True):
            assert isinstance(result, grpc.aio.AioRpcError)
            assert result.code() == grpc.StatusCode.UNAVAILABLE


async def test_endpoint_that_refuses_connections_is_retried_elsewhere(
    make_activator: MakeActivator, echo_grpc: tuple[EchoService, int]
) -> None:
    service, upstream_port = echo_grpc
    activator, _ = await make_activator()
    dead = Endpoint("127.0.0.1", None, free_port())
    activator.table.set_pool(POOL, [dead, Endpoint("127.0.0.1", None, upstream_port)])
    async with channel(activator.bound.grpc) as ch:
        unary = ch.unary_unary("/test.Echo/Unary")
        for i in range(6):
            assert await unary(f"{i}".encode(), timeout=30) == f"echo:{i}".encode()
        activator.table.set_pool(POOL, [dead])
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await unary(b"x", timeout=30)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot connect" in (error.value.details() or "")
    assert len(service.calls) == 6
