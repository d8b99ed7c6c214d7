"""The paths that keep 1,000 pools cheap (benchmarks/scale.py measures them on the real control
plane): children learnt by LIST instead of a GET each, Deployments and deletes from the watch
cache, the client's bound on requests in flight, slimmed cache entries, and a refresh loop that
waits for kopf's listings and spreads its ticks over the interval."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from test_controller_apply import RecordingClient, deployment, service
from test_controller_loop import Recorder

from warmpool.controller.kube.apply import Applier, with_spec_hash
from warmpool.controller.kube.client import KubeClient, ObjectRef
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.loop import RefreshLoop, tick_slice
from warmpool.render.labels import SPEC_HASH_ANNOTATION


def listed(manifest: dict[str, Any], version: str) -> dict[str, Any]:
    """`manifest` as a metadata-only LIST returns it (no kind, no spec)."""
    meta = with_spec_hash(manifest)["metadata"]
    return {"metadata": {**meta, "namespace": "ml", "resourceVersion": version}}


async def test_a_primed_kind_needs_no_read_absent_or_present() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    applier.prime("Service", None, [], "5")
    assert await applier.apply(service()) is True  # absent from the LIST: applied, no GET
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    applier.prime("Service", None, [listed(service(), "4")], "5")
    assert await applier.apply(service()) is False  # listed with the same hash
    assert await applier.apply(service(9000)) is True  # a new spec: written
    assert client.calls == [("apply", "Service")]


async def test_a_reprime_notices_a_child_deleted_by_hand_but_not_a_newer_write() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    applier.prime("Service", None, [], "5")
    assert await applier.apply(service()) is True  # written at version 11
    # A LIST taken before that write does not hold it: the write wins.
    applier.prime("Service", None, [], "9")
    assert await applier.apply(service()) is False
    # A LIST taken after it that lacks it: deleted by hand, restored.
    applier.prime("Service", None, [], "50")
    assert await applier.apply(service()) is True
    assert client.calls == [("apply", "Service"), ("apply", "Service")]


async def test_a_namespaced_prime_covers_only_its_namespace() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    applier.prime("Service", "other", [], "5")
    assert await applier.apply(service()) is True  # in `ml`: not covered, read first
    assert client.calls == [("get", "Service"), ("apply", "Service")]


async def test_children_of_a_deleted_pool_are_read_again() -> None:
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    applier.prime("Service", None, [], "5")
    assert await applier.apply(service()) is True
    applier.forget("ml", "llama")
    # Re-created under the same name while the old Service may still exist: read it.
    assert await applier.apply(service()) is False
    assert client.calls == [("apply", "Service"), ("get", "Service")]


async def test_delete_from_the_cache_sends_one_delete_and_spares_foreign_objects() -> None:
    ref = ObjectRef("apps/v1", "Deployment", "llama-headroom", "ml")
    owned = {
        "kind": "Deployment",
        "metadata": {
            "name": "llama-headroom",
            "resourceVersion": "7",
            "ownerReferences": [{"uid": "u-1"}],
        },
    }
    client = RecordingClient()
    applier = Applier(client)  # type: ignore[arg-type]
    assert await applier.delete(ref, owner_uid="u-1", live=None, live_known=True) is False
    assert await applier.delete(ref, owner_uid="other", live=owned, live_known=True) is False
    client.objects[("Deployment", "llama-headroom")] = owned
    assert await applier.delete(ref, owner_uid="u-1", live=owned, live_known=True) is True
    # The watch has not delivered the deletion yet: the stale copy causes no second DELETE.
    assert await applier.delete(ref, owner_uid="u-1", live=owned, live_known=True) is False
    assert client.calls == [("delete", "Deployment")]
    # Gone from the cache, then re-created (newer): deleted again.
    assert await applier.delete(ref, owner_uid="u-1", live=None, live_known=True) is False
    again = {**owned, "metadata": {**owned["metadata"], "resourceVersion": "20"}}
    client.objects[("Deployment", "llama-headroom")] = again
    assert await applier.delete(ref, owner_uid="u-1", live=again, live_known=True) is True


def test_cache_keeps_slim_deployments_and_pools() -> None:
    cache = WatchCache()
    server = with_spec_hash(deployment(2))
    server["metadata"].update(
        labels={"warmpool.dev/pool": "llama"}, resourceVersion="3", managedFields=[{"m": 1}]
    )
    server["spec"]["template"] = {"spec": {"containers": [{"name": "triton"}]}}
    headroom = {
        **server,
        "metadata": {**server["metadata"], "name": "llama-headroom"},
    }
    assert cache.observe_deployment(None, server) == ("ml", "llama")
    assert cache.observe_deployment(None, headroom) is None  # not news for the pool's status
    kept = cache.deployment(("ml", "llama"))
    assert kept is not None
    assert kept["spec"] == {"replicas": 2}
    assert kept["metadata"]["annotations"] == {
        SPEC_HASH_ANNOTATION: server["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    }
    assert "managedFields" not in kept["metadata"]
    assert cache.deployment_named("ml", "llama-headroom") is not None
    pool = {
        "metadata": {"name": "llama", "namespace": "ml", "managedFields": [{"m": 1}]},
        "spec": {"model": {"uri": "s3://m/x"}},
    }
    cache.observe_pool(None, pool)
    cached = cache.pool(("ml", "llama"))
    assert cached is not None
    assert "managedFields" not in cached["metadata"]
    assert cached["spec"] == pool["spec"]
    pool["spec"]["model"]["uri"] = "changed"  # a copy, not a view of kopf's body
    assert cached["spec"]["model"]["uri"] == "s3://m/x"


class SlowApi:
    """Stands in for kubernetes_asyncio's ApiClient: counts calls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.configuration = None

    async def call_api(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        return {"metadata": {}}


async def test_client_bounds_requests_in_flight() -> None:
    api = SlowApi()
    client = KubeClient(api, max_in_flight=3)  # type: ignore[arg-type]
    ref = ObjectRef("v1", "Service", "llama", "ml")
    await asyncio.gather(*(client.get(ref) for _ in range(20)))
    assert api.most == 3


async def test_ticks_are_spread_each_pool_once_per_round() -> None:
    pools = [("ns", f"pool-{i}") for i in range(40)]
    assert len({tick_slice(key, 4) for key in pools}) == 4  # the hash spreads them
    recorder = Recorder(enough=80)
    loop = RefreshLoop(recorder, lambda: pools, interval=0.2, debounce=0.0, workers=4, slices=4)
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(recorder.done.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    first_round = [key for key, _ in recorder.calls[:40]]
    assert sorted(first_round) == sorted(pools)  # every pool once before any twice


async def test_loop_waits_for_kopfs_listings() -> None:
    ready = asyncio.Event()
    recorder = Recorder(enough=1)
    loop = RefreshLoop(
        recorder, lambda: [("ns", "a")], interval=0.01, debounce=0.0, workers=1, ready=ready
    )
    loop.mark(("ns", "a"))
    task = asyncio.create_task(loop.run())
    try:
        # A negative: 20 would-be intervals pass without a refresh while `ready` is unset.
        await asyncio.sleep(0.2)
        assert recorder.calls == []
        ready.set()
        await asyncio.wait_for(recorder.done.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_an_idle_sync_skips_rendering_but_still_repairs_drift() -> None:
    from controller_builders import make_pool
    from test_controller_reconcile import setup

    import warmpool.controller.pool.reconcile as reconcile

    # Replicas owned through the scale subresource: the decision does not follow the
    # Deployment's replicas, so a hand edit of them is drift.
    reconciler, api, cache = setup(body=make_pool(replicas=1))
    await reconciler.sync(("ml", "llama"), "create")
    deployment = api.objects[("Deployment", "ml", "llama")]
    cache.observe_deployment(None, deployment)
    renders = 0
    build = reconcile.build_children

    def counting(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal renders
        renders += 1
        return build(*args, **kwargs)

    reconcile.build_children = counting  # type: ignore[assignment]
    try:
        api.calls.clear()
        await reconciler.sync(("ml", "llama"), "tick")
        assert (renders, api.calls) == (0, [])  # same inputs, children as applied
        # Scaled by hand (a newer Deployment in the watch cache): rendered and applied back.
        by_hand = {
            **deployment,
            "spec": {**deployment["spec"], "replicas": 5},
            "metadata": {**deployment["metadata"], "resourceVersion": str(api.version)},
        }
        cache.observe_deployment(None, by_hand)
        await reconciler.sync(("ml", "llama"), "tick")
        assert renders == 1
        assert api.writes() == [("apply", "Deployment")]
        cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])  # the watch
        # A Service deleted by hand, seen by a re-LIST: rendered and applied back.
        api.calls.clear()
        reconciler.applier.prime("Service", None, [], "100000")
        await reconciler.sync(("ml", "llama"), "tick")
        assert renders == 2
        assert api.writes() == [("apply", "Service"), ("apply", "Service")]
    finally:
        reconcile.build_children = build  # type: ignore[assignment]
