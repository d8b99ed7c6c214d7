"""kopf handlers: thin, module-level, registered by one flat table (`register`).

Each handler hands its event to the runtime (controller/runtime.py): the watch cache, the pool
reconciler, the pre-pull reconciler or the refresh loop. The operator's settings reach them
through kopf's memo (`memo["settings"]`, put there by `warmpool operator`), never a global.

Why this shape (fewest API calls, no finalizer; docs/operator.md has the story):
- Pools, their Deployments and server pods (label `warmpool.dev/pool`), pre-pull pods and the
  activator's EndpointSlices are watched once by kopf and kept in the runtime; a refresh then
  reads nothing from the API.
- Index handlers only prime the cache: kopf holds every other handler until the initial
  listings of indexed kinds are through, so nothing acts on a half-listed cluster.
- A pod or Deployment event only MARKS its pool; the one refresh loop refreshes marked pools
  (a burst of events is one refresh) and ticks every pool for the scaling decision. kopf
  daemons or timers would each put a finalizer on every pool.
- create/update(spec)/resume and the wake annotation run the pool's sync at once, in kopf's
  per-object worker, and surface errors to kopf (PermanentError for an unservable spec,
  TemporaryError for transient API errors).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from warmpool.contract import GROUP, PLURAL, POOL_LABEL, VERSION, WAKE_ANNOTATION, pool_key
from warmpool.controller.health import loop_health
from warmpool.controller.kube.client import ApiError, connection_info, load_configuration
from warmpool.controller.kube.watch import DELETED
from warmpool.controller.pool.reconcile import Trigger
from warmpool.controller.prepull.state import PREPULL_POD_LABELS
from warmpool.controller.runtime import Runtime, build_runtime, configure_kopf
from warmpool.controller.settings import OperatorSettings

logger = logging.getLogger(__name__)

#: Seconds before kopf retries a handler after a transient API error.
RETRY_DELAY = 5.0

POOLS = (GROUP, VERSION, PLURAL)
PODS = ("", "v1", "pods")
DEPLOYMENTS = ("apps", "v1", "deployments")
SLICES = ("discovery.k8s.io", "v1", "endpointslices")
SERVER_PODS: dict[str, Any] = {"labels": {POOL_LABEL: kopf.PRESENT}}
PREPULL_PODS: dict[str, Any] = {"labels": dict(PREPULL_POD_LABELS)}
POOL_DEPLOYMENTS: dict[str, Any] = {"labels": {POOL_LABEL: kopf.PRESENT}}


def settings_of(memo: kopf.Memo) -> OperatorSettings:
    settings: OperatorSettings = memo["settings"]
    return settings


def runtime_of(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


# ---- the operator's life -------------------------------------------------------------------


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = settings_of(memo)
    configure_kopf(settings)
    runtime = await build_runtime(config)
    runtime.start()
    memo["runtime"] = runtime
    logger.info(
        "warmpool operator started: namespaces=%s activator=%s scaling-interval=%ss",
        ",".join(config.namespaces) or "(all)",
        config.activator or "(none)",
        config.scaling_interval_seconds,
    )


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if "runtime" in memo:
        await runtime_of(memo).close()


async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return await connection_info(await load_configuration(settings_of(memo).kubeconfig))


async def refresh_loop_alive(memo: kopf.Memo, **_: Any) -> str:
    return loop_health(runtime_of(memo).tasks) if "runtime" in memo else "starting"


# ---- the watch cache -----------------------------------------------------------------------


async def prime_pool(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).cache.observe_pool(None, body)


async def prime_server_pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).cache.observe_pod(None, body)


async def prime_deployment(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).cache.observe_deployment(None, body)


async def prime_prepull_pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).prepull.observe_pod(None, body)


async def prime_activator_slice(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime_of(memo).cache.observe_activator_slice(None, body)


async def pool_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every pool event: the cache, then pre-pull's node labels (the pool reconciler runs from
    kopf's changing handlers and the loop)."""
    runtime = runtime_of(memo)
    runtime.indexed.set()
    key = runtime.cache.observe_pool(event.get("type"), body)
    if event.get("type") == DELETED:
        runtime.forget(key)
    else:
        await runtime.prepull.reconcile(key)


async def server_pod_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.indexed.set()
    key = runtime.cache.observe_pod(event.get("type"), body)
    if key is not None and runtime.cache.pool(key) is not None:
        runtime.loop.mark(key)


async def deployment_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.indexed.set()
    key = runtime.cache.observe_deployment(event.get("type"), body)
    if key is not None and runtime.cache.pool(key) is not None:
        runtime.loop.mark(key)


async def prepull_pod_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    runtime = runtime_of(memo)
    key = runtime.prepull.observe_pod(event.get("type"), body)
    if key is not None:
        await runtime.prepull.reconcile(key)


async def activator_slice_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """The activator's endpoints changed: every pool at zero routes to them."""
    runtime = runtime_of(memo)
    runtime.cache.observe_activator_slice(event.get("type"), body)
    for key in runtime.cache.pool_keys():
        runtime.loop.mark(key)


# ---- the pool's changing handlers ----------------------------------------------------------


async def _sync_or_raise(runtime: Runtime, body: kopf.Body, trigger: Trigger) -> None:
    runtime.indexed.set()
    key = pool_key(body)
    try:
        result = await runtime.reconciler.sync(key, trigger, body=dict(body))
    except ApiError as error:
        if error.transient:
            raise kopf.TemporaryError(f"{trigger}: {error}", delay=RETRY_DELAY) from error
        if error.status == 404 or "NamespaceTerminating" in error.body:
            # The pool or its namespace is going away: nothing left to reconcile.
            logger.info("%s of %s skipped: %s", trigger, key, error.message)
            return
        raise kopf.PermanentError(f"{trigger}: {error.message}") from error
    if result.invalid:
        # Retrying cannot help: only a new spec (an update) can fix it.
        raise kopf.PermanentError(f"the spec cannot be served: {result.invalid}")


async def created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _sync_or_raise(runtime_of(memo), body, "create")


async def updated(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _sync_or_raise(runtime_of(memo), body, "update")


async def resumed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _sync_or_raise(runtime_of(memo), body, "resume")


async def wake_requested(body: kopf.Body, new: Any, memo: kopf.Memo, **_: Any) -> None:
    if new:
        await _sync_or_raise(runtime_of(memo), body, "wake")


# ---- the table -----------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Every handler of the operator, what it watches and its id. `settings` only decides
    which EndpointSlices are the activator's; the handlers read it from the memo."""
    on, r = kopf.on, registry
    on.startup(id="startup", registry=r)(startup)
    on.cleanup(id="cleanup", registry=r)(cleanup)
    on.login(id="login", registry=r)(login)
    on.probe(id="refresh_loop", registry=r)(refresh_loop_alive)

    kopf.index(*POOLS, id="pool-primer", registry=r)(prime_pool)
    kopf.index(*PODS, id="pod-primer", **SERVER_PODS, registry=r)(prime_server_pod)
    kopf.index(*DEPLOYMENTS, id="deployment-primer", **POOL_DEPLOYMENTS, registry=r)(
        prime_deployment
    )
    kopf.index(*PODS, id="prepull-pod-primer", **PREPULL_PODS, registry=r)(prime_prepull_pod)

    on.event(*POOLS, id="pool-cache", registry=r)(pool_event)
    on.event(*PODS, id="pod-cache", **SERVER_PODS, registry=r)(server_pod_event)
    on.event(*DEPLOYMENTS, id="deployment-cache", **POOL_DEPLOYMENTS, registry=r)(deployment_event)
    on.event(*PODS, id="prepull-pod", **PREPULL_PODS, registry=r)(prepull_pod_event)

    on.create(*POOLS, id="create", registry=r)(created)
    # field="spec": status and metadata changes (ours, kopf's, the wake annotation) are no
    # reason to re-render; the wake annotation has its own handler.
    on.update(*POOLS, id="update", field="spec", registry=r)(updated)
    on.resume(*POOLS, id="resume", registry=r)(resumed)
    on.field(*POOLS, id="wake", field=("metadata", "annotations", WAKE_ANNOTATION), registry=r)(
        wake_requested
    )

    if settings.activator is not None:
        activator = settings.activator
        slices: dict[str, Any] = {
            "labels": {"kubernetes.io/service-name": activator.name},
            "when": lambda namespace, **_: namespace == activator.namespace,
        }
        kopf.index(*SLICES, id="activator-primer", **slices, registry=r)(prime_activator_slice)
        on.event(*SLICES, id="activator-cache", **slices, registry=r)(activator_slice_event)
