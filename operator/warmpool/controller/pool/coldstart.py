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

Two waits are split out of those phases when the operator can see them:

- node provisioning: out of scheduling, the time until the pod's node was created, when the
  node appeared after the pod (the pod waited unschedulable for an autoscaler's new node);
- image pull: out of whichever phases they fell in, the image pulls the kubelet reports in its
  `Pulled` Events (`Successfully pulled image "..." in 2.5s ...`: the interval ending at the
  Event's time).

Kubernetes condition times have one-second resolution, so a phase may read 0 s or be off by
up to a second; negative spans are clamped to 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


Interval = tuple[datetime, datetime]

#: `Successfully pulled image "x" in 2.5s (2.5s including waiting). Image size: ...`: the first
#: duration is the pull itself (a Go duration: 1m2.5s, 850ms).
_PULLED = re.compile(r'^Successfully pulled image "[^"]*" in ([0-9.hmsuµ]+)')
_GO_DURATION_PART = re.compile(r"([0-9.]+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration string (`1m2.5s`, `850ms`); None when it is not one."""
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def image_pulls(events: Iterable[ObjView]) -> list[Interval]:
    """Pull intervals from a pod's kubelet Events (reason Pulled), oldest first."""
    pulls: list[Interval] = []
    for event in events:
        if event.get("reason") != "Pulled":
            continue
        match = _PULLED.match(str(event.get("message") or event.get("note") or ""))
        seconds = go_duration_seconds(match.group(1)) if match else None
        end = parse_time(
            event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
        )
        if seconds is None or end is None:
            continue
        pulls.append((end - timedelta(seconds=seconds), end))
    return sorted(pulls)


def _overlap(intervals: Sequence[Interval], start: datetime, end: datetime) -> float:
    """Seconds of [start, end] covered by the union of `intervals`."""
    covered, cursor = 0.0, start
    for a, b in sorted(intervals):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            covered += (b - a).total_seconds()
            cursor = b
    return covered


def pod_cold_start(
    pod: ObjView, *, node_created: datetime | None = None, pulls: Sequence[Interval] = ()
) -> ColdStart | None:
    """The cold start of a warm pod; None while the pod is not warm or lacks the times.

    `node_created`: when the pod's node was created; `pulls`: its image pulls (`image_pulls`).
    Without them, nothing is split out."""
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
    provisioned = created
    if node_created is not None:
        provisioned = min(max(node_created, created), scheduled)

    def pulled(start: datetime, end: datetime) -> float:
        return round(_overlap(pulls, start, end), 3)

    prefetch_pulls = pulled(scheduled, initialized)
    server_pulls = pulled(initialized, server_ready)
    warmup_pulls = pulled(server_ready, warm)
    return ColdStart(
        pod=str(meta.get("name", "")),
        started_at=created,
        total_seconds=_since(created, warm),
        scheduling_seconds=_since(provisioned, scheduled),
        prefetch_seconds=max(0.0, round(_since(scheduled, initialized) - prefetch_pulls, 3)),
        server_start_seconds=max(0.0, round(_since(initialized, server_ready) - server_pulls, 3)),
        warmup_seconds=max(0.0, round(_since(server_ready, warm) - warmup_pulls, 3)),
        node_provisioning_seconds=_since(created, provisioned),
        image_pull_seconds=round(prefetch_pulls + server_pulls + warmup_pulls, 3),
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
    """`cold start 41.2s: scheduling 0.4s, prefetch 30.1s, server 4.4s, warm-up 6.3s`, with
    `node provisioning` and `image pull` first when there were any."""
    split = [
        f"{label} {seconds:.1f}s, "
        for label, seconds in (
            ("node provisioning", cold_start.node_provisioning_seconds),
            ("image pull", cold_start.image_pull_seconds),
        )
        if seconds > 0
    ]
    return (
        f"cold start {cold_start.total_seconds:.1f}s: "
        + "".join(split)
        + f"scheduling {cold_start.scheduling_seconds:.1f}s, "
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
        "node_provisioning": cold_start.node_provisioning_seconds,
        "image_pull": cold_start.image_pull_seconds,
    }
