"""`warmpool operator`: parse the settings, configure logging, run kopf embedded.

kopf is started with `kopf.operator(...)` and an explicit registry (not `kopf run module.py`), so
the operator is one console script whose flags are ours; the settings reach the handlers through
kopf's memo. With `--leader-elect` kopf starts only once this replica holds the Lease
(controller/ha/election.py).
"""

from __future__ import annotations

import asyncio
import contextlib

import kopf

from warmpool.controller.ha.election import run_elected
from warmpool.controller.handlers import register
from warmpool.controller.health import liveness_endpoint
from warmpool.controller.logs import configure_logging
from warmpool.controller.settings import OperatorSettings, parse_settings


def watched_namespaces(settings: OperatorSettings) -> list[str]:
    namespaces = list(settings.namespaces)
    if namespaces and settings.activator and settings.activator.namespace not in namespaces:
        # The activator's EndpointSlices are watched like everything else: in these namespaces.
        namespaces.append(settings.activator.namespace)
    return namespaces


async def run_kopf(
    settings: OperatorSettings,
    registry: kopf.OperatorRegistry,
    stop_flag: asyncio.Event | None = None,
) -> None:
    """kopf with our registry and the settings in its memo. Never kopf's peering: HA is the
    Lease election."""
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=watched_namespaces(settings),
        liveness_endpoint=liveness_endpoint(settings.health_port),
        memo=kopf.Memo(settings=settings),
        stop_flag=stop_flag,
    )


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    configure_logging(settings)
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    if settings.leader_elect:

        async def lead(stop: asyncio.Event) -> None:
            await run_kopf(settings, registry, stop_flag=stop)

        return asyncio.run(run_elected(settings, registry, lead))
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(run_kopf(settings, registry))
    return 0
