"""kopf handlers: thin. Each one hands the event to the cache, the Reconciler or the loop.

Registered into an explicit registry by `register(registry, settings)`, so the settings (namespaces,
the activator Service) shape the handlers without module-level globals.

Design, and why (fewest API calls):
- Pools, their Deployments and server pods (label `warmpool.dev/pool`) and the activator's
  EndpointSlices are watched once by kopf and kept in a `ClusterCache`; a pool refresh then reads
  nothing from the API.
- A pod or Deployment event only MARKS its pool; one `RefreshLoop` task refreshes marked pools
  (a burst of events is one refresh) and ticks every pool for the scaling decision. kopf daemons
  or timers would each put a finalizer on every pool.
- create/update(spec)/resume run the same sync at once and surface errors to kopf
  (PermanentError for an unservable spec, TemporaryError for transient API errors).
- The wake annotation runs the sync at once, in kopf's per-object worker: no queue in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from warmpool.api.resource import GROUP, PLURAL, POOL_LABEL, VERSION, WAKE_ANNOTATION
from warmpool.controller.cache import DELETED, ClusterCache
from warmpool.controller.client import ApiError, KubeClient, connection_info, load_configuration
from warmpool.controller.events import EventRecorder
from warmpool.controller.health import loop_health
from warmpool.controller.loop import RefreshLoop
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.prepull import register_prepull
from warmpool.controller.reconcile import Reconciler, Trigger
from warmpool.controller.scaler import PolicyScaler
from warmpool.controller.settings import OperatorSettings

logger = logging.getLogger(__name__)

#: Where kopf keeps the last spec it handled (its diff-base).
DIFF_BASE_FIELD = "status.kopf.last-handled-configuration"
#: Seconds before kopf retries a handler after a transient API error.
RETRY_DELAY = 5.0


@dataclass
class Runtime:
    """What the handlers share; built at startup, kept in kopf's memo, closed at cleanup."""

    settings: OperatorSettings
    client: KubeClient
    cache: ClusterCache
    metrics: OperatorMetrics
    reconciler: Reconciler
    loop: RefreshLoop
    indexed: asyncio.Event
    """Set by the first non-index handler: kopf runs none before its initial listings (and the
    index primers in `register`) are through, so from then on the cache holds the whole
    cluster."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        self.metrics.close()


def runtime_of(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


async def build_runtime(config: OperatorSettings) -> Runtime:
    metrics = OperatorMetrics()
    client = await KubeClient.connect(config.kubeconfig, on_write=metrics.count_write)
    cache = ClusterCache()
    reconciler = Reconciler(
        settings=config,
        client=client,
        cache=cache,
        metrics=metrics,
        events=EventRecorder(client),
        scaling=PolicyScaler.from_settings(
            config.prometheus_url, config.traffic_query, config.scaling_interval_seconds
        ),
    )

    async def refresh(key: tuple[str, str], trigger: str) -> object:
        return await reconciler.sync(key, "tick" if trigger == "tick" else "observe")

    try:
        # One metadata LIST per child kind instead of a GET per child of every pool on resume.
        await reconciler.applier.prime_all(config.namespaces)
    except ApiError as error:
        logger.warning("listing the pools' children failed (read one by one): %s", error)

    indexed = asyncio.Event()
    loop = RefreshLoop(
        refresh,
        cache.pool_keys,
        interval=config.scaling_interval_seconds,
        debounce=config.refresh_debounce_seconds,
        workers=config.workers,
        # A restarted operator ticked pools before kopf had listed their Deployments and
        # re-applied 3 of 300 as "missing" (benchmarks/scale.py): wait for the listings.
        ready=indexed,
    )
    return Runtime(
        settings=config,
        client=client,
        cache=cache,
        metrics=metrics,
        reconciler=reconciler,
        loop=loop,
        indexed=indexed,
    )


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """kopf's settings, each changed for a reason."""
    # Handler progress goes to status.kopf (not annotations): GitOps tools diff metadata and
    # spec, and the CRD reserves status.kopf for exactly this.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    # The diff-base (a copy of the spec) lives in status.kopf too, not in an annotation: all of
    # an object's annotations share a 256 KiB limit, and a spec above it (every field within its
    # bounds) made kopf re-patch the pool on every event, refused each time
    # (tests/e2e/test_hostile_operator.py). Status also keeps it out of GitOps diffs.
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field=DIFF_BASE_FIELD)
    # kopf posts an Event for every handler success by default: one write per resume of every
    # pool. Only its warnings and errors become Events; ours say what happened to the pool.
    settings.posting.level = logging.WARNING
    # kopf never peers: its peering pauses kopf's handlers but not the refresh loop. HA is
    # leader election on a Lease (controller/leader.py): only the leader runs kopf at all.
    settings.peering.standalone = True
    # After its own patch of a pool (the diff-base), kopf waits this long for the patched
    # version to come back through the watch before it trusts older events again. At 1,000
    # new pools on the loaded 2-core box the watch lagged more than the default 5 s: kopf then
    # took a stale event for a new pool, ran the create handler again and patched the pool a
    # second time -- 484 extra writes (benchmarks/scale.py). Only this pool's changing handlers
    # wait; its event handlers (the cache) and every other pool go on.
    settings.persistence.consistency_timeout = 30.0
    # kopf lists each watched kind in one response by default: at a restart with 1,000 pools
    # that is 1,000 whole Deployments and 1,000 pools parsed at once, and the restarted
    # operator peaked at 284-299 MiB (benchmarks/scale.py; 279 MiB with pages of 200).
    settings.watching.chunk_size = 200
    # Worker limits and timeouts otherwise stay at kopf's defaults (docs/scale.md):
    # - queueing.worker_limit stays None (unlimited). kopf's limit counts a per-object worker
    #   until it has been idle for queueing.idle_timeout (5 s), so a limit of N admits about
    #   N new pools per 5 s (read in kopf's queueing code, not benchmarked): 16 would take
    #   minutes for 1,000 pools. What needs bounding is the load on the apiserver, and the
    #   operator's client bounds that (client.MAX_IN_FLIGHT).
    # - queueing.idle_timeout stays 5 s: a lingering worker is a parked coroutine (memory
    #   within the RSS measured), and a shorter one only recreates workers on the next event.
    # - time-based batching (batch_window) no longer exists in kopf 1.45; the refresh loop
    #   coalesces pod and Deployment events per pool instead (loop.py).
    # - watching/networking timeouts: kopf retries a failed watch request itself (seen once
    #   at 1,000 pools on the loaded box) and its patches did not time out once the
    #   operator's own requests were bounded.


def _key(body: kopf.Body) -> tuple[str, str]:
    return (str(body.metadata.namespace or "default"), str(body.metadata.name))


async def _sync_or_raise(runtime: Runtime, body: kopf.Body, trigger: Trigger) -> None:
    runtime.indexed.set()
    try:
        result = await runtime.reconciler.sync(_key(body), trigger, body=dict(body))
    except ApiError as error:
        if error.transient:
            raise kopf.TemporaryError(f"{trigger}: {error}", delay=RETRY_DELAY) from error
        if error.status == 404 or "NamespaceTerminating" in error.body:
            # The pool or its namespace is going away: nothing left to reconcile.
            logger.info("%s of %s/%s skipped: %s", trigger, *_key(body), error.message)
            return
        raise kopf.PermanentError(f"{trigger}: {error.message}") from error
    if result.invalid:
        # Retrying cannot help: only a new spec (an update) can fix it.
        raise kopf.PermanentError(f"the spec cannot be served: {result.invalid}")


def register(registry: kopf.OperatorRegistry, config: OperatorSettings) -> None:
    """Register every handler of the operator into `registry`."""

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings, config)
        runtime = await build_runtime(config)
        runtime.metrics.serve(config.metrics_port)
        runtime.tasks.append(asyncio.create_task(runtime.loop.run(), name="warmpool-refresh"))
        runtime.tasks.append(
            asyncio.create_task(
                runtime.reconciler.applier.keep_primed(config.namespaces),
                name="warmpool-children-lister",
            )
        )
        memo["runtime"] = runtime
        logger.info(
            "warmpool operator started: namespaces=%s activator=%s scaling-interval=%ss",
            ",".join(config.namespaces) or "(all)",
            config.activator or "(none)",
            config.scaling_interval_seconds,
        )

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if "runtime" in memo:
            await runtime_of(memo).close()

    @kopf.on.login(id="login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await connection_info(await load_configuration(config.kubeconfig))

    # Priming: kopf runs index handlers for every listed object and holds ALL other handlers
    # until the initial listings of indexed kinds are through. Feeding the cache from these
    # (they store no index values) means resume and the loop never see a half-listed cluster:
    # without it, a restarted operator saw a pool before its pods, wrote a status with 0
    # replicas, then the right one again -- two needless writes and two bogus Events.
    @kopf.index(GROUP, VERSION, PLURAL, id="pool-primer", registry=registry)
    async def prime_pool(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime_of(memo).cache.observe_pool(None, body)

    @kopf.index(
        "", "v1", "pods", id="pod-primer", labels={POOL_LABEL: kopf.PRESENT}, registry=registry
    )
    async def prime_pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime_of(memo).cache.observe_pod(None, body)

    @kopf.index(
        "apps",
        "v1",
        "deployments",
        id="deployment-primer",
        labels={POOL_LABEL: kopf.PRESENT},
        registry=registry,
    )
    async def prime_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime_of(memo).cache.observe_deployment(None, body)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="pool-cache", registry=registry)
    async def pool_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        runtime.indexed.set()
        key = runtime.cache.observe_pool(event.get("type"), body)
        if event.get("type") == DELETED:
            runtime.reconciler.forget(key)

    @kopf.on.event(
        "", "v1", "pods", id="pod-cache", labels={POOL_LABEL: kopf.PRESENT}, registry=registry
    )
    async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        runtime.indexed.set()
        key = runtime.cache.observe_pod(event.get("type"), body)
        if key is not None and runtime.cache.pool(key) is not None:
            runtime.loop.mark(key)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="deployment-cache",
        labels={POOL_LABEL: kopf.PRESENT},
        registry=registry,
    )
    async def deployment_event(
        event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime = runtime_of(memo)
        runtime.indexed.set()
        key = runtime.cache.observe_deployment(event.get("type"), body)
        if key is not None and runtime.cache.pool(key) is not None:
            runtime.loop.mark(key)

    if config.activator is not None:
        activator = config.activator

        @kopf.index(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            id="activator-primer",
            labels={"kubernetes.io/service-name": activator.name},
            when=lambda namespace, **_: namespace == activator.namespace,
            registry=registry,
        )
        async def prime_activator(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
            runtime_of(memo).cache.observe_activator_slice(None, body)

        @kopf.on.event(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            id="activator-cache",
            labels={"kubernetes.io/service-name": activator.name},
            when=lambda namespace, **_: namespace == activator.namespace,
            registry=registry,
        )
        async def activator_event(
            event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
        ) -> None:
            runtime = runtime_of(memo)
            runtime.cache.observe_activator_slice(event.get("type"), body)
            for key in runtime.cache.pool_keys():
                runtime.loop.mark(key)

    @kopf.on.create(GROUP, VERSION, PLURAL, id="create", registry=registry)
    async def created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _sync_or_raise(runtime_of(memo), body, "create")

    # field="spec": status and metadata changes (ours, kopf's, the wake annotation) are no
    # reason to re-render; the wake annotation has its own handler below.
    @kopf.on.update(GROUP, VERSION, PLURAL, id="update", field="spec", registry=registry)
    async def updated(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _sync_or_raise(runtime_of(memo), body, "update")

    @kopf.on.resume(GROUP, VERSION, PLURAL, id="resume", registry=registry)
    async def resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await _sync_or_raise(runtime_of(memo), body, "resume")

    @kopf.on.field(
        GROUP,
        VERSION,
        PLURAL,
        id="wake",
        registry=registry,
        field=("metadata", "annotations", WAKE_ANNOTATION),
    )
    async def wake_requested(body: kopf.Body, new: Any, memo: kopf.Memo, **_: Any) -> None:
        if new:
            await _sync_or_raise(runtime_of(memo), body, "wake")

    @kopf.on.probe(id="refresh_loop", registry=registry)
    async def refresh_loop_alive(memo: kopf.Memo, **_: Any) -> str:
        return loop_health(runtime_of(memo).tasks) if "runtime" in memo else "starting"

    register_prepull(registry, config)
