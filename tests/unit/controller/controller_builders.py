"""Shared builders of pods and pools for the controller's unit tests (plain dicts, as the API
returns them)."""

from __future__ import annotations

from typing import Any

WARM = "warmpool.dev/warm"


def cond(kind: str, status: str, at: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "lastTransitionTime": at, "message": message}


def make_pod(
    name: str = "llama-abc",
    *,
    created: str = "2026-01-01T00:00:00Z",
    scheduled: str | None = "2026-01-01T00:00:01Z",
    initialized: str | None = None,
    containers_ready: str | None = None,
    warm: str | None = None,
    warm_message: str = "",
    prefetch: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    conditions = []
    if scheduled:
        conditions.append(cond("PodScheduled", "True", scheduled))
    conditions.append(
        cond("Initialized", "True" if initialized else "False", initialized or created)
    )
    conditions.append(
        cond(
            "ContainersReady", "True" if containers_ready else "False", containers_ready or created
        )
    )
    conditions.append(cond(WARM, "True" if warm else "False", warm or created, warm_message))
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "creationTimestamp": created,
            "labels": {"warmpool.dev/pool": "llama"},
        },
        "status": {"phase": "Running" if scheduled else "Pending", "conditions": conditions},
    }
    if prefetch is not None:
        pod["status"]["initContainerStatuses"] = [{"name": "prefetch", **prefetch}]
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T01:00:00Z"
    return pod


def make_pool(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": {"uri": "s3://models/llama"}}
    base.update(spec)
    return {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 2},
        "spec": base,
    }
