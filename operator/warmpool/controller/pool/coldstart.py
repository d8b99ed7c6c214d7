"""Cold-start accounting (pure): where the time from a pod's creation to warm went.

Phases, from what the pod itself reports:

- scheduling: creationTimestamp -> PodScheduled's lastTransitionTime
- prefetch: PodScheduled -> Initialized (init containers done: the weights are fetched and
  verified; with the warm-up program as a native sidecar, Initialized also waits for it to
  start, which takes milliseconds)
- server start: Initialized -> Triton ready, from `serverReadyAt=` in the warm gate condition's
  message (the warm-up sidecar writes it; the format is `warmpool.contract`'s), else
  ContainersReady's lastTransitionTime
- warm-up: Triton ready -> warm, from `warmAt=` in that message when present (sub-second), else the
  gate condition's lastTransitionTime (whole seconds)

Kubernetes condition times have one-second resolution, so a phase may read 0 s or be off by
up to a second; negative spans are clamped to 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from warmpool.api.status import ColdStart
from warmpool.contract import (
    SERVER_READY_AT,
    WARM_AT,
    WARM_CONDITION,
    ObjView,
    parse_gate_message,
    parse_time,
)


def condition(pod: ObjView, kind: str) -> ObjView | None:
    for item in (pod.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def condition_true(pod: ObjView, kind: str) -> bool:
    found = condition(pod, kind)
    return found is not None and found.get("status") == "True"


def _since(start: datetime, end: datetime) -> float:
    return max(0.0, round((end - start).total_seconds(), 3))


def warm_time(pod: ObjView) -> datetime | None:
    """When the pod became warm (gate True), or None while it is not."""
    gate = condition(pod, WARM_CONDITION)
    if gate is None or gate.get("status") != "True":
        return None
    fields, _ = parse_gate_message(str(gate.get("message") or ""))
    return parse_time(fields.get(WARM_AT)) or parse_time(gate.get("lastTransitionTime"))


def pod_cold_start(pod: ObjView) -> ColdStart | None:
    """The cold start of a warm pod; None while the pod is not warm or lacks the times."""
    meta = pod.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    warm = warm_time(pod)
    gate = condition(pod, WARM_CONDITION)
    if created is None or warm is None or gate is None:
        return None
    scheduled_cond = condition(pod, "PodScheduled")
    initialized_cond = condition(pod, "Initialized")
    ready_cond = condition(pod, "ContainersReady")
    scheduled = parse_time((scheduled_cond or {}).get("lastTransitionTime")) or created
    initialized = parse_time((initialized_cond or {}).get("lastTransitionTime")) or scheduled
    fields, _ = parse_gate_message(str(gate.get("message") or ""))
    server_ready = parse_time(fields.get(SERVER_READY_AT))
    if server_ready is None and ready_cond is not None and ready_cond.get("status") == "True":
        server_ready = parse_time(ready_cond.get("lastTransitionTime"))
    if server_ready is None:
        server_ready = initialized
    # Clamp the chain so the phases add up to the total even with second-resolution times.
    scheduled = min(max(scheduled, created), warm)
    initialized = min(max(initialized, scheduled), warm)
    server_ready = min(max(server_ready, initialized), warm)
    return ColdStart(
        pod=str(meta.get("name", "")),
        started_at=created,
        total_seconds=_since(created, warm),
        scheduling_seconds=_since(created, scheduled),
        prefetch_seconds=_since(scheduled, initialized),
        server_start_seconds=_since(initialized, server_ready),
        warmup_seconds=_since(server_ready, warm),
    )


def finished_at(cold_start: ColdStart) -> datetime:
    """When a reported cold start ended (the pod became warm)."""
    return cold_start.started_at + timedelta(seconds=cold_start.total_seconds)


def new_cold_starts(pods: Iterable[ObjView], last: ColdStart | None) -> list[ColdStart]:
    """Cold starts that ended after `last` (the one already reported), oldest first.

    The watermark is the end of the last reported cold start, which the pool's status keeps, so
    an operator restart neither repeats nor loses a report.
    """
    watermark = finished_at(last) if last is not None else None
    found: list[ColdStart] = []
    for pod in pods:
        measured = pod_cold_start(pod)
        if measured is None:
            continue
        if last is not None and measured.pod == last.pod:
            continue
        if watermark is not None and finished_at(measured) <= watermark:
            continue
        found.append(measured)
    return sorted(found, key=finished_at)


def describe(cold_start: ColdStart) -> str:
    """`cold start 41.2s: scheduling 0.4s, prefetch 30.1s, server 4.4s, warm-up 6.3s`."""
    return (
        f"cold start {cold_start.total_seconds:.1f}s: "
        f"scheduling {cold_start.scheduling_seconds:.1f}s, "
        f"prefetch {cold_start.prefetch_seconds:.1f}s, "
        f"server {cold_start.server_start_seconds:.1f}s, "
        f"warm-up {cold_start.warmup_seconds:.1f}s"
        f" (pod {cold_start.pod})"
    )


def phase_seconds(cold_start: ColdStart) -> dict[str, float]:
    """Seconds per phase label of the histogram."""
    return {
        "total": cold_start.total_seconds,
        "scheduling": cold_start.scheduling_seconds,
        "prefetch": cold_start.prefetch_seconds,
        "server_start": cold_start.server_start_seconds,
        "warmup": cold_start.warmup_seconds,
    }
