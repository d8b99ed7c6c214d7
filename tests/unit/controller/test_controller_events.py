"""The Event every pool report posts (pure part: `build_event`)."""

from __future__ import annotations

from datetime import UTC, datetime

from warmpool.controller.kube.events import MAX_NOTE, build_event

POOL = {"metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", "resourceVersion": "7"}}


def event(note: str) -> dict[str, object]:
    return build_event(
        POOL,
        type="Warning",
        reason="RolloutFallback",
        action="RollOut",
        note=note,
        now=datetime(2026, 12, 5, tzinfo=UTC),
        instance="operator-0",
        suffix="abc",
    )


def test_a_note_is_cut_to_the_apis_limit_for_every_caller() -> None:
    # events.k8s.io/v1 refuses a note over 1 KiB: the reporters pass notes whole and rely on
    # this cut (a refused Event would be lost, only logged).
    assert MAX_NOTE == 1024
    assert event("x" * 5000)["note"] == "x" * 1024
    assert event("short")["note"] == "short"


def test_the_event_regards_the_pool() -> None:
    built = event("n")
    assert built["metadata"] == {"name": "llama.abc", "namespace": "ml"}
    assert built["regarding"] == {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "name": "llama",
        "namespace": "ml",
        "uid": "u-1",
        "resourceVersion": "7",
    }
    assert (built["type"], built["reason"], built["action"]) == (
        "Warning",
        "RolloutFallback",
        "RollOut",
    )
