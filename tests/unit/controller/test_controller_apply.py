"""The compare-before-apply logic, with a recording stand-in for the API client (the real
apiserver path is exercised by tests/e2e/test_operator.py)."""

from __future__ import annotations

from typing import Any

from warmpool.controller.kube.apply import Applier, drift, with_spec_hash
from warmpool.controller.kube.client import ObjectRef
from warmpool.render.labels import SPEC_HASH_ANNOTATION


def service(port: int = 8000) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {"ports": [{"name": "http", "port": port}]},
    }


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {"replicas": replicas},
    }


class RecordingClient:
    """Answers GETs from a dict of objects and records every call."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.calls: list[tuple[str, str]] = []
        self.version = 10

    async def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls.append(("get", ref.kind))
        return self.objects.get((ref.kind, ref.name))

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"]))
        self.version += 1
        stored = {
            **manifest,
            "metadata": {**manifest["metadata"], "resourceVersion": str(self.version)},
        }
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = stored
        return stored

    async def delete(self, ref: ObjectRef) -> bool:
        self.calls.append(("delete", ref.kind))
        return self.objects.pop((ref.kind, ref.name), None) is not None


def test_spec_hash_is_added_once_and_stable() -> None:
    first = with_spec_hash(service())
    assert first["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert with_spec_hash(first) == first
    assert with_spec_hash(service(9000)) != first


def test_drift_looks_only_at_owned_fields() -> None:
    desired = with_spec_hash(service())
    live = {**desired, "spec": {**desired["spec"], "clusterIP": "10.96.0.7"}, "status": {}}
    assert drift(desired, live) is None  # defaulted fields are not ours
    assert drift(desired, None) == "missing"
    assert drift(with_spec_hash(service(9000)), live) == "changed"
    scaled = with_spec_hash(deployment(3))
    by_hand = {**scaled, "spec": {"replicas": 5}}
    assert drift(scaled, by_hand) == "replicas 5 -> 3"


async def test_applier_writes_once_then_nothing() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.apply(service()) is True
    assert await applier.apply(service()) is False
    assert client.calls == [("get", "Service"), ("apply", "Service")]


async def test_applier_after_restart_reads_but_does_not_write() -> None:
    client = RecordingClient({("Service", "llama"): with_spec_hash(service())})
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.apply(service()) is False
    assert client.calls == [("get", "Service")]


async def test_deployment_from_cache_needs_no_read_and_older_cache_loses() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.apply(deployment(1), None, live_known=True) is True
    # The watch has not delivered the Deployment yet: what was applied is trusted.
    assert await applier.apply(deployment(1), None, live_known=True) is False
    stale = {**with_spec_hash(deployment(0)), "metadata": {"resourceVersion": "3"}}
    assert await applier.apply(deployment(1), stale, live_known=True) is False
    assert client.calls == [("apply", "Deployment")]
    # Scaled by hand later (a newer version in the cache): applied back.
    newer = client.objects[("Deployment", "llama")]
    by_hand = {
        **newer,
        "spec": {"replicas": 7},
        "metadata": {**newer["metadata"], "resourceVersion": "99"},
    }
    assert await applier.apply(deployment(1), by_hand, live_known=True) is True


async def test_delete_reads_first_and_leaves_foreign_objects() -> None:
    ref = ObjectRef("discovery.k8s.io/v1", "EndpointSlice", "llama-activator", "ml")
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.delete(ref, owner_uid="u-1") is False
    assert await applier.delete(ref, owner_uid="u-1") is False
    assert client.calls == [("get", "EndpointSlice")]
    foreign = {
        "kind": "EndpointSlice",
        "metadata": {"name": "llama-activator", "ownerReferences": [{"uid": "other"}]},
    }
    client = RecordingClient({("EndpointSlice", "llama-activator"): foreign})
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.delete(ref, owner_uid="u-1") is False
    owned = {
        "kind": "EndpointSlice",
        "metadata": {"name": "llama-activator", "ownerReferences": [{"uid": "u-1"}]},
    }
    client = RecordingClient({("EndpointSlice", "llama-activator"): owned})
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.delete(ref, owner_uid="u-1") is True
    assert client.calls == [("get", "EndpointSlice"), ("delete", "EndpointSlice")]
