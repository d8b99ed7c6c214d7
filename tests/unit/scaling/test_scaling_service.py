"""The service's pool-level glue: wake annotation, external owner, no metrics source."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from warmpool.api.resource import WAKE_ANNOTATION, InferencePool
from warmpool.scaling.service import evaluate, wake_time

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
    decision = await evaluate(woken, NOW, None, current_replicas=0, ready_replicas=0)
    assert decision.desired == 1
    assert not decision.metrics_available
    assert decision.last_request_time == datetime(2026, 6, 1, 11, 59, 59, tzinfo=UTC)


async def test_no_metrics_source_holds() -> None:
    decision = await evaluate(pool(), NOW, None, current_replicas=2, ready_replicas=2)
    assert decision.desired == 2 and not decision.metrics_available
    assert "no metrics source configured" in decision.reason


async def test_external_owner_stands_aside() -> None:
    decision = await evaluate(pool(replicas=5), NOW, None, current_replicas=2, ready_replicas=2)
    assert decision.desired == 5 and not decision.owned


async def test_state_from_status_is_used_and_returned() -> None:
    manifest = pool().model_dump(by_alias=True, exclude_none=True, mode="json")
    last = NOW.timestamp() - 30
    period = [last - 700, 600.0, 1.0, 0.0, 0.0, 1.0]
    manifest["status"] = {"scalerState": {"version": 2, "lastRequestAt": last, "periods": [period]}}
    decision = await evaluate(
        InferencePool.from_manifest(manifest), NOW, None, current_replicas=1, ready_replicas=1
    )
    assert decision.new_state["lastRequestAt"] == last
    assert decision.new_state["periods"] == [period]
