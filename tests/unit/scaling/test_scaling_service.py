"""The decision's boundary: wake annotation, external owner, no metrics source, state passed in
and out explicitly, and the scaler's memory between evaluations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from warmpool.api.resource import InferencePool
from warmpool.contract import WAKE_ANNOTATION
from warmpool.scaling.service import Scaler, evaluate, wake_time
from warmpool.scaling.state import PolicyState

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def pool(annotations: dict[str, str] | None = None, **spec: Any) -> InferencePool:
    return InferencePool.from_manifest(
        {
            "metadata": {"name": "llama", "namespace": "ml", "annotations": annotations or {}},
            "spec": {
                "model": {"uri": "s3://models/llama"},
                "scaling": {"warmFloor": 0, "scaleToZeroAfterSeconds": 60},
                **spec,
            },
        }
    )


def test_wake_time_parses_rfc3339_and_ignores_garbage() -> None:
    woken = pool({WAKE_ANNOTATION: "2026-06-01T11:59:58.123Z"})
    assert wake_time(woken) == datetime(2026, 6, 1, 11, 59, 58, 123000, tzinfo=UTC)
    assert wake_time(pool({WAKE_ANNOTATION: "yesterday"})) is None
    assert wake_time(pool()) is None


async def test_wake_scales_pool_at_zero_without_metrics() -> None:
    woken = pool({WAKE_ANNOTATION: "2026-06-01T11:59:59Z"})
    decision = await evaluate(woken, PolicyState(), NOW, None, current_replicas=0, ready_replicas=0)
    assert decision.desired == 1
    assert not decision.metrics_available
    assert (
        decision.state.last_request_at == datetime(2026, 6, 1, 11, 59, 59, tzinfo=UTC).timestamp()
    )


async def test_a_wake_older_than_the_last_evaluation_still_lifts_zero_within_the_hold() -> None:
    # The activator stamped its wake just before an evaluation that ran without it (or the
    # Deployment's new replicas are not in the watch yet): the pool at zero still gets one.
    woken = pool({WAKE_ANNOTATION: "2026-06-01T11:59:30Z"})
    state = PolicyState(last_eval_at=NOW.timestamp() - 10, last_request_at=None)
    decision = await evaluate(woken, state, NOW, None, current_replicas=0, ready_replicas=0)
    assert decision.desired == 1
    # Past the hold (scaleToZeroAfterSeconds 60), an old wake lifts nothing.
    late = NOW + timedelta(seconds=60)
    state = PolicyState(last_eval_at=late.timestamp() - 10)
    decision = await evaluate(woken, state, late, None, current_replicas=0, ready_replicas=0)
    assert decision.desired == 0


async def test_no_metrics_source_holds() -> None:
    decision = await evaluate(
        pool(), PolicyState(), NOW, None, current_replicas=2, ready_replicas=2
    )
    assert decision.desired == 2 and not decision.metrics_available
    assert "no metrics source configured" in decision.reason


async def test_external_owner_stands_aside_and_keeps_the_state() -> None:
    state = PolicyState(last_request_at=NOW.timestamp() - 30, gaps=[600.0])
    decision = await evaluate(
        pool(replicas=5), state, NOW, None, current_replicas=2, ready_replicas=2
    )
    assert decision.desired == 5 and not decision.owned
    assert decision.state == state


async def test_state_passed_in_is_used_and_returned() -> None:
    last = NOW.timestamp() - 30
    state = PolicyState.from_dict({"version": 1, "lastRequestAt": last, "gaps": [600.0]})
    decision = await evaluate(pool(), state, NOW, None, current_replicas=1, ready_replicas=1)
    assert decision.state.to_dict()["lastRequestAt"] == last
    assert decision.state.gaps == [600.0]
    assert state.last_eval_at is None  # the caller's state is never mutated


async def test_the_scaler_starts_from_the_stored_state_then_keeps_its_own() -> None:
    scaler = Scaler(None, interval_seconds=10)
    stored = {"version": 1, "lastRequestAt": NOW.timestamp() - 30, "gaps": [600.0]}
    first = await scaler.decision_for(
        pool(), stored, NOW, "tick", current_replicas=1, ready_replicas=1
    )
    assert first.state.gaps == [600.0]
    # A pod event reuses the decision: one evaluation per tick.
    later = NOW + timedelta(seconds=5)
    again = await scaler.decision_for(
        pool(), None, later, "observe", current_replicas=1, ready_replicas=1
    )
    assert again is first
    # The next tick evaluates from the scaler's own state, not the (older) stored one.
    tick = NOW + timedelta(seconds=10)
    second = await scaler.decision_for(
        pool(), None, tick, "tick", current_replicas=1, ready_replicas=1
    )
    assert second.state.last_eval_at == tick.timestamp()
    assert second.state.gaps == [600.0]
    scaler.forget(("ml", "llama"))
    fresh = await scaler.decision_for(
        pool(), None, tick, "observe", current_replicas=1, ready_replicas=1
    )
    assert fresh.state.gaps == []
