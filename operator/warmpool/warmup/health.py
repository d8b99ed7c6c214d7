"""The sidecar's health endpoints (aiohttp).

* ``/healthz``: 200 while the program runs (its event loop answers). Use it for the native
  sidecar's ``startupProbe`` and ``livenessProbe``. It must NOT wait for warmth: the kubelet
  starts the model server container only after a native sidecar's startup probe succeeded, and
  the warm-up needs the server running.
* ``/readyz``: 200 once warm, 503 otherwise. Informational (the gate is the pod condition);
  do not make it the sidecar's readiness probe.
* ``/status``: JSON with the phase and the last outcome's condition message.
"""

from __future__ import annotations

from aiohttp import web

from warmpool.warmup.runner import GateState


def build_app(state: GateState) -> web.Application:
    """The aiohttp application serving ``state``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text=state.phase + "\n", status=200 if state.warm else 503)

    async def status(_: web.Request) -> web.Response:
        outcome = state.outcome
        return web.json_response(
            {
                "phase": state.phase,
                "reason": outcome.reason if outcome else None,
                "message": outcome.message() if outcome else None,
            }
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app


async def start(state: GateState, address: str, port: int) -> web.AppRunner:
    """Serve the endpoints on ``address:port``; the caller calls ``cleanup()`` on the runner."""
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
