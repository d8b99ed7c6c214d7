"""Hand edits of a pool's Deployment pod template (seen in managedFields) are reverted and
reported; warm replicas lose their cold-start autoscaler hints. Over the in-memory API of
test_controller_reconcile (the same paths on a real apiserver: tests/e2e/test_disruption.py)."""

from __future__ import annotations

import copy
from typing import Any

from controller_builders import make_pod
from test_controller_reconcile import MemoryApi, setup

from warmpool.controller.kube.watch import slim_deployment, template_editors
from warmpool.render.disruption import COLD_START_HINTS

KEY = ("ml", "llama")
EDIT = {
    "manager": "kubectl-edit",
    "operation": "Update",
    "apiVersion": "apps/v1",
    "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}},
}
SCALE = {
    "manager": "kubectl",
    "operation": "Update",
    "subresource": "scale",
    "fieldsV1": {"f:spec": {"f:replicas": {}}},
}
OWN = {"manager": "warmpool", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {}}}}


def events(api: MemoryApi) -> list[str]:
    return [kind for verb, kind in api.writes() if verb == "create"]


def edited(api: MemoryApi, generation: int) -> dict[str, Any]:
    deployment = copy.deepcopy(api.objects[("Deployment", "ml", "llama")])
    deployment["metadata"]["managedFields"] = [OWN, EDIT]
    deployment["metadata"]["generation"] = generation
    api.version += 1
    deployment["metadata"]["resourceVersion"] = str(api.version)
    return deployment


def test_template_editors_are_other_managers_of_the_template() -> None:
    assert template_editors({"metadata": {"managedFields": [OWN, SCALE]}}) == []
    assert template_editors({"metadata": {"managedFields": [OWN, EDIT, SCALE]}}) == ["kubectl-edit"]
    assert slim_deployment({"metadata": {"managedFields": [EDIT]}})["templateEditors"] == [
        "kubectl-edit"
    ]


async def test_a_hand_edit_is_reverted_once_and_reported() -> None:
    reconciler, api, cache = setup()
    await reconciler.sync(KEY, "create")
    cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])
    api.calls.clear()
    await reconciler.sync(KEY, "tick")
    assert api.writes() == []  # converged: an idle resync writes nothing
    cache.observe_deployment(None, edited(api, generation=2))
    await reconciler.sync(KEY, "observe")
    assert ("apply", "Deployment") in api.writes()
    assert events(api) == ["Event"]
    # The apply's response no longer lists the editor (its fields went back to the operator).
    cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])
    api.calls.clear()
    await reconciler.sync(KEY, "tick")
    assert api.writes() == []


async def test_fields_only_the_editor_set_are_reported_not_fought() -> None:
    reconciler, api, cache = setup()
    await reconciler.sync(KEY, "create")
    live = edited(api, generation=2)
    cache.observe_deployment(None, live)
    real_apply = api.apply

    async def apply_keeping_the_editor(manifest: dict[str, Any]) -> dict[str, Any]:
        result = await real_apply(manifest)
        # An added field the operator never sets stays the editor's after a forced apply.
        result["metadata"]["managedFields"] = [OWN, EDIT]
        result["metadata"]["generation"] = 2
        return result

    api.apply = apply_keeping_the_editor  # type: ignore[method-assign]
    api.calls.clear()
    await reconciler.sync(KEY, "observe")
    assert ("apply", "Deployment") in api.writes()
    kept = {**live, "metadata": {**live["metadata"], "resourceVersion": str(api.version + 1)}}
    cache.observe_deployment(None, kept)
    api.calls.clear()
    await reconciler.sync(KEY, "tick")
    await reconciler.sync(KEY, "tick")
    assert api.writes() == []  # same generation: known, reported once, not re-applied


async def test_warm_replicas_lose_the_cold_start_hints_once() -> None:
    reconciler, api, cache = setup()
    cold = make_pod("llama-cold")
    warm = make_pod(
        "llama-warm",
        initialized="2026-01-01T00:00:30Z",
        containers_ready="2026-01-01T00:00:35Z",
        warm="2026-01-01T00:00:40Z",
    )
    for pod in (cold, warm):
        pod["metadata"]["annotations"] = dict(COLD_START_HINTS)
        api._store({"apiVersion": "v1", "kind": "Pod", **pod})
        cache.observe_pod(None, api.objects[("Pod", "ml", pod["metadata"]["name"])])
    await reconciler.sync(KEY, "create")
    assert [call for call in api.writes() if call[1] == "Pod"] == [("patch", "Pod")]
    assert not api.objects[("Pod", "ml", "llama-warm")]["metadata"].get("annotations")
    assert api.objects[("Pod", "ml", "llama-cold")]["metadata"]["annotations"] == COLD_START_HINTS
    api.calls.clear()
    await reconciler.sync(KEY, "tick")
    assert [call for call in api.writes() if call[1] == "Pod"] == []
