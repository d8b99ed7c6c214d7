"""The activator as a real process: SIGTERM and SIGKILL with requests held.

A client of a held request must get an error either way, never hang: SIGTERM answers
503 / UNAVAILABLE; SIGKILL leaves only the kernel's connection reset, which clients see.
The endpoint source is ``--endpoints-file`` (no apiserver in this tier).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from activator_harness import HOST, ActivatorProcess, EchoUpstream, eventually, held_requests


@pytest.fixture
async def activator_process(tmp_path: Path) -> AsyncIterator[ActivatorProcess]:
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"ml/llama": []}))
    process = ActivatorProcess(endpoints)
    await process.start()
    yield process
    await process.stop()


async def hold_some(
    process: ActivatorProcess, session: aiohttp.ClientSession, channel: grpc.aio.Channel
) -> tuple[list[asyncio.Future[aiohttp.ClientResponse]], list[asyncio.Future[bytes]]]:
    url = f"http://127.0.0.1:{process.http_port}/v2/models/m/infer"
    http = [
        asyncio.ensure_future(session.post(url, data=b"{}", headers={"Host": HOST}))
        for _ in range(5)
    ]
    unary = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    calls = [asyncio.ensure_future(unary(b"", timeout=120)) for _ in range(2)]

    async def all_held() -> bool:
        return held_requests(await process.metrics()) == 7

    await eventually(all_held, what="7 requests held")
    return http, calls


def grpc_channel(process: ActivatorProcess) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{process.grpc_port}", options=[("grpc.default_authority", "llama.ml:8001")]
    )


async def test_sigterm_answers_held_requests(activator_process: ActivatorProcess) -> None:
    async with aiohttp.ClientSession() as session, grpc_channel(activator_process) as channel:
        http, calls = await hold_some(activator_process, session, channel)
        assert activator_process.proc is not None
        activator_process.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            responses = await asyncio.gather(*http)
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert await activator_process.proc.wait() == 0
    for response in responses:
        assert response.status == 503
        assert "shutting down" in (await response.json())["error"]
    for result in results:
        assert isinstance(result, grpc.aio.AioRpcError)
        assert result.code() == grpc.StatusCode.UNAVAILABLE


async def test_sigkill_leaves_clients_an_error_not_a_hang(
    activator_process: ActivatorProcess,
) -> None:
    async with aiohttp.ClientSession() as session, grpc_channel(activator_process) as channel:
        http, calls = await hold_some(activator_process, session, channel)
        assert activator_process.proc is not None
        activator_process.proc.kill()
        async with asyncio.timeout(60):
            responses = await asyncio.gather(*http, return_exceptions=True)
            results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, aiohttp.ClientError) for r in responses), responses
    for result in results:
        assert isinstance(result, grpc.aio.AioRpcError)
        assert result.code() == grpc.StatusCode.UNAVAILABLE


async def test_endpoints_file_release(
    activator_process: ActivatorProcess, upstream: EchoUpstream
) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{activator_process.http_port}/v2/models/m/infer"
        task = asyncio.ensure_future(
            session.post(url, data=b"{}", headers={"Host": HOST, "X-Request-Id": "1"})
        )

        async def held() -> bool:
            return held_requests(await activator_process.metrics()) == 1

        await eventually(held, what="held")
        activator_process.endpoints_file.write_text(
            json.dumps({"ml/llama": [{"ip": "127.0.0.1", "http": upstream.port}]})
        )
        async with asyncio.timeout(60):
            response = await task
        assert response.status == 200
        assert (await response.json())["id"] == "1"
    assert upstream.served == ["1"]
