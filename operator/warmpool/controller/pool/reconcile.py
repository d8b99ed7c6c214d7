"""The reconcile service: one pool from what was observed to what is applied and reported.

read pool (watch cache) -> validate -> decide replicas -> render children -> apply what differs
-> observe (Deployment and pods from the watch cache) -> status, Events, metrics.

Every trigger (kopf's create/update/resume handlers, the wake handler, pod and Deployment events,
the scaling tick) runs this same `sync`, serialised per pool by a lock, so the handlers stay
thin and two writers never race on one pool. A converged pool costs no request: children are
compared by their spec-hash, status by value.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from warmpool.api.resource import InferencePool
from warmpool.api.status import InferencePoolStatus, Phase
from warmpool.contract import Obj, PoolKey
from warmpool.controller.kube.apply import Applier, spec_hash
from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef, pool_ref
from warmpool.controller.kube.events import EventRecorder
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.coldstart import new_cold_starts
from warmpool.controller.pool.coldstart_io import lift_cold_start_hints, split_cold_starts
from warmpool.controller.pool.fallback import plan_rollout
from warmpool.controller.pool.pods import count_pods
from warmpool.controller.pool.report import Reporter
from warmpool.controller.pool.rollout import deployment_for_status
from warmpool.controller.pool.status import (
    StatusInputs,
    compute_status,
    parse_status,
    status_patch,
)
from warmpool.controller.pool.validate import Invalid, validate_pool
from warmpool.controller.prepull.gate import NodeCounter, no_prepull_nodes, prepull_hold
from warmpool.controller.settings import OperatorSettings
from warmpool.render.children import build_children, optional_children
from warmpool.render.common import RenderError
from warmpool.render.endpoints import ActivatorEndpoints
from warmpool.render.service import ServiceMode
from warmpool.scaling.service import Scaler

Trigger = Literal["create", "update", "resume", "wake", "tick", "observe"]


class ChildRejected(Exception):
    """The apiserver refused a rendered child as invalid: retrying the same spec cannot help."""


@dataclass(frozen=True)
class SyncResult:
    """What one sync did."""

    phase: Phase | None
    invalid: str | None = None
    writes: int = 0


def service_mode(warm_replicas: int, settings: OperatorSettings) -> ServiceMode:
    """`direct` with a warm replica or without an activator; else route to the activator."""
    if warm_replicas >= 1 or settings.activator is None:
        return "direct"
    return "activator"


class Reconciler:
    """Syncs pools; shared by every handler and by the refresh loop."""

    def __init__(
        self,
        *,
        settings: OperatorSettings,
        client: KubeClient,
        cache: WatchCache,
        applier: Applier,
        metrics: OperatorMetrics,
        events: EventRecorder,
        scaler: Scaler,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prepull_nodes: NodeCounter = no_prepull_nodes,
    ) -> None:
        self._settings = settings
        self._client = client
        self._cache = cache
        self._applier = applier
        self._metrics = metrics
        self._reporter = Reporter(events, metrics)
        self._scaler = scaler
        self._clock = clock
        self._render_config = settings.render_config()
        self._prepull_nodes = prepull_nodes  # the pre-pull gate's input (controller/prepull/)
        self._locks: dict[PoolKey, asyncio.Lock] = {}
        # Per pool: the signature of the last render's inputs and what it applied. A refresh
        # with the same inputs whose children are all still as applied skips rendering (37% of
        # an idle sync's CPU: 1,000 pools are refreshed every scaling interval).
        self._applied: dict[PoolKey, tuple[str, tuple[AppliedChild, ...]]] = {}
        # Per pool: the render signature the apiserver refused a child of, and why. The same
        # inputs render the same child, refused again: without this, a Degraded pool's refused
        # apply was re-sent on every scaling tick, forever (tests/e2e/test_hostile_operator.py).
        self._rejected: dict[PoolKey, tuple[str, str]] = {}

    @property
    def applier(self) -> Applier:
        """What knows the children's live spec-hashes (shared with the runtime's re-LIST)."""
        return self._applier

    def forget(self, key: PoolKey) -> None:
        """A pool is gone: drop its lock, remembered children, decision and phase."""
        self._locks.pop(key, None)
        self._applied.pop(key, None)
        self._rejected.pop(key, None)
        self._applier.forget(*key)
        self._scaler.forget(key)
        self._reporter.forget(key)

    async def sync(
        self, key: PoolKey, trigger: Trigger, body: Mapping[str, Any] | None = None
    ) -> SyncResult:
        """Bring one pool's children and status up to date."""
        if body is not None:
            self._cache.observe_pool(None, body)
        lock = self._locks.setdefault(key, asyncio.Lock())
        started = time.perf_counter()
        result = "error"
        try:
            async with lock:
                outcome = await self._sync_locked(key, trigger)
            result = "invalid" if outcome.invalid else "ok"
            return outcome
        finally:
            self._metrics.reconciles.labels(trigger=trigger, result=result).inc()
            self._metrics.reconcile_seconds.labels(trigger=trigger).observe(
                time.perf_counter() - started
            )

    async def _sync_locked(self, key: PoolKey, trigger: Trigger) -> SyncResult:
        body = self._cache.pool(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return SyncResult(phase=None)
        now = self._clock().replace(microsecond=0)
        previous = parse_status(body.get("status"))
        pods = self._cache.pods(key)
        checked = validate_pool(body)
        if isinstance(checked, InferencePool):
            try:
                return await self._sync_valid(key, trigger, body, checked, previous, pods, now)
            except RenderError as error:
                checked = Invalid(f"metadata.name: {error}")
            except ChildRejected as error:
                checked = Invalid(str(error))
        return await self._degrade(key, body, checked, previous, pods, now)

    async def _sync_valid(
        self,
        key: PoolKey,
        trigger: Trigger,
        body: Obj,
        pool: InferencePool,
        previous: InferencePoolStatus,
        pods: list[Obj],
        now: datetime,
    ) -> SyncResult:
        counts = count_pods(pods, pool.spec.warmup.enabled)
        deployment = self._cache.deployment(key)
        current = (deployment or {}).get("spec", {}).get("replicas")
        last_cold = previous.last_cold_start
        decision = await self._scaler.decision_for(
            pool,
            previous.scaler_state,
            now,
            trigger,
            current_replicas=int(current) if current is not None else previous.desired_replicas,
            ready_replicas=counts.warm,
            cold_start_seconds=last_cold.total_seconds if last_cold is not None else None,
        )
        mode = service_mode(counts.warm, self._settings)
        endpoints = self._activator_endpoints() if mode == "activator" else None
        # The disruption budget's floor: the scaler's, or under an external owner (spec.replicas)
        # the spec's warm floor within the replicas it set.
        floor = (
            decision.effective_floor
            if decision.owned
            else min(pool.spec.scaling.warm_floor, decision.desired)
        )
        # strategy Auto: surge, or replace in place once a surged replica found no GPU in time
        plan = plan_rollout(pool.spec, deployment, pods, previous.rollout, now)
        signature = render_signature(
            body, decision.desired, mode, endpoints, floor, plan.replace_revision
        )
        hold = prepull_hold(
            pool,
            deployment,
            previous,
            decision.desired,
            now,
            self._prepull_nodes,
            self._render_config,
        )
        signature += hold.signature
        rejected = self._rejected.get(key)
        if rejected is not None and rejected[0] == signature:
            raise ChildRejected(rejected[1])  # nothing the render reads has changed since
        rendered: Obj | None = None
        if self._children_current(key, signature):
            writes = 0  # same inputs as the last render, and every child still as applied
        else:
            children = build_children(
                pool,
                self._render_config,
                replicas=decision.desired,
                service_mode=mode,
                activator_endpoints=endpoints,
                warm_floor=floor,
                replace_revision=plan.replace_revision,
                kept_model=hold.kept_model,
            )
            try:
                writes = await self._apply_children(key, pool, children)
            except ChildRejected as error:
                self._rejected[key] = (signature, str(error))
                raise
            finally:
                await self._report_reverted(body)
            self._rejected.pop(key, None)
            self._applied[key] = (signature, tuple(applied_summary(c) for c in children))
            # build_children renders the server Deployment last
            rendered = children[-1] if children[-1]["kind"] == "Deployment" else None
        if hold.event is not None:
            await self._reporter.note(body, hold.event.type, hold.event.reason, hold.event.note)
        writes += await lift_cold_start_hints(
            self._client, self._cache, key[0], pods, pool.spec.warmup.enabled
        )
        cold_starts = await split_cold_starts(
            self._client, key[0], pods, new_cold_starts(pods, previous.last_cold_start)
        )
        status = compute_status(
            StatusInputs(
                name=pool.metadata.name,
                generation=pool.metadata.generation,
                warmup_enabled=pool.spec.warmup.enabled,
                pods=pods,
                previous=previous,
                now=now,
                scaling=decision,
                last_cold_start=cold_starts[-1] if cold_starts else None,
                deployment=deployment_for_status(self._cache.deployment(key), rendered),
                activator=self._settings.activator is not None,
                plan=plan,
                prepull=hold.record,
            )
        )
        writes += await self._write_status(key, body, status)
        await self._reporter.report(body, previous, status, cold_starts)
        return SyncResult(phase=status.phase, writes=writes)

    async def _degrade(
        self,
        key: PoolKey,
        body: Obj,
        invalid: Invalid,
        previous: InferencePoolStatus,
        pods: list[Obj],
        now: datetime,
    ) -> SyncResult:
        """An unservable spec: report it, and leave the running children exactly as they are."""
        meta = body.get("metadata") or {}
        warmup = ((body.get("spec") or {}).get("warmup") or {}).get("enabled", True)
        status = compute_status(
            StatusInputs(
                name=str(meta.get("name")),
                generation=int(meta.get("generation") or 0),
                warmup_enabled=bool(warmup),
                pods=pods,
                previous=previous,
                now=now,
                degraded=invalid.message,
                deployment=self._cache.deployment(key),
                activator=self._settings.activator is not None,
            )
        )
        writes = await self._write_status(key, body, status)
        await self._reporter.report(body, previous, status, [])
        return SyncResult(phase=status.phase, invalid=invalid.message, writes=writes)

    def _children_current(self, key: PoolKey, signature: str) -> bool:
        """Whether the last render had these inputs and each of its children is still as
        applied (Deployments in the watch cache, the rest as the applier last saw them)."""
        known = self._applied.get(key)
        if known is None or known[0] != signature:
            return False
        for kind, name, wanted, replicas in known[1]:
            if kind == "Deployment":
                live = self._cache.deployment_named(key[0], name)
                if live is None or spec_hash(live) != wanted or self._applier.template_edit(live):
                    return False
                if replicas is not None and (live.get("spec") or {}).get("replicas") != replicas:
                    return False
            elif not self._applier.is_current(kind, key[0], name, wanted):
                return False
        return True

    async def _report_reverted(self, body: Obj) -> None:
        """An Event per hand edit of a pod template the last apply reverted (and what of it
        stays: fields the operator never sets are not its to remove)."""
        reverted, self._applier.reverted = self._applier.reverted, []
        for ref, editors, left in reverted:
            note = f"{ref.kind} {ref.name}: pod template edited by {', '.join(editors)}; reverted"
            if left:
                note += f" (fields only {', '.join(left)} set are kept)"
            await self._reporter.drift(body, note)

    def _activator_endpoints(self) -> ActivatorEndpoints:
        found = self._cache.activator_endpoints()
        ports = dict(found[0].ports) if found else {}
        return ActivatorEndpoints(
            addresses=[endpoint.ip for endpoint in found],
            http_port=ports.get("http", 8000),
            grpc_port=ports.get("grpc", 8001),
        )

    async def _apply_children(self, key: PoolKey, pool: InferencePool, children: list[Obj]) -> int:
        writes = 0
        rendered: set[tuple[str, str]] = set()
        for child in children:
            kind, name = str(child["kind"]), str(child["metadata"]["name"])
            rendered.add((kind, name))
            try:
                if kind == "Deployment":  # every pool-labelled Deployment is in the cache
                    live = self._cache.deployment_named(key[0], name)
                    writes += await self._applier.apply(child, live, live_known=True)
                else:
                    writes += await self._applier.apply(child)
            except ApiError as error:
                if error.status in (400, 422):  # the apiserver refuses what the spec rendered to
                    raise ChildRejected(f"{kind} {name} rejected: {error.message}") from error
                raise
        for api_version, kind, name in optional_children(pool):
            if (kind, name) in rendered:
                continue
            ref = ObjectRef(api_version, kind, name, pool.metadata.namespace)
            if kind == "Deployment":
                cached = self._cache.deployment_named(key[0], name)
                writes += await self._applier.delete(
                    ref, owner_uid=pool.metadata.uid, live=cached, live_known=True
                )
            else:
                writes += await self._applier.delete(ref, owner_uid=pool.metadata.uid)
        return writes

    async def _write_status(self, key: PoolKey, body: Obj, status: InferencePoolStatus) -> int:
        patch = status_patch(body.get("status"), status)
        if patch is None:
            return 0
        try:
            result = await self._client.merge_patch(pool_ref(*key), patch, subresource="status")
        except ApiError as error:
            if error.status == 404:
                return 0  # deleted meanwhile: nothing left to report on
            raise
        self._cache.observe_pool(None, result)
        return 1


AppliedChild = tuple[str, str, str | None, int | None]
"""(kind, name, spec-hash, Deployment replicas) of a rendered child."""


def applied_summary(child: Mapping[str, Any]) -> AppliedChild:
    replicas = (child.get("spec") or {}).get("replicas") if child["kind"] == "Deployment" else None
    return (str(child["kind"]), str(child["metadata"]["name"]), spec_hash(child), replicas)


def render_signature(
    body: Mapping[str, Any],
    replicas: int,
    mode: ServiceMode,
    endpoints: ActivatorEndpoints | None,
    warm_floor: int = 0,
    replace_revision: str | None = None,
) -> str:
    """A digest of everything `build_children` reads: the pool's identity, labels,
    annotations and spec, the replicas, the Service mode, the activator's endpoints and the
    warm floor (the disruption budget's minAvailable), and the revision strategy Auto replaces
    in place."""
    meta = body.get("metadata") or {}
    inputs = [
        {k: meta.get(k) for k in ("name", "namespace", "uid", "generation", "labels")},
        meta.get("annotations"),
        body.get("spec"),
        replicas,
        mode,
        None
        if endpoints is None
        else [list(endpoints.addresses), endpoints.http_port, endpoints.grpc_port],
        warm_floor,
        replace_revision,
    ]
    encoded = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()
