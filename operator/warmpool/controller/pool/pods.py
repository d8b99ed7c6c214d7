"""The pool's server pods counted by how far they got, and the condition value shape the
status and roll-out modules share (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from warmpool.contract import WARM_CONDITION, ObjView
from warmpool.controller.pool.coldstart import condition_true

Status = Literal["True", "False", "Unknown"]

MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ConditionValue:
    """A condition before its transition time is known."""

    status: Status
    reason: str
    message: str = ""


@dataclass(frozen=True)
class PodCounts:
    """The pool's live (not terminating) server pods, by how far they got."""

    total: int = 0
    scheduled: int = 0
    initialized: int = 0
    ready: int = 0
    warm: int = 0


def live_pods(pods: Sequence[ObjView]) -> list[ObjView]:
    """Pods that count: not terminating, not finished."""
    return [
        pod
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def is_warm(pod: ObjView, warmup_enabled: bool) -> bool:
    """Warm: the readiness gate is open (or, without warm-up, the pod is Ready)."""
    return condition_true(pod, WARM_CONDITION if warmup_enabled else "Ready")


def count_pods(pods: Sequence[ObjView], warmup_enabled: bool) -> PodCounts:
    live = live_pods(pods)
    return PodCounts(
        total=len(live),
        scheduled=sum(condition_true(p, "PodScheduled") for p in live),
        initialized=sum(condition_true(p, "Initialized") for p in live),
        ready=sum(condition_true(p, "ContainersReady") for p in live),
        warm=sum(is_warm(p, warmup_enabled) for p in live),
    )
