"""kopf handlers of pre-pull: label nodes that hold a verified copy of a pool's weights.

The DaemonSet `<pool>-prepull` itself is a child the reconciler applies. Here: pre-pull pods
and pools are watched (kopf watches both kinds anyway), remembered in a `PrepullController`,
and a pool's node labels are reconciled when what decides them changed:

    Ready pre-pull pods of the current fingerprint  ->  desired labels  (prepull_state, pure)
    list nodes carrying the pool's label key         ->  observed labels
    finalizer first (when labels will exist), label patches, finalizer last (when none remain),
    status.cachedNodes when it differs.

A converged pool costs no request: a snapshot of the inputs that were last reconciled is kept,
and an event that changes none of them (a status write, a kwok heartbeat) is skipped. kopf
does not retry event handlers, so a failed write is retried by this controller after a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from warmpool.api.resource import GROUP, PLURAL, VERSION
from warmpool.controller.cache import DELETED, is_newer
from warmpool.controller.client import ApiError, KubeClient, ObjectRef, pool_ref
from warmpool.controller.prepull_state import (
    FINALIZER,
    PREPULL_POD_LABELS,
    FinalizerChange,
    PoolKey,
    PrepullPod,
    cached_node_count,
    desired_node_labels,
    finalizer_change,
    finalizers_after,
    label_patches,
    observed_node_labels,
    parse_prepull_pod,
    pool_view,
    prepull_pod_key,
)
from warmpool.controller.settings import OperatorSettings

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

#: First retry delay after a failed write (doubles up to MAX_RETRY_DELAY).
RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 60.0

Snapshot = tuple[Any, ...]


def _slim_pool(body: Mapping[str, Any]) -> Obj:
    """What the pre-pull logic reads of a pool: metadata, spec, status.cachedNodes."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    slim: Obj = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            key: meta[key]
            for key in (
                "name",
                "namespace",
                "uid",
                "generation",
                "resourceVersion",
                "finalizers",
                "deletionTimestamp",
            )
            if key in meta
        },
        "spec": body.get("spec") or {},
    }
    if "cachedNodes" in status:
        slim["status"] = {"cachedNodes": status["cachedNodes"]}
    return copy.deepcopy(slim)


@dataclass
class PrepullController:
    """Pre-pull pods and pools as last seen, and the reconcile of each pool's node labels."""

    client: KubeClient
    retry_delay: float = RETRY_DELAY
    _pools: dict[PoolKey, Obj] = field(default_factory=dict)
    _pods: dict[PoolKey, dict[str, PrepullPod]] = field(default_factory=dict)
    _done: dict[PoolKey, Snapshot] = field(default_factory=dict)
    _locks: dict[PoolKey, asyncio.Lock] = field(default_factory=dict)
    _failures: dict[PoolKey, int] = field(default_factory=dict)
    _retries: dict[PoolKey, asyncio.Task[None]] = field(default_factory=dict)

    # ---- observation ---------------------------------------------------------------

    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey | None:
        """Remember a pre-pull pod; its pool's key (None for a pod that is not one).

        No change detection here: kopf calls the index primer AND the event handler for every
        event, so the second call would always see "no change". The reconcile's snapshot
        makes a repeated call free instead.
        """
        key = prepull_pod_key(body)
        if key is None:
            return None
        pods = self._pods.setdefault(key, {})
        pod = parse_prepull_pod(body)
        if event_type == DELETED:
            pods.pop(pod.uid, None)
            if not pods:
                self._pods.pop(key, None)
        else:
            pods[pod.uid] = pod
        return key

    def observe_pool(self, event_type: str | None, body: Mapping[str, Any]) -> PoolKey:
        """Remember a pool (the newest resourceVersion wins); forget it when deleted."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name")))
        if event_type == DELETED:
            self.forget(key)
        elif is_newer(body, self._pools.get(key)):
            self._pools[key] = _slim_pool(body)
        return key

    def forget(self, key: PoolKey) -> None:
        self._pools.pop(key, None)
        self._done.pop(key, None)
        self._failures.pop(key, None)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]
        task = self._retries.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def cached_nodes(self, key: PoolKey) -> int:
        """status.cachedNodes for a pool, from what was last reconciled (0 when unknown)."""
        done = self._done.get(key)
        return int(done[3]) if done is not None else 0

    # ---- reconcile -------------------------------------------------------------------

    async def reconcile(self, key: PoolKey) -> None:
        """Bring the pool's node labels, finalizer and status.cachedNodes up to date; on an API
        error, retry later (with back-off) instead of raising into kopf."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                await self._reconcile_locked(key)
            except ApiError as error:
                self._done.pop(key, None)
                self._schedule_retry(key, error)
                return
        self._failures.pop(key, None)

    async def _reconcile_locked(self, key: PoolKey) -> None:
        body = self._pools.get(key)
        if body is None:
            return
        view = pool_view(body)
        if not view.valid and not view.deleting:
            # Degraded: leave the labels as they are, like every other child.
            return
        desired = desired_node_labels(self._pods.get(key, {}).values(), view.fingerprint)
        change = finalizer_change(view.has_finalizer, desired)
        count = cached_node_count(desired, view.fingerprint)
        has_finalizer_after = change == "add" or (change is None and view.has_finalizer)
        status_count = None if view.deleting else count
        # What the pool will look like once this reconcile's own writes come back as events.
        expected = (
            view.fingerprint,
            tuple(sorted(desired.items())),
            has_finalizer_after,
            count,
            view.deleting,
        )
        converged = change is None and status_count in (None, view.cached_nodes or 0)
        if converged and self._done.get(key) == expected:
            return
        if converged and not desired and not view.has_finalizer:
            # No label to place, and none placed: the finalizer goes on before the first label
            # and comes off after the last. Skips a node LIST per pool without pre-pull (1,000
            # of them while 1,000 new pools converged: benchmarks/results/scale.md).
            self._done[key] = expected
            return
        logger.debug("pre-pull %s/%s: reconciling %s", *key, expected)
        nodes = await self.client.list("v1", "Node", None, label_selector=view.label_key)
        observed = observed_node_labels(nodes, view.label_key)
        if change == "add":
            await self._write_finalizers(key, body, change)
        for patch in label_patches(observed, desired):
            try:
                await self.client.merge_patch(
                    ObjectRef("v1", "Node", patch.node), patch.merge_patch(view.label_key)
                )
            except ApiError as error:
                if error.status != 404:  # a node deleted meanwhile holds no label
                    raise
            logger.info(
                "pre-pull %s/%s: node %s label %s=%s",
                *key,
                patch.node,
                view.label_key,
                patch.value if patch.value is not None else "(removed)",
            )
        if change == "remove":
            await self._write_finalizers(key, body, change)
        # An unset status.cachedNodes already reads as 0.
        if status_count is not None and (view.cached_nodes or 0) != status_count:
            await self._write_cached_nodes(key, status_count)
        self._done[key] = expected

    async def _write_finalizers(self, key: PoolKey, body: Obj, change: FinalizerChange) -> None:
        meta = body.get("metadata") or {}
        finalizers = finalizers_after(list(meta.get("finalizers") or []), change)
        patch = {
            # resourceVersion: a concurrent change of the list is a conflict (retried), never
            # silently overwritten.
            "metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}
        }
        try:
            result = await self.client.merge_patch(pool_ref(*key), patch)
        except ApiError as error:
            if error.status == 404 and change == "remove":
                return
            raise
        self.observe_pool(None, result)
        logger.info("pre-pull %s/%s: finalizer %s %s", *key, FINALIZER, change)

    async def _write_cached_nodes(self, key: PoolKey, count: int) -> None:
        try:
            result = await self.client.merge_patch(
                pool_ref(*key), {"status": {"cachedNodes": count}}, subresource="status"
            )
        except ApiError as error:
            if error.status == 404:
                return
            raise
        self.observe_pool(None, result)

    def _schedule_retry(self, key: PoolKey, error: ApiError) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(MAX_RETRY_DELAY, self.retry_delay * 2 ** (failures - 1))
        logger.warning("pre-pull %s/%s: %s; retrying in %.0fs", *key, error.message or error, delay)
        if key in self._retries and not self._retries[key].done():
            return

        async def retry() -> None:
            await asyncio.sleep(delay)
            self._retries.pop(key, None)
            await self.reconcile(key)

        self._retries[key] = asyncio.create_task(retry(), name=f"prepull-retry-{key[0]}/{key[1]}")

    async def close(self) -> None:
        tasks = list(self._retries.values())
        self._retries.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()


def controller_of(memo: kopf.Memo) -> PrepullController:
    controller: PrepullController = memo["prepull"]
    return controller


def register_prepull(registry: kopf.OperatorRegistry, config: OperatorSettings) -> None:
    """Register the pre-pull handlers into `registry` (called from handlers.register)."""

    @kopf.on.startup(id="prepull-startup", registry=registry)
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        memo["prepull"] = PrepullController(await KubeClient.connect(config.kubeconfig))

    @kopf.on.cleanup(id="prepull-cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        if "prepull" in memo:
            await controller_of(memo).close()

    # Priming, as for the reconciler's cache: kopf holds every non-index handler until the
    # initial listing of indexed kinds is through, so a restarted operator never sees a pool
    # before its pre-pull pods and removes labels that are right.
    @kopf.index(
        "",
        "v1",
        "pods",
        id="prepull-pod-primer",
        labels=dict(PREPULL_POD_LABELS),
        registry=registry,
    )
    async def prime_pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller_of(memo).observe_pod(None, body)

    @kopf.on.event(
        "", "v1", "pods", id="prepull-pod", labels=dict(PREPULL_POD_LABELS), registry=registry
    )
    async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller = controller_of(memo)
        key = controller.observe_pod(event.get("type"), body)
        if key is not None:
            await controller.reconcile(key)

    @kopf.on.event(GROUP, VERSION, PLURAL, id="prepull-pool", registry=registry)
    async def pool_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller = controller_of(memo)
        key = controller.observe_pool(event.get("type"), body)
        if event.get("type") != DELETED:
            await controller.reconcile(key)
