"""The pods/status patch the writer sends (shape only; the real apiserver is the e2e tier)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warmpool.warmup.condition import (
    Condition,
    build_condition_patch,
    find_condition,
    next_condition,
)

NOW = datetime(2026, 11, 27, 21, 0, 0, 500000, tzinfo=UTC)
TYPE = "warmpool.dev/warm"


def test_patch_sets_exactly_one_condition_merged_by_type() -> None:
    patch = build_condition_patch(Condition(TYPE, "True", "WarmupSucceeded", "requests=3", NOW))
    assert patch == {
        "status": {
            "conditions": [
                {
                    "type": TYPE,
                    "status": "True",
                    "reason": "WarmupSucceeded",
                    "message": "requests=3",
                    "lastTransitionTime": "2026-11-27T21:00:00Z",
                }
            ]
        }
    }
    # Nothing else of the pod: no spec, no metadata, no other status field.
    assert list(patch) == ["status"] and list(patch["status"]) == ["conditions"]


def test_transition_time_is_kept_when_the_status_does_not_change() -> None:
    earlier = NOW - timedelta(minutes=5)
    current = {"type": TYPE, "status": "False", "lastTransitionTime": "2026-11-27T20:55:00Z"}
    same = next_condition(TYPE, "False", "NotSteady", "", current, NOW)
    assert same.last_transition_time == earlier.replace(microsecond=0)
    flipped = next_condition(TYPE, "True", "WarmupSucceeded", "", current, NOW)
    assert flipped.last_transition_time == NOW
    fresh = next_condition(TYPE, "True", "WarmupSucceeded", "", None, NOW)
    assert fresh.last_transition_time == NOW


def test_transition_time_from_a_deserialised_datetime() -> None:
    earlier = NOW - timedelta(hours=1)
    current = {"type": TYPE, "status": "True", "lastTransitionTime": earlier}
    assert next_condition(TYPE, "True", "r", "", current, NOW).last_transition_time == earlier


def test_find_condition_among_kubelet_conditions() -> None:
    pod = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": TYPE, "status": "True"},
            ]
        }
    }
    assert find_condition(pod, TYPE) == {"type": TYPE, "status": "True"}
    assert find_condition(pod, "Other") is None
    assert find_condition({"status": {"conditions": None}}, TYPE) is None
    assert find_condition({}, TYPE) is None
