"""Streams through the activator: SSE (HTTP) and gRPC server streams, held and proxied.

No buffering is shown by structure, not by clocks: the upstream produces chunk k+1 only after
the CLIENT has received chunk k (an event the client sets). A proxy that held chunks back --
until a buffer filled, or until the end of the stream -- would deadlock the exchange, and the
bounded wait fails naming the chunk that never arrived. The arrival and send times are recorded
too (printed, for the eye: they are a measurement, not an assertion).

Also: a stream with a pause longer than the hold timeout is not cut; a client that goes away
cancels the upstream call; a stream in flight survives its endpoint leaving the pool (a
scale-down decision) and the activator's own shutdown, within the grace period.

Upstreams are real servers (aiohttp, grpc.aio) on loopback standing in for Triton's
generate_stream and ModelStreamInfer; tests/integration/warmup covers real Triton streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from activator_harness import HOST, POOL, eventually
from aiohttp import web

from conftest import MakeActivator
from warmpool.activator.endpoints import Endpoint

CHUNKS = 8
AUTHORITY = "llama.ml:8001"
# Bounds a whole exchange; a buffering proxy deadlocks and hits it.
EXCHANGE_BOUND_S = 60.0


@dataclass
class Lockstep:
    """The shared state of one lock-step stream: chunk k+1 is produced only once the client
    has seen chunk k."""

    chunks: int = CHUNKS
    seen: list[asyncio.Event] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    upstream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    pause_after: int | None = None
    resume: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.seen = [asyncio.Event() for _ in range(self.chunks)]

    async def produce(self, send: object) -> AsyncIterator[int]:
        """Yield chunk numbers to send, waiting for the client between them."""
        self.started.set()
        try:
            for k in range(self.chunks):
                yield k
                self.sent_at.append(time.perf_counter())
                if self.pause_after == k:
                    await self.resume.wait()
                await self.seen[k].wait()
            self.finished.set()
        except asyncio.CancelledError:
            self.upstream_cancelled.set()
            raise

    def client_got(self, k: int) -> None:
        self.received_at.append(time.perf_counter())
        self.seen[k].set()

    def report(self, what: str) -> None:
        lag = [
            round((r - s) * 1000, 2) for s, r in zip(self.sent_at, self.received_at, strict=False)
        ]
        print(f"{what}: chunk send->client ms {lag}")


class SseUpstream:
    """A real aiohttp server streaming Server-Sent Events in lock step with the client."""

    def __init__(self) -> None:
        self.stream = Lockstep()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/models/llm/generate_stream", self._generate_stream)
        # handler_cancellation: a lost client connection cancels the handler, as Triton's
        # frontend cancels the request.
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _generate_stream(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for k in self.stream.produce(response):
            event = {"model_name": "llm", "text_output": f"tok{k}"}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response


@pytest.fixture
async def sse() -> AsyncIterator[SseUpstream]:
    server = SseUpstream()
    await server.start()
    yield server
    await server.stop()


async def _read_sse(response: aiohttp.ClientResponse, stream: Lockstep, stop_after: int) -> int:
    """Read events, telling the upstream of each; stop after ``stop_after`` events."""
    count = 0
    async for line in response.content:
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            assert event["text_output"] == f"tok{count}"
            stream.client_got(count)
            count += 1
            if count == stop_after:
                break
    return count


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v2/models/llm/generate_stream"


async def test_held_sse_stream_passes_chunk_by_chunk(
    make_activator: MakeActivator, sse: SseUpstream
) -> None:
    activator, _ = await make_activator()
    stream = sse.stream
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(
            session.post(
                _url(activator.bound.http), json={"text_input": "hi"}, headers={"Host": HOST}
            )
        )
        await eventually(lambda: activator.hold.held(POOL) == 1, what="stream held at zero")
        activator.table.set_pool(POOL, [Endpoint("127.0.0.1", sse.port, None)])
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            response = await request
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            got = await _read_sse(response, stream, CHUNKS)
            response.release()
    assert got == CHUNKS and stream.finished.is_set()
    stream.report("sse")


async def test_sse_pause_longer_than_the_hold_timeout_is_not_cut(
    make_activator: MakeActivator, sse: SseUpstream
) -> None:
    activator, _ = await make_activator(hold_timeout=0.5)
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", sse.port, None)])
    stream = sse.stream
    stream.pause_after = 2
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            _url(activator.bound.http), json={"text_input": "hi"}, headers={"Host": HOST}
        )
        reader = asyncio.ensure_future(_read_sse(response, stream, CHUNKS))
        await eventually(lambda: len(stream.received_at) == 3, what="three chunks")
        # The idle gap under test: three hold timeouts without a byte on the stream.
        await asyncio.sleep(1.5)
        stream.resume.set()
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            assert await reader == CHUNKS
        response.release()


async def test_sse_client_that_disconnects_cancels_upstream(
    make_activator: MakeActivator, sse: SseUpstream
) -> None:
    activator, _ = await make_activator()
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", sse.port, None)])
    stream = sse.stream
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            _url(activator.bound.http), json={"text_input": "hi"}, headers={"Host": HOST}
        )
        # The client reads two chunks, then goes away without reading on.
        stream.seen[1].clear()
        assert await _read_sse(response, stream, 2) == 2
        response.close()
    async with asyncio.timeout(EXCHANGE_BOUND_S):
        await stream.upstream_cancelled.wait()
    assert not stream.finished.is_set()


async def test_sse_stream_survives_scale_down_and_shutdown_within_grace(
    make_activator: MakeActivator, sse: SseUpstream
) -> None:
    activator, _ = await make_activator(shutdown_grace=30.0)
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", sse.port, None)])
    stream = sse.stream
    stream.pause_after = 2  # the stream is surely in flight while the pool changes
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            _url(activator.bound.http), json={"text_input": "hi"}, headers={"Host": HOST}
        )
        reader = asyncio.ensure_future(_read_sse(response, stream, CHUNKS))
        await eventually(lambda: len(stream.received_at) == 3, what="stream flowing")
        # The scaler removed the replica (its endpoint leaves the pool), then the activator
        # itself is told to stop: the stream in flight runs to its end.
        activator.table.set_pool(POOL, [])
        stopping = asyncio.ensure_future(activator.stop())
        await eventually(lambda: activator._stopped, what="stop began")
        assert not stopping.done() and not reader.done()
        stream.resume.set()
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            assert await reader == CHUNKS
            await stopping
        response.release()
    assert stream.finished.is_set()


# --- gRPC server streams ------------------------------------------------------------------


class TokenService(grpc.GenericRpcHandler):
    """/test.LLM/Generate: a server stream of lock-step token messages."""

    def __init__(self) -> None:
        self.stream = Lockstep()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == "/test.LLM/Generate":
            return grpc.unary_stream_rpc_method_handler(self._generate)
        return None

    async def _generate(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for k in self.stream.produce(context):
            yield f"tok{k}".encode()


@pytest.fixture
async def tokens() -> AsyncIterator[tuple[TokenService, int]]:
    service = TokenService()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield service, port
    await server.stop(None)


def _generate(port: int) -> tuple[grpc.aio.Channel, grpc.aio.UnaryStreamCall]:
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.default_authority", AUTHORITY)]
    )
    return channel, channel.unary_stream("/test.LLM/Generate")(b"hi")


async def _read_grpc(call: grpc.aio.UnaryStreamCall, stream: Lockstep, stop_after: int) -> int:
    count = 0
    async for message in call:
        assert message == f"tok{count}".encode()
        stream.client_got(count)
        count += 1
        if count == stop_after:
            break
    return count


async def test_held_grpc_server_stream_passes_message_by_message(
    make_activator: MakeActivator, tokens: tuple[TokenService, int]
) -> None:
    service, upstream_port = tokens
    activator, _ = await make_activator()
    assert activator.bound.grpc is not None
    channel, call = _generate(activator.bound.grpc)
    async with channel:
        reader = asyncio.ensure_future(_read_grpc(call, service.stream, CHUNKS))
        await eventually(lambda: activator.hold.held(POOL) == 1, what="call held at zero")
        activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            assert await reader == CHUNKS
            assert await call.code() == grpc.StatusCode.OK
    service.stream.report("grpc")


async def test_grpc_client_cancel_cancels_upstream(
    make_activator: MakeActivator, tokens: tuple[TokenService, int]
) -> None:
    service, upstream_port = tokens
    activator, _ = await make_activator()
    assert activator.bound.grpc is not None
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
    channel, call = _generate(activator.bound.grpc)
    async with channel:
        service.stream.seen[1].clear()
        assert await _read_grpc(call, service.stream, 2) == 2
        call.cancel()
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            await service.stream.upstream_cancelled.wait()
    assert not service.stream.finished.is_set()


async def test_grpc_stream_survives_its_endpoint_leaving_then_drains(
    make_activator: MakeActivator, tokens: tuple[TokenService, int]
) -> None:
    service, upstream_port = tokens
    activator, _ = await make_activator()
    assert activator.bound.grpc is not None
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
    service.stream.pause_after = 2  # the call is surely in flight while the pool changes
    channel, call = _generate(activator.bound.grpc)
    async with channel:
        reader = asyncio.ensure_future(_read_grpc(call, service.stream, CHUNKS))
        await eventually(lambda: len(service.stream.received_at) == 3, what="stream flowing")
        activator.table.set_pool(POOL, [])  # scale-down: the replica leaves the pool
        assert activator._grpc.upstream_connections() == 1  # kept for the call in flight
        service.stream.resume.set()
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            assert await reader == CHUNKS
            assert await call.code() == grpc.StatusCode.OK
    await eventually(lambda: activator._grpc.upstream_connections() == 0, what="drained")


async def test_grpc_pause_longer_than_the_hold_timeout_is_not_cut(
    make_activator: MakeActivator, tokens: tuple[TokenService, int]
) -> None:
    service, upstream_port = tokens
    activator, _ = await make_activator(hold_timeout=0.5)
    assert activator.bound.grpc is not None
    activator.table.set_pool(POOL, [Endpoint("127.0.0.1", None, upstream_port)])
    service.stream.pause_after = 2
    channel, call = _generate(activator.bound.grpc)
    async with channel:
        reader = asyncio.ensure_future(_read_grpc(call, service.stream, CHUNKS))
        await eventually(lambda: len(service.stream.received_at) == 3, what="three messages")
        # The idle gap under test: three hold timeouts without a message on the call.
        await asyncio.sleep(1.5)
        service.stream.resume.set()
        async with asyncio.timeout(EXCHANGE_BOUND_S):
            assert await reader == CHUNKS
            assert await call.code() == grpc.StatusCode.OK
