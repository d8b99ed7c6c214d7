"""The operator's runtime: one client, one watch cache, one refresh loop, both reconcilers.

Built at kopf's startup, kept in kopf's memo, closed at cleanup. The pool reconciler and the
pre-pull reconciler share everything that talks to the API: writes of both go through the one
client (bounded in flight, counted in `warmpool_api_writes_total`), both read pools from the
one watch cache, and the one refresh loop ticks every pool for both (a pre-pull reconcile that
failed is retried at its pool's next tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import kopf

from warmpool.contract import PoolKey
from warmpool.controller.kube.apply import Applier
from warmpool.controller.kube.client import ApiError, KubeClient
from warmpool.controller.kube.events import EventRecorder
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.loop import RefreshLoop
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.reconcile import Reconciler
from warmpool.controller.prepull.reconcile import PrepullReconciler
from warmpool.controller.settings import OperatorSettings
from warmpool.scaling.service import Scaler

logger = logging.getLogger(__name__)

#: Where kopf keeps the last spec it handled (its diff-base).
DIFF_BASE_FIELD = "status.kopf.last-handled-configuration"


@dataclass
class Runtime:
    """What the handlers share."""

    settings: OperatorSettings
    client: KubeClient
    cache: WatchCache
    applier: Applier
    metrics: OperatorMetrics
    reconciler: Reconciler
    prepull: PrepullReconciler
    loop: RefreshLoop
    indexed: asyncio.Event
    """Set by the first non-index handler: kopf runs none before its initial listings (and the
    index primers) are through, so from then on the cache holds the whole cluster."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def refresh(self, key: PoolKey, trigger: str) -> None:
        """The refresh loop's work for one pool: its sync, and a failed pre-pull's retry."""
        await self.reconciler.sync(key, "tick" if trigger == "tick" else "observe")
        if self.prepull.needs_retry(key):
            await self.prepull.reconcile(key)

    def forget(self, key: PoolKey) -> None:
        """A pool was deleted: both reconcilers drop what they remember of it."""
        self.reconciler.forget(key)
        self.prepull.forget(key)

    def start(self) -> None:
        """Serve metrics; start the refresh loop and the periodic LIST of the children."""
        self.metrics.serve(self.settings.metrics_port)
        self.tasks.append(asyncio.create_task(self.loop.run(), name="warmpool-refresh"))
        self.tasks.append(
            asyncio.create_task(
                self.applier.keep_primed(self.settings.namespaces),
                name="warmpool-children-lister",
            )
        )

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        self.metrics.close()


async def build_runtime(settings: OperatorSettings) -> Runtime:
    metrics = OperatorMetrics()
    client = await KubeClient.connect(settings.kubeconfig, on_write=metrics.count_write)
    cache = WatchCache()
    applier = Applier(client)
    try:
        # One metadata LIST per child kind instead of a GET per child of every pool on resume.
        await applier.prime_all(settings.namespaces)
    except ApiError as error:
        logger.warning("listing the pools' children failed (read one by one): %s", error)
    # A change of its verified nodes re-syncs the pool: a roll-out held for pre-pull may go.
    prepull = PrepullReconciler(client, cache, on_change=lambda key: runtime.loop.mark(key))
    reconciler = Reconciler(
        settings=settings,
        client=client,
        cache=cache,
        applier=applier,
        metrics=metrics,
        events=EventRecorder(client),
        scaler=Scaler.from_settings(
            settings.prometheus_url, settings.traffic_query, settings.scaling_interval_seconds
        ),
        prepull_nodes=prepull.nodes,
    )
    indexed = asyncio.Event()
    runtime = Runtime(
        settings=settings,
        client=client,
        cache=cache,
        applier=applier,
        metrics=metrics,
        reconciler=reconciler,
        prepull=prepull,
        loop=RefreshLoop(
            lambda key, trigger: runtime.refresh(key, trigger),
            cache.pool_keys,
            interval=settings.scaling_interval_seconds,
            debounce=settings.refresh_debounce_seconds,
            workers=settings.workers,
            # A restarted operator ticked pools before kopf had listed their Deployments and
            # re-applied 3 of 300 as "missing" (benchmarks/scale.py): wait for the listings.
            ready=indexed,
        ),
        indexed=indexed,
    )
    return runtime


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings, each changed for a reason; the rest stay at kopf's defaults, with the
    measurements behind that in docs/scale.md."""
    # Handler progress goes to status.kopf (not annotations): GitOps tools diff metadata and
    # spec, and the CRD reserves status.kopf for exactly this.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    # The diff-base (a copy of the spec) in status.kopf too: all of an object's annotations
    # share a 256 KiB limit, and a spec above it made kopf re-patch the pool on every event
    # (tests/e2e/test_hostile_operator.py).
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field=DIFF_BASE_FIELD)
    # kopf's own Events only for warnings and errors: by default, one write per handler
    # success, i.e. per pool on every resume.
    settings.posting.level = logging.WARNING
    # No peering: it pauses kopf's handlers but not the refresh loop. HA is the Lease election
    # (controller/ha/): only the leader runs kopf at all.
    settings.peering.standalone = True
    # At 1,000 new pools the watch lagged behind kopf's own patches by more than the default
    # 5 s: kopf re-ran create handlers, 484 extra writes (benchmarks/scale.py).
    settings.persistence.consistency_timeout = 30.0
    # Paginated initial listings: a restart's memory peak 284-299 -> 279 MiB at 1,000 pools.
    settings.watching.chunk_size = 200
