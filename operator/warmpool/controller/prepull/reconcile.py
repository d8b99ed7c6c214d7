"""Pre-pull: label the nodes that hold a verified copy of a pool's weights.

The DaemonSet `<pool>-prepull` itself is a child the pool reconciler applies. Here, pre-pull
pods (their own watch) and pools (the shared watch cache) decide a pool's node labels:

    Ready pre-pull pods of the current fingerprint  ->  desired labels  (prepull/state.py, pure)
    (and, while a roll-out waits for its pre-pull, of the weights the replicas keep)
    list nodes carrying the pool's label key         ->  observed labels
    finalizer first (when labels will exist), label patches, finalizer last (when none remain),
    status.cachedNodes when it differs.

A converged pool costs no request: a snapshot of the inputs that were last reconciled is kept,
and an event that changes none of them (a status write, a kwok heartbeat) is skipped. kopf
does not retry event handlers: a reconcile that failed is retried by the refresh loop at the
pool's next tick (`needs_retry`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmpool.contract import Obj, PoolKey
from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef, pool_ref
from warmpool.controller.kube.watch import DELETED, WatchCache
from warmpool.controller.prepull.gate import PrepullNodes
from warmpool.controller.prepull.state import (
    FINALIZER,
    FinalizerChange,
    PrepullPod,
    cached_node_count,
    desired_node_labels,
    finalizer_change,
    finalizers_after,
    label_patches,
    observed_node_labels,
    parse_prepull_pod,
    pool_view,
    prepull_nodes,
    prepull_pod_key,
)

logger = logging.getLogger(__name__)

Snapshot = tuple[Any, ...]


@dataclass
class PrepullReconciler:
    """Pre-pull pods as last seen, and the reconcile of each pool's node labels."""

    client: KubeClient
    cache: WatchCache
    on_change: Callable[[PoolKey], None] = lambda key: None
    """Called when a pool's verified nodes changed: the pool's sync may release a roll-out
    held for its pre-pull (controller/prepull/gate.py)."""
    _pods: dict[PoolKey, dict[str, PrepullPod]] = field(default_factory=dict)
    _done: dict[PoolKey, Snapshot] = field(default_factory=dict)
    _locks: dict[PoolKey, asyncio.Lock] = field(default_factory=dict)
    _failed: set[PoolKey] = field(default_factory=set)

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

    def forget(self, key: PoolKey) -> None:
        """A pool is gone: drop what was reconciled of it."""
        self._done.pop(key, None)
        self._failed.discard(key)
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    def needs_retry(self, key: PoolKey) -> bool:
        """Whether the pool's last reconcile failed (the refresh loop retries it)."""
        return key in self._failed

    def nodes(self, key: PoolKey, fingerprint: str) -> PrepullNodes:
        """The pool's pre-pull pods' view of `fingerprint` (verified and eligible nodes)."""
        return prepull_nodes(self._pods.get(key, {}).values(), fingerprint)

    def cached_nodes(self, key: PoolKey) -> int:
        """status.cachedNodes for a pool, from what was last reconciled (0 when unknown)."""
        done = self._done.get(key)
        return int(done[3]) if done is not None else 0

    # ---- reconcile -------------------------------------------------------------------

    async def reconcile(self, key: PoolKey) -> None:
        """Bring the pool's node labels, finalizer and status.cachedNodes up to date; on an API
        error, leave it to the refresh loop's retry instead of raising into kopf."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                await self._reconcile_locked(key)
            except ApiError as error:
                self._done.pop(key, None)
                self._failed.add(key)
                logger.warning(
                    "pre-pull %s/%s: %s; retrying at the next tick", *key, error.message or error
                )
                return
        self._failed.discard(key)

    async def _reconcile_locked(self, key: PoolKey) -> None:
        body = self.cache.pool(key)
        if body is None:
            return
        view = pool_view(body)
        if not view.valid and not view.deleting:
            # Degraded: leave the labels as they are, like every other child.
            return
        desired = desired_node_labels(
            self._pods.get(key, {}).values(), view.fingerprint, view.held_fingerprint
        )
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
        self.on_change(key)

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
        self.cache.observe_pool(None, result)
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
        self.cache.observe_pool(None, result)
