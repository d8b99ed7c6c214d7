"""`warmpool operator`: parse the settings, configure logging, run kopf embedded.

kopf is started with `kopf.operator(...)` and an explicit registry (not `kopf run module.py`), so
the operator is one console script whose flags are ours, and the handlers are registered with
the parsed settings rather than read from globals.

With `--leader-elect` kopf starts only once this replica holds the Lease (controller/leader.py);
until then only a standby /healthz runs. A leader that cannot renew exits with status 1 at once
(Kubernetes restarts it as a standby); on SIGTERM it stops kopf, then releases the Lease so that
a standby takes over within one retry period instead of a whole lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from kubernetes_asyncio import client as k8s

from warmpool.controller.client import load_configuration
from warmpool.controller.handlers import register
from warmpool.controller.health import liveness_endpoint
from warmpool.controller.leader import LeaderElector, Timings
from warmpool.controller.lease_api import LeaseApi
from warmpool.controller.settings import OperatorSettings, parse_settings
from warmpool.controller.standby import standby_health

logger = logging.getLogger(__name__)

#: Where a pod finds its own namespace (the ServiceAccount volume).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
#: Exit status of a leader that lost its Lease (crash-only: Kubernetes restarts it).
EXIT_LEADERSHIP_LOST = 1

#: Attributes every LogRecord has; anything else was passed through `extra=` and is kept.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, kopf's object context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if isinstance(value, str | int | float | bool):
                entry[key] = value
            elif key == "k8s_ref" and isinstance(value, dict):
                entry["object"] = {k: v for k, v in value.items() if isinstance(v, str)}
            # Other extras (kopf passes its whole settings object) are left out.
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: OperatorSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # kopf logs "Handler ... succeeded" at INFO for every watch event of every pod it caches;
    # the operator's own loggers say what was applied and why. kopf's warnings stay visible.
    if root.level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


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
    """kopf with our registry. Never kopf's peering: HA is the Lease election."""
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=watched_namespaces(settings),
        liveness_endpoint=liveness_endpoint(settings.health_port),
        stop_flag=stop_flag,
    )


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


async def run_elected(settings: OperatorSettings, registry: kopf.OperatorRegistry) -> int:
    """Stand by until this replica holds the Lease, then run kopf while renewing it."""
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
        return await _lead(settings, registry, elector, stop)
    finally:
        await api.close()


async def _lead(
    settings: OperatorSettings,
    registry: kopf.OperatorRegistry,
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
        await run_kopf(settings, registry, stop_flag=stop)
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


def main(argv: list[str]) -> int:
    settings = parse_settings(argv)
    configure_logging(settings)
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    if settings.leader_elect:
        return asyncio.run(run_elected(settings, registry))
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(run_kopf(settings, registry))
    return 0
