"""Shared pieces of the activator's integration tests: a real activator (in-process or as a
subprocess), real upstream servers, and a recorder standing in for the wake patch.

The endpoint source here is the test itself, driving the activator's EndpointTable as the
EndpointSlice watch would (no apiserver in this tier; tests/e2e covers the real watch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiohttp import web

from warmpool.activator.routing import PoolKey

POOL = PoolKey("ml", "llama")
HOST = "llama.ml.svc.cluster.local:8000"


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 30.0, what: str = ""
) -> None:
    """Wait until ``predicate`` holds, polling; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class WakeRecorder:
    """Stands in for the InferencePool patch (the e2e tier sends the real one)."""

    calls: list[tuple[PoolKey, datetime, float]] = field(default_factory=list)

    async def __call__(self, pool: PoolKey, at: datetime) -> None:
        self.calls.append((pool, at, time.monotonic()))


@dataclass
class EchoUpstream:
    """A real aiohttp server standing in for Triton's HTTP port; counts what it served."""

    served: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> int:
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/stream/{n}", self._stream)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _echo(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
        request_id = request.headers.get("X-Request-Id", "")
        self.served.append(request_id)
        body = {
            "method": request.method,
            "path": request.raw_path,
            "id": request_id,
            "size": size,
            "sha256": digest.hexdigest(),
            "headers": {k.lower(): v for k, v in request.headers.items()},
        }
        return web.Response(
            text=json.dumps(body),
            content_type="application/json",
            headers={"X-Upstream": "echo", "Connection": "keep-alive"},
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(int(request.match_info["n"])):
            await response.write(f"chunk {i}\n".encode())
        await response.write_eof()
        return response


def free_port() -> int:
    """A free loopback port (for a subprocess, which must be told its port)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def held_requests(metrics_text: str, namespace: str = "ml", pool: str = "llama") -> float:
    """``warmpool_activator_held_requests`` for one pool, from a /metrics page."""
    prefix = f'warmpool_activator_held_requests{{namespace="{namespace}",pool="{pool}"}} '
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


class ActivatorProcess:
    """``python -m warmpool.activator --endpoints-file ...`` as a real separate process."""

    def __init__(self, endpoints_file: Path, *extra: str) -> None:
        self.endpoints_file = endpoints_file
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.extra = extra
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        import sys

        import aiohttp

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "warmpool.activator",
            "--endpoints-file", str(self.endpoints_file),
            "--bind", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port),
            *self.extra,
        )  # fmt: skip

        async def up() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"activator exited with {self.proc.returncode}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{self.metrics_port}/healthz") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, within=60, what="activator process serving")

    async def metrics(self) -> str:
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
        ):
            return await response.text()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
