"""`warmpool operator --leader-elect`: stand by until this replica holds the Lease, then lead.

Until then only a standby /healthz runs (standby.py). A leader that cannot renew exits with
status 1 at once (Kubernetes restarts it as a standby); on SIGTERM it stops kopf, then releases
the Lease so that a standby takes over within one retry period instead of a whole lease
duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import kopf
from kubernetes_asyncio import client as k8s

from warmpool.controller.ha.leader import LeaderElector, Timings
from warmpool.controller.ha.lease_api import LeaseApi
from warmpool.controller.ha.standby import standby_health
from warmpool.controller.kube.client import load_configuration
from warmpool.controller.settings import OperatorSettings

logger = logging.getLogger(__name__)

#: Where a pod finds its own namespace (the ServiceAccount volume).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Exit status of a leader that lost its Lease (crash-only: Kubernetes restarts it).
EXIT_LEADERSHIP_LOST = 1

#: Runs kopf until the given stop flag is set.
RunKopf = Callable[[asyncio.Event], Awaitable[None]]


def election_identity(environ: Mapping[str, str]) -> str:
    """The pod's name (POD_NAME, from the downward API; else the host name) and a random
    suffix: a restarted container is a new candidate, never mistaken for its previous self."""
    pod = environ.get("POD_NAME") or socket.gethostname()
    return f"{pod}_{secrets.token_hex(4)}"


def election_namespace(settings: OperatorSettings, environ: Mapping[str, str]) -> str | None:
    """The Lease's namespace: the flag, else POD_NAMESPACE, else the ServiceAccount's."""
    if settings.leader_election.namespace:
        return settings.leader_election.namespace
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    return None


def _exit_when_lost(task: asyncio.Task[None]) -> None:
    """The renewal task ended while kopf runs: the Lease is lost (or renewing broke). Stop
    everything NOW, without kopf's graceful shutdown: a graceful stop would keep writing for
    seconds while a standby may already lead."""
    if task.cancelled():
        return
    logger.critical("leader election lost, exiting: %s", task.exception())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEADERSHIP_LOST)


async def _first(work: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Wait for `work` or `stop`; True when `work` finished first (its error is raised)."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if work.done():
        work.result()
        return True
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    return False


async def run_elected(
    settings: OperatorSettings, registry: kopf.OperatorRegistry, run_kopf: RunKopf
) -> int:
    """Stand by until this replica holds the Lease, then run kopf (`run_kopf(stop_flag)`) while
    renewing it."""
    election = settings.leader_election
    namespace = election_namespace(settings, os.environ)
    if namespace is None:
        logger.error("--leader-elect needs --leader-election-namespace (or POD_NAMESPACE)")
        return 2
    identity = election_identity(os.environ)
    api = k8s.ApiClient(await load_configuration(settings.kubeconfig))
    elector = LeaderElector(
        LeaseApi(api, namespace, election.lease_name),
        identity,
        Timings(
            lease_duration=election.lease_duration_seconds,
            renew_deadline=election.renew_deadline_seconds,
            retry_period=election.retry_period_seconds,
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # kopf installs its own handlers once it starts; `stop` is also its stop flag, so a
        # signal that lands in between still stops it.
        loop.add_signal_handler(signum, stop.set)
    logger.info(
        "leader election: candidate %s for Lease %s/%s", identity, namespace, election.lease_name
    )
    try:
        async with standby_health(settings.health_port, identity, lambda: elector.holder):
            acquiring = asyncio.create_task(elector.acquire(), name="warmpool-lease-acquire")
            if not await _first(acquiring, stop):
                await elector.release()  # in case the last attempt did acquire it
                logger.info("stopped while standing by")
                return 0
        return await _lead(registry, run_kopf, elector, stop)
    finally:
        await api.close()


async def _lead(
    registry: kopf.OperatorRegistry,
    run_kopf: RunKopf,
    elector: LeaderElector,
    stop: asyncio.Event,
) -> int:
    logger.info("leading as %s: starting the operator", elector.identity)

    @kopf.on.cleanup(id="leader-election-stop-flag", registry=registry)
    async def raise_stop_flag(**_: Any) -> None:
        # When a signal (not the flag) stops kopf, its waiter on our stop flag stays pending and
        # counts as a hung task: kopf would wait 5 s for it before returning, delaying the
        # release (and so the handover) by 5 s.
        stop.set()

    # Created before kopf starts, so kopf's shutdown (which cancels every task it spawned)
    # leaves the renewals running until the operator has stopped writing.
    holding = asyncio.create_task(elector.hold(), name="warmpool-lease-renew")
    holding.add_done_callback(_exit_when_lost)
    code = 0
    try:
        await run_kopf(stop)
    except Exception:
        logger.exception("the operator failed")
        code = 1
    finally:
        holding.remove_done_callback(_exit_when_lost)
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
    # kopf has stopped: nothing of ours writes any more. Hand over now, not a lease later.
    await elector.release()
    return code
