"""Liveness: kopf's own endpoint (`/healthz` on --health-port), plus a probe of the refresh loop.

kopf answers /healthz with the results of its probe handlers, and with an error when the
operator's watches are not running; the probe below adds the refresh loop, whose death would
otherwise leave pools un-refreshed behind a healthy-looking endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


def liveness_endpoint(port: int, address: str = "0.0.0.0") -> str | None:
    """The URL kopf serves its liveness probe on; None when the port is 0 (disabled)."""
    return f"http://{address}:{port}/healthz" if port else None


def loop_health(tasks: Sequence[asyncio.Task[None]]) -> str:
    """`running`, or raise when a background task ended (kopf then answers 500)."""
    for task in tasks:
        if task.done():
            error = None if task.cancelled() else task.exception()
            raise RuntimeError(f"background task {task.get_name()} ended: {error!r}")
    return "running"
