"""What a standby replica serves: `/healthz` on the health port, saying it is a standby.

A standby is healthy (it is doing its job: waiting), so it answers 200; the body says who leads.
Once it becomes the leader this server closes and kopf's own liveness endpoint takes the port.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web


def standby_report(identity: str, leader: str | None) -> dict[str, str | None]:
    """The body of a standby's /healthz."""
    return {"leaderElection": "standby", "identity": identity, "leader": leader}


@asynccontextmanager
async def standby_health(
    port: int, identity: str, leader: Callable[[], str | None], address: str = "0.0.0.0"
) -> AsyncIterator[None]:
    """Serve a standby's /healthz on `port` (0: none) while the context is open."""
    if not port:
        yield
        return

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(standby_report(identity, leader())), content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, address, port).start()
        yield
    finally:
        await runner.cleanup()
