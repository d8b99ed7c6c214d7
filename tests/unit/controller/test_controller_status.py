from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller_builders import make_pod

from warmpool.api.status import InferencePoolStatus, Phase, ScalingStatus
from warmpool.controller.pool.status import (
    StatusInputs,
    compute_status,
    dump_status,
    status_patch,
    weights_cached,
)
from warmpool.scaling.policy import Decision
from warmpool.scaling.state import PolicyState

NOW = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def decision(desired: int, reason: str = "warm floor 1", **kwargs: object) -> Decision:
    base: dict = {
        "desired": desired,
        "reason": reason,
        "effective_floor": 1,
        "metrics_available": True,
        "observed_demand": None,
        "state": PolicyState(),
    }
    base.update(kwargs)
    return Decision(**base)


def inputs(pods: list, desired: int = 1, **kwargs: object) -> StatusInputs:
    base: dict = {
        "name": "llama",
        "generation": 3,
        "warmup_enabled": True,
        "pods": pods,
        "previous": InferencePoolStatus(),
        "now": NOW,
        "scaling": decision(desired),
    }
    base.update(kwargs)
    return StatusInputs(**base)


def conditions(status: InferencePoolStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_phase_follows_the_furthest_pod() -> None:
    assert compute_status(inputs([])).phase == Phase.PENDING
    assert compute_status(inputs([make_pod()])).phase == Phase.PREFETCHING
    initialized = make_pod(initialized="2026-01-01T00:00:30Z")
    assert compute_status(inputs([initialized])).phase == Phase.WARMING_UP
    warm = make_pod(
        initialized="2026-01-01T00:00:30Z",
        containers_ready="2026-01-01T00:00:35Z",
        warm="2026-01-01T00:00:40Z",
    )
    status = compute_status(inputs([warm, initialized], desired=2))
    assert status.phase == Phase.READY
    assert (status.replicas, status.ready_replicas, status.warm_replicas) == (2, 1, 1)
    assert status.desired_replicas == 2
    assert status.selector == "warmpool.dev/pool=llama"
    assert status.observed_generation == 3
    assert conditions(status)["Ready"] == ("True", "Serving")
    assert conditions(status)["Warm"] == ("False", "WarmingUp")


def test_terminating_pods_do_not_count() -> None:
    warm = make_pod(warm="2026-01-01T00:00:40Z", deleting=True)
    status = compute_status(inputs([warm], desired=0))
    assert status.replicas == 0
    assert status.phase == Phase.SCALED_TO_ZERO
    assert conditions(status)["ScaledToZero"] == ("True", "ScaledToZero")


def test_degraded_keeps_last_decision_and_names_the_field() -> None:
    previous = InferencePoolStatus(desired_replicas=3, scaling=ScalingStatus(reason="traffic"))
    message = "spec.scaling.schedules[0].timezone: unknown time zone 'Mars/Olympus'"
    status = compute_status(inputs([], scaling=None, degraded=message, previous=previous))
    assert status.phase == Phase.DEGRADED
    assert status.desired_replicas == 3
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason, degraded.message) == ("True", "InvalidSpec", message)


def test_last_transition_time_is_kept_while_status_stays() -> None:
    first = compute_status(inputs([make_pod()]))
    later = NOW + timedelta(minutes=5)
    second = compute_status(inputs([make_pod()], previous=first, now=later))
    assert second.conditions == first.conditions
    warm = make_pod(initialized="2026-01-01T00:00:30Z", warm="2026-01-01T00:00:40Z")
    third = compute_status(inputs([warm], previous=second, now=later))
    ready = next(c for c in third.conditions if c.type == "Ready")
    degraded = next(c for c in third.conditions if c.type == "Degraded")
    assert ready.last_transition_time == later
    assert degraded.last_transition_time == NOW


def test_status_patch_is_none_when_nothing_changed() -> None:
    status = compute_status(inputs([make_pod()]))
    raw = {**dump_status(status), "kopf": {"progress": {}}}
    assert status_patch(raw, status) is None
    # Times written in another format still compare equal.
    for item in raw["conditions"]:
        item["lastTransitionTime"] = item["lastTransitionTime"].replace("Z", "+00:00")
    assert status_patch(raw, status) is None


def test_status_patch_carries_changes_and_removes_stale_keys() -> None:
    status = compute_status(inputs([make_pod()]))
    raw = {**dump_status(status), "lastColdStart": {"bogus": 1}}
    patch = status_patch(raw, status)
    assert patch is not None
    assert patch["status"]["lastColdStart"] is None
    assert "kopf" not in patch["status"]
    assert status_patch({}, status) == {"status": dump_status(status)}


def test_weights_cached_reports_the_termination_message() -> None:
    failed = make_pod(
        prefetch={
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 3, "message": "sha256 mismatch: model.onnx"}},
        }
    )
    value = weights_cached([failed])
    assert (value.status, value.reason) == ("False", "PrefetchFailed")
    assert "sha256 mismatch: model.onnx" in value.message
    done = make_pod(prefetch={"state": {"terminated": {"exitCode": 0}}})
    assert weights_cached([done]).status == "True"
    assert weights_cached([]).status == "Unknown"
    running = make_pod(prefetch={"state": {"running": {}}})
    assert weights_cached([running]).reason == "Prefetching"


def test_without_warmup_ready_means_warm() -> None:
    pod = make_pod(initialized="2026-01-01T00:00:30Z")
    pod["status"]["conditions"].append(
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:35Z"}
    )
    status = compute_status(inputs([pod], warmup_enabled=False))
    assert status.warm_replicas == 1


def test_volatile_scaler_state_alone_causes_no_write() -> None:
    stored = {"version": 1, "lastEvalAt": 1.0, "gaps": [30.0], "recommendations": [[1.0, 1]]}
    status = compute_status(inputs([make_pod()])).model_copy(update={"scaler_state": stored})
    raw = dump_status(status)
    ticked = {**stored, "lastEvalAt": 11.0, "recommendations": [[11.0, 1]]}
    assert status_patch(raw, status.model_copy(update={"scaler_state": ticked})) is None
    learned = {**ticked, "gaps": [30.0, 45.0]}
    patch = status_patch(raw, status.model_copy(update={"scaler_state": learned}))
    assert patch is not None
    assert patch["status"]["scalerState"]["lastEvalAt"] == 11.0


def test_numbers_in_the_scaling_reason_alone_cause_no_write() -> None:
    def with_reason(reason: str) -> InferencePoolStatus:
        status = compute_status(inputs([make_pod()]))
        return status.model_copy(
            update={"scaling": status.scaling.model_copy(update={"reason": reason})}
        )

    raw = dump_status(with_reason("desired 1: idle 35s < scaleToZeroAfterSeconds 600s"))
    assert (
        status_patch(raw, with_reason("desired 1: idle 45s < scaleToZeroAfterSeconds 600s")) is None
    )
    assert status_patch(raw, with_reason("desired 0: idle 600s >= scaleToZeroAfterSeconds 600s"))


def test_cached_nodes_belongs_to_the_prepull_controller() -> None:
    status = compute_status(inputs([make_pod()]))
    raw = {**dump_status(status), "cachedNodes": 2}
    assert status_patch(raw, status) is None
    changed = status.model_copy(update={"desired_replicas": 2})
    patch = status_patch(raw, changed)
    assert patch is not None
    assert "cachedNodes" not in patch["status"]


def test_the_decision_is_rendered_into_scaling_status_and_metrics_condition() -> None:
    last_request = datetime(2026, 1, 1, 0, 59, tzinfo=UTC)
    state = PolicyState(last_request_at=last_request.timestamp(), last_burst_at=0.0)
    status = compute_status(inputs([], scaling=decision(2, "demand 2", state=state)))
    assert status.desired_replicas == 2
    assert (status.scaling.owner, status.scaling.reason) == ("warmpool", "demand 2")
    assert status.scaling.last_request_time == last_request
    assert status.scaling.last_scale_time == NOW  # 0 -> 2
    assert status.scaler_state == state.to_dict()
    assert conditions(status)["MetricsAvailable"] == ("True", "TrafficRead")
    # The same decision a tick later: no new scale time.
    later = compute_status(
        inputs([], scaling=decision(2, state=state), previous=status, now=NOW + timedelta(1))
    )
    assert later.scaling.last_scale_time == NOW

    unread = compute_status(inputs([], scaling=decision(1, metrics_available=False)))
    assert conditions(unread)["MetricsAvailable"] == ("False", "MetricsUnavailable")
    external = compute_status(inputs([], scaling=decision(5, owned=False)))
    assert external.scaling.owner == "external"
    assert conditions(external)["MetricsAvailable"] == ("Unknown", "ExternalOwner")
