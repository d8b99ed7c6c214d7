"""Pre-pull node labels (pure): which nodes hold a verified copy, what to patch, the finalizer
and status.cachedNodes. Pods are built from the REAL rendered DaemonSet template, so a change
of render/prepull.py's labels or annotation breaks these tests instead of the operator."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import pytest

from warmpool.api.resource import InferencePool
from warmpool.controller.kube.apply import Applier
from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.loop import RefreshLoop
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.reconcile import Reconciler
from warmpool.controller.prepull.reconcile import PrepullReconciler
from warmpool.controller.prepull.state import (
    FINALIZER,
    NodeLabelPatch,
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
from warmpool.controller.runtime import Runtime
from warmpool.controller.settings import OperatorSettings
from warmpool.render.config import RenderConfig
from warmpool.render.labels import model_fingerprint, prepull_node_label_key
from warmpool.render.prepull import build_prepull_daemonset


def pool_body(*, prepull: bool = True, revision: str = "r1", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", **metadata},
        "spec": {
            "model": {"uri": "s3://models/llama", "revision": revision},
            "cache": {"kind": "node", "prepull": prepull},
        },
    }


def fingerprint_of(body: dict[str, Any]) -> str:
    return model_fingerprint(InferencePool.from_manifest(body).spec.model)


def prepull_pod(
    body: dict[str, Any],
    node: str | None,
    *,
    uid: str,
    ready: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod as the DaemonSet controller creates it from the rendered template, with the
    status KWOK (or a kubelet) reports."""
    daemonset = build_prepull_daemonset(InferencePool.from_manifest(body), RenderConfig())
    template = copy.deepcopy(daemonset["spec"]["template"])
    pod: dict[str, Any] = {
        "metadata": {
            "name": f"llama-prepull-{uid}",
            "namespace": "ml",
            "uid": uid,
            **template["metadata"],
        },
        "spec": {**template["spec"], **({"nodeName": node} if node else {})},
        "status": {
            "phase": "Running" if node else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


def test_rendered_prepull_pod_is_recognised_and_carries_the_pool_fingerprint() -> None:
    body = pool_body()
    pod = prepull_pod(body, "gpu-0", uid="a")
    assert prepull_pod_key(pod) == ("ml", "llama")
    parsed = parse_prepull_pod(pod)
    assert parsed == PrepullPod(uid="a", node="gpu-0", fingerprint=fingerprint_of(body), ready=True)
    assert parsed.verified


def test_server_pods_and_foreign_pods_are_not_prepull_pods() -> None:
    server = {"metadata": {"namespace": "ml", "labels": {"warmpool.dev/pool": "llama"}}}
    headroom = {
        "metadata": {
            "namespace": "ml",
            "labels": {
                "app.kubernetes.io/instance": "llama",
                "app.kubernetes.io/component": "headroom",
                "app.kubernetes.io/managed-by": "warmpool",
            },
        }
    }
    assert prepull_pod_key(server) is None
    assert prepull_pod_key(headroom) is None
    assert prepull_pod_key({}) is None


@pytest.mark.parametrize(
    ("node", "ready", "deleting"),
    [(None, False, False), ("gpu-0", False, False), ("gpu-0", True, True)],
    ids=["unscheduled", "not-ready-still-fetching", "terminating"],
)
def test_a_pod_whose_copy_is_not_verified_labels_nothing(
    node: str | None, ready: bool, deleting: bool
) -> None:
    body = pool_body()
    pod = parse_prepull_pod(prepull_pod(body, node, uid="a", ready=ready, deleting=deleting))
    assert not pod.verified
    assert desired_node_labels([pod], fingerprint_of(body)) == {}


def test_desired_labels_are_the_nodes_with_a_ready_pod_of_the_current_fingerprint() -> None:
    old, new = pool_body(revision="r1"), pool_body(revision="r2")
    pods = [
        parse_prepull_pod(prepull_pod(new, "gpu-0", uid="a")),
        parse_prepull_pod(prepull_pod(new, "gpu-1", uid="b")),
        # gpu-2 still holds the previous revision (rolling update not there yet).
        parse_prepull_pod(prepull_pod(old, "gpu-2", uid="c")),
        parse_prepull_pod(prepull_pod(new, "gpu-3", uid="d", ready=False)),
    ]
    current = fingerprint_of(new)
    assert current != fingerprint_of(old)
    assert desired_node_labels(pods, current) == {"gpu-0": current, "gpu-1": current}
    # Pre-pull off (or pool deleting): no node keeps a label.
    assert desired_node_labels(pods, None) == {}


def test_pool_view_fingerprint_follows_prepull_and_deletion() -> None:
    on = pool_view(pool_body())
    assert on.key == ("ml", "llama")
    assert on.label_key == prepull_node_label_key("ml", "llama")
    assert on.fingerprint == fingerprint_of(pool_body())
    assert on.valid and not on.deleting and not on.has_finalizer
    assert pool_view(pool_body(prepull=False)).fingerprint is None
    deleting = pool_view(
        pool_body(deletionTimestamp="2026-01-01T00:00:00Z", finalizers=[FINALIZER])
    )
    assert deleting.fingerprint is None and deleting.deleting and deleting.has_finalizer


def test_pool_view_of_an_unservable_spec_is_invalid() -> None:
    body = pool_body()
    body["spec"]["model"]["uri"] = "ftp://nope"
    view = pool_view(body)
    assert not view.valid and view.fingerprint is None


def test_pool_view_reads_status_cached_nodes() -> None:
    body = pool_body()
    assert pool_view(body).cached_nodes is None
    body["status"] = {"cachedNodes": 3, "kopf": {"progress": {}}}
    assert pool_view(body).cached_nodes == 3


def test_observed_labels_from_node_list() -> None:
    key = prepull_node_label_key("ml", "llama")
    nodes = [
        {"metadata": {"name": "gpu-0", "labels": {key: "aaa", "other": "x"}}},
        {"metadata": {"name": "gpu-1", "labels": {"other": "x"}}},
        {"metadata": {"name": "gpu-2", "labels": {key: "bbb"}}},
    ]
    assert observed_node_labels(nodes, key) == {"gpu-0": "aaa", "gpu-2": "bbb"}


def test_label_patches_remove_first_then_set_only_what_differs() -> None:
    observed = {"gpu-0": "new", "gpu-1": "old", "gpu-9": "new"}
    desired = {"gpu-0": "new", "gpu-1": "new", "gpu-2": "new"}
    assert label_patches(observed, desired) == [
        NodeLabelPatch("gpu-9", None),
        NodeLabelPatch("gpu-1", "new"),
        NodeLabelPatch("gpu-2", "new"),
    ]
    assert label_patches(desired, desired) == []


def test_label_patch_is_a_merge_patch_whose_null_removes_the_label() -> None:
    assert NodeLabelPatch("gpu-0", None).merge_patch("k") == {"metadata": {"labels": {"k": None}}}
    assert NodeLabelPatch("gpu-0", "v").merge_patch("k") == {"metadata": {"labels": {"k": "v"}}}


def test_finalizer_is_held_only_while_labels_are_wanted() -> None:
    assert finalizer_change(False, {"gpu-0": "f"}) == "add"
    assert finalizer_change(True, {"gpu-0": "f"}) is None
    assert finalizer_change(True, {}) == "remove"
    assert finalizer_change(False, {}) is None


def test_finalizers_after_keeps_foreign_finalizers() -> None:
    assert finalizers_after(["x"], "add") == ["x", FINALIZER]
    assert finalizers_after(["x", FINALIZER], "add") == ["x", FINALIZER]
    assert finalizers_after([FINALIZER, "x"], "remove") == ["x"]
    assert finalizers_after([FINALIZER, "x"], None) == ["x", FINALIZER]
    assert finalizers_after(["x"], None) == ["x"]


def test_cached_node_count_counts_only_the_current_fingerprint() -> None:
    labels = {"gpu-0": "new", "gpu-1": "new", "gpu-2": "old"}
    assert cached_node_count(labels, "new") == 2
    assert cached_node_count(labels, "none-such") == 0
    assert cached_node_count(labels, None) == 0


# ---- the controller's use of these decisions, over an in-memory stand-in for the API --------
# (the same paths against the real apiserver: tests/e2e/test_prepull.py)


class MemoryApi:
    """Nodes and one pool; every call recorded as (verb, kind, name)."""

    def __init__(self, pool: dict[str, Any], nodes: list[str]) -> None:
        self.pool = copy.deepcopy(pool)
        self.pool["metadata"]["resourceVersion"] = "1"
        self.nodes: dict[str, dict[str, str]] = {name: {} for name in nodes}
        self.calls: list[tuple[str, str, str]] = []
        self.conflicts = 0
        self.labelled = asyncio.Event()

    async def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", kind, label_selector))
        return [
            {"metadata": {"name": name, "labels": dict(labels)}}
            for name, labels in self.nodes.items()
            if label_selector in labels
        ]

    async def merge_patch(
        self, ref: ObjectRef, patch: dict[str, Any], subresource: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(
            ("patch" + (f"/{subresource}" if subresource else ""), ref.kind, ref.name)
        )
        if ref.kind == "Node":
            for key, value in patch["metadata"]["labels"].items():
                if value is None:
                    self.nodes[ref.name].pop(key, None)
                else:
                    self.nodes[ref.name][key] = value
                    self.labelled.set()
            return {}
        if subresource == "status":
            self.pool.setdefault("status", {}).update(patch["status"])
        else:
            if self.conflicts:
                self.conflicts -= 1
                raise ApiError(409, "Conflict", '{"message": "the object has been modified"}')
            assert patch["metadata"]["resourceVersion"] == self.pool["metadata"]["resourceVersion"]
            self.pool["metadata"]["finalizers"] = patch["metadata"]["finalizers"]
        version = int(self.pool["metadata"]["resourceVersion"]) + 1
        self.pool["metadata"]["resourceVersion"] = str(version)
        return copy.deepcopy(self.pool)

    async def close(self) -> None:
        pass


def controller_with(api: MemoryApi) -> tuple[PrepullReconciler, WatchCache]:
    cache = WatchCache()
    controller = PrepullReconciler(cast(KubeClient, api), cache)
    cache.observe_pool(None, api.pool)
    return controller, cache


async def test_controller_labels_after_finalizer_then_an_idle_event_costs_nothing() -> None:
    body = pool_body()
    api = MemoryApi(body, ["gpu-0", "gpu-1"])
    controller, cache = controller_with(api)
    key = ("ml", "llama")
    label = prepull_node_label_key(*key)
    fingerprint = fingerprint_of(body)
    for node, uid in (("gpu-0", "a"), ("gpu-1", "b")):
        assert controller.observe_pod(None, prepull_pod(body, node, uid=uid)) == key
    await controller.reconcile(key)
    assert api.nodes == {"gpu-0": {label: fingerprint}, "gpu-1": {label: fingerprint}}
    assert api.pool["metadata"]["finalizers"] == [FINALIZER]
    assert api.pool["status"]["cachedNodes"] == 2
    verbs = [call[:2] for call in api.calls]
    # The finalizer is in place before the first label is written.
    assert verbs.index(("patch", "InferencePool")) < verbs.index(("patch", "Node"))

    # The pool's own echo (our writes coming back as an event) and a repeated pod event:
    # nothing to do, no request.
    api.calls.clear()
    cache.observe_pool(None, api.pool)
    controller.observe_pod(None, prepull_pod(body, "gpu-0", uid="a"))
    await controller.reconcile(key)
    assert api.calls == []


async def test_controller_pod_gone_unlabels_and_last_label_drops_finalizer() -> None:
    body = pool_body()
    api = MemoryApi(body, ["gpu-0", "gpu-1"])
    controller, cache = controller_with(api)
    key = ("ml", "llama")
    pods = [prepull_pod(body, node, uid=uid) for node, uid in (("gpu-0", "a"), ("gpu-1", "b"))]
    for pod in pods:
        controller.observe_pod(None, pod)
    await controller.reconcile(key)
    cache.observe_pool(None, api.pool)

    controller.observe_pod("DELETED", pods[0])
    await controller.reconcile(key)
    assert api.nodes["gpu-0"] == {}
    assert api.pool["status"]["cachedNodes"] == 1

    # Deletion: the last label goes, then the finalizer (and no status write for a dying pool).
    cache.observe_pool(None, api.pool)
    deleting = copy.deepcopy(api.pool)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["metadata"]["resourceVersion"] = str(int(deleting["metadata"]["resourceVersion"]) + 1)
    api.pool = copy.deepcopy(deleting)
    cache.observe_pool(None, deleting)
    api.calls.clear()
    await controller.reconcile(key)
    assert api.nodes == {"gpu-0": {}, "gpu-1": {}}
    assert api.pool["metadata"]["finalizers"] == []
    assert ("patch/status", "InferencePool", "llama") not in api.calls


async def test_controller_retries_a_conflict_on_the_finalizer() -> None:
    body = pool_body()
    api = MemoryApi(body, ["gpu-0"])
    api.conflicts = 1
    controller, _ = controller_with(api)
    key = ("ml", "llama")
    controller.observe_pod(None, prepull_pod(body, "gpu-0", uid="a"))
    await controller.reconcile(key)
    assert api.nodes["gpu-0"] == {}  # nothing labelled without the finalizer

    # kopf does not retry event handlers: the refresh loop retries at the pool's next tick.
    assert controller.needs_retry(key)
    await controller.reconcile(key)
    assert api.labelled.is_set()
    assert api.pool["metadata"]["finalizers"] == [FINALIZER]
    assert not controller.needs_retry(key)


async def test_controller_restores_a_finalizer_removed_by_hand() -> None:
    body = pool_body()
    api = MemoryApi(body, ["gpu-0"])
    controller, cache = controller_with(api)
    key = ("ml", "llama")
    controller.observe_pod(None, prepull_pod(body, "gpu-0", uid="a"))
    await controller.reconcile(key)
    cache.observe_pool(None, api.pool)
    assert api.pool["metadata"]["finalizers"] == [FINALIZER]

    api.pool["metadata"]["finalizers"] = []
    api.pool["metadata"]["resourceVersion"] = "99"
    cache.observe_pool(None, api.pool)
    await controller.reconcile(key)
    assert api.pool["metadata"]["finalizers"] == [FINALIZER]


async def test_the_refresh_loop_retries_a_failed_prepull_reconcile() -> None:
    body = pool_body()
    api = MemoryApi(body, ["gpu-0"])
    api.conflicts = 1
    prepull, cache = controller_with(api)
    key = ("ml", "llama")
    prepull.observe_pod(None, prepull_pod(body, "gpu-0", uid="a"))
    await prepull.reconcile(key)
    assert api.nodes["gpu-0"] == {}

    class PoolSyncs:
        """Stands in for the pool reconciler (tested in test_controller_reconcile.py)."""

        def __init__(self) -> None:
            self.triggers: list[str] = []

        async def sync(self, key: tuple[str, str], trigger: str) -> None:
            self.triggers.append(trigger)

    syncs = PoolSyncs()
    runtime = Runtime(
        settings=OperatorSettings(),
        client=cast(KubeClient, api),
        cache=cache,
        applier=Applier(cast(KubeClient, api)),
        metrics=OperatorMetrics(),
        reconciler=cast(Reconciler, syncs),
        prepull=prepull,
        loop=cast(RefreshLoop, None),
        indexed=asyncio.Event(),
    )
    await runtime.refresh(key, "tick")  # the pool's next tick
    assert syncs.triggers == ["tick"]
    assert api.nodes["gpu-0"] == {prepull_node_label_key(*key): fingerprint_of(body)}
    api.calls.clear()
    await runtime.refresh(key, "observe")  # nothing failed: no pre-pull work
    assert syncs.triggers == ["tick", "observe"] and api.calls == []
