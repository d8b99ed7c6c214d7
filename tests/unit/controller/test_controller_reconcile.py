"""The reconcile service end to end over an in-memory stand-in for the API (no apiserver: the
same paths against the real one are in tests/e2e/test_operator.py). What is checked here is the
service's own logic: what it writes, when it writes nothing, and that Degraded touches no child.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from controller_builders import make_pool

from warmpool.controller.kube.apply import Applier
from warmpool.controller.kube.client import ApiError, ObjectRef
from warmpool.controller.kube.events import EventRecorder
from warmpool.controller.kube.watch import Endpoint, WatchCache
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.reconcile import Reconciler
from warmpool.controller.settings import ActivatorRef, OperatorSettings
from warmpool.scaling.service import Scaler

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class MemoryApi:
    """Objects by (kind, namespace, name); every call recorded as (verb, kind)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.version = 100

    def _key(self, ref: ObjectRef) -> tuple[str, str, str]:
        return (ref.kind, ref.namespace or "", ref.name)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[self._key(ObjectRef.of(obj))] = obj
        return copy.deepcopy(obj)

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls.append(("get", ref.kind))
        found = self.objects.get(self._key(ref))
        return copy.deepcopy(found) if found else None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Objects of `kind` in `namespace`; of field selectors only involvedObject.uid."""
        self.calls.append(("list", kind))
        items = [
            copy.deepcopy(obj)
            for (k, ns, _), obj in self.objects.items()
            if k == kind and ns == (namespace or "")
        ]
        if field_selector.startswith("involvedObject.uid="):
            uid = field_selector.split("=", 1)[1]
            items = [o for o in items if (o.get("involvedObject") or {}).get("uid") == uid]
        return items

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"]))
        return self._store(manifest)

    async def merge_patch(
        self, ref: ObjectRef, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        self.calls.append((f"patch/{subresource}" if subresource else "patch", ref.kind))
        current = self.objects[self._key(ref)]
        for part in ("status",):
            if part in patch:
                current[part] = {
                    k: v
                    for k, v in {**current.get(part, {}), **patch[part]}.items()
                    if v is not None
                }
        if "annotations" in patch.get("metadata", {}):
            meta = current["metadata"]
            merged = {**meta.get("annotations", {}), **patch["metadata"]["annotations"]}
            meta["annotations"] = {k: v for k, v in merged.items() if v is not None}
        return self._store(current)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", manifest["kind"]))
        return copy.deepcopy(manifest)

    async def delete(self, ref: ObjectRef) -> bool:
        self.calls.append(("delete", ref.kind))
        return self.objects.pop(self._key(ref), None) is not None

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] not in ("get", "list")]


def setup(
    settings: OperatorSettings | None = None, body: dict[str, Any] | None = None
) -> tuple[Reconciler, MemoryApi, WatchCache]:
    api = MemoryApi()
    cache = WatchCache()
    pool = body or make_pool()
    api._store(pool)
    cache.observe_pool(None, api.objects[("InferencePool", "ml", "llama")])
    reconciler = Reconciler(
        settings=settings or OperatorSettings(),
        client=api,  # type: ignore[arg-type]
        cache=cache,
        applier=Applier(api),  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
        events=EventRecorder(api, instance="test"),  # type: ignore[arg-type]
        # The policy as in production, with no traffic source (tests/e2e reads Prometheus).
        scaler=Scaler(None, interval_seconds=10),
        clock=lambda: NOW,
    )
    return reconciler, api, cache


async def test_first_sync_applies_children_and_status_then_nothing() -> None:
    reconciler, api, cache = setup()
    result = await reconciler.sync(("ml", "llama"), "create")
    assert result.invalid is None
    applied = [kind for verb, kind in api.writes() if verb == "apply"]
    # the PodDisruptionBudget: the default warm floor is 1
    assert applied == [
        "ServiceAccount",
        "RoleBinding",
        "Service",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
    ]
    assert ("patch/status", "InferencePool") in api.writes()
    deployment = api.objects[("Deployment", "ml", "llama")]
    assert deployment["spec"]["replicas"] == 1
    cache.observe_deployment(None, deployment)
    api.calls.clear()
    await reconciler.sync(("ml", "llama"), "tick")
    await reconciler.sync(("ml", "llama"), "resume")
    assert api.writes() == []
    assert api.calls == []  # children remembered, Deployment from the cache: no reads either


async def test_scale_subresource_sets_external_owner() -> None:
    body = make_pool()
    body["spec"]["replicas"] = 3
    reconciler, api, _ = setup(body=body)
    await reconciler.sync(("ml", "llama"), "create")
    assert api.objects[("Deployment", "ml", "llama")]["spec"]["replicas"] == 3
    status = api.objects[("InferencePool", "ml", "llama")]["status"]
    assert status["scaling"]["owner"] == "external"
    assert status["desiredReplicas"] == 3


async def test_unservable_spec_is_degraded_without_touching_children() -> None:
    reconciler, api, _ = setup()
    await reconciler.sync(("ml", "llama"), "create")
    children_before = {k: v for k, v in api.objects.items() if k[0] != "InferencePool"}
    body = copy.deepcopy(api.objects[("InferencePool", "ml", "llama")])
    body["spec"]["scaling"] = {
        "warmFloor": 2,
        "schedules": [
            {"cron": "0 8 * * *", "timezone": "Mars/Olympus", "warmFloor": 1, "durationMinutes": 5}
        ],
    }
    api.calls.clear()
    result = await reconciler.sync(("ml", "llama"), "update", body=body)
    assert result.invalid == "spec.scaling.schedules[0].timezone: unknown time zone 'Mars/Olympus'"
    assert {k: v for k, v in api.objects.items() if k[0] != "InferencePool"} == children_before
    assert [w for w in api.writes() if w[1] != "Event" and w[0] != "patch/status"] == []
    status = api.objects[("InferencePool", "ml", "llama")]["status"]
    assert status["phase"] == "Degraded"
    assert status["desiredReplicas"] == 1
    assert ("create", "Event") in api.writes()


async def test_activator_mode_at_zero_and_direct_when_warm() -> None:
    body = make_pool(scaling={"warmFloor": 0, "scaleToZeroAfterSeconds": 60})
    settings = OperatorSettings(activator=ActivatorRef("warmpool-system", "activator"))
    reconciler, api, cache = setup(settings, body)
    cache.observe_activator_slice(
        None,
        {
            "metadata": {"name": "activator-x", "resourceVersion": "1"},
            "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 8081}],
        },
    )
    assert cache.activator_endpoints() == [Endpoint("10.0.0.9", (("grpc", 8081), ("http", 8080)))]
    await reconciler.sync(("ml", "llama"), "create")
    public = api.objects[("Service", "ml", "llama")]
    assert "selector" not in public["spec"]
    slice_ = api.objects[("EndpointSlice", "ml", "llama-activator")]
    assert slice_["endpoints"][0]["addresses"] == ["10.0.0.9"]
    assert api.objects[("Deployment", "ml", "llama")]["spec"]["replicas"] == 0
    status = api.objects[("InferencePool", "ml", "llama")]["status"]
    assert status["phase"] == "ScaledToZero"


def refuse_deployments(api: MemoryApi) -> None:
    """Make the stand-in API refuse every Deployment apply as invalid (422), as the apiserver
    does a child the spec rendered wrong."""
    original = api.apply

    async def apply(manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] == "Deployment":
            api.calls.append(("apply", "Deployment"))
            raise ApiError(422, "Unprocessable Entity", '{"message": "spec.template: invalid"}')
        return await original(manifest)

    api.apply = apply  # type: ignore[method-assign]


async def test_a_child_the_apiserver_refuses_degrades_the_pool() -> None:
    reconciler, api, _ = setup()
    refuse_deployments(api)
    result = await reconciler.sync(("ml", "llama"), "create")
    assert result.invalid == "Deployment llama rejected: spec.template: invalid"
    status = api.objects[("InferencePool", "ml", "llama")]["status"]
    assert status["phase"] == "Degraded"


async def test_a_refused_child_is_not_resent_until_its_inputs_change() -> None:
    reconciler, api, cache = setup()
    refuse_deployments(api)
    await reconciler.sync(("ml", "llama"), "create")
    cache.observe_pool(None, api.objects[("InferencePool", "ml", "llama")])
    api.calls.clear()
    for _ in range(3):
        result = await reconciler.sync(("ml", "llama"), "tick")
        assert result.invalid == "Deployment llama rejected: spec.template: invalid"
    # The same inputs would be refused the same way: no request at all, the pool stays Degraded.
    assert api.calls == []

    changed = copy.deepcopy(api.objects[("InferencePool", "ml", "llama")])
    changed["metadata"]["generation"] = 2
    changed["spec"]["server"] = {"resources": {"limits": {"cpu": "2"}}}
    cache.observe_pool(None, api._store(changed))
    await reconciler.sync(("ml", "llama"), "update")
    assert ("apply", "Deployment") in api.calls  # a new spec is tried again
