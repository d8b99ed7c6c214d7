"""Fixtures for the activator's integration tests (see harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from activator_harness import POOL, EchoUpstream, WakeRecorder

from warmpool.activator.endpoints import EndpointTable
from warmpool.activator.server import Activator, ActivatorConfig

MakeActivator = Callable[..., Awaitable[tuple[Activator, WakeRecorder]]]


@pytest.fixture
async def upstream() -> AsyncIterator[EchoUpstream]:
    server = EchoUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_activator() -> AsyncIterator[MakeActivator]:
    """Start a real activator on free loopback ports with POOL known and at zero."""
    started: list[Activator] = []

    async def make(**overrides: Any) -> tuple[Activator, WakeRecorder]:
        table = EndpointTable()
        table.set_pool(POOL, [])
        wake = WakeRecorder()
        settings: dict[str, Any] = {
            "bind": "127.0.0.1",
            "http_port": 0,
            "grpc_port": 0,
            "metrics_port": 0,
            "shutdown_grace": 5.0,
        }
        settings.update(overrides)
        activator = Activator(ActivatorConfig(**settings), table, wake)
        await activator.start()
        started.append(activator)
        return activator, wake

    yield make
    for activator in started:
        await activator.stop()
