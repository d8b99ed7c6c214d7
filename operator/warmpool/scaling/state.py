"""The scaling policy's memory, stored in the pool's `status.scalerState`.

The operator may restart at any time; everything the policy needs to resume (when traffic was
last seen, the pool's idle-gap history, the recommendations inside the scale-down stabilization
window, the busy-period history and the current warm plans) lives here, as a small JSON dict.
Its size is bounded: at most `MAX_PERIODS` busy periods (about 9 KiB of JSON) and
`MAX_RECOMMENDATIONS` recommendations, so the status object never grows with the pool's age.

Times are Unix epoch seconds (floats): JSON-friendly and free of time-zone ambiguity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from warmpool.scaling.history import MAX_PERIODS, Period

#: Version of the stored layout; an unknown version is discarded (the policy starts afresh,
#: which is safe: a fresh state never scales to zero before a full idle timeout).
#: Version 2 (busy periods and cost plans) replaced version 1's bare idle gaps: a version-1
#: state starts afresh, and the pool relearns its pattern.
STATE_VERSION = 2
#: Recommendations kept for the stabilization window (a monotone max-queue, usually a handful).
MAX_RECOMMENDATIONS = 64
#: Keys of the stored state that change on every evaluation (the time of the evaluation, of the
#: last unknown sample, the stabilization window's entries). They alone are no reason to write
#: the pool's status: the operator keeps the live state in memory and persists it with the next
#: real change; a restart resumes from a slightly older state, which the policy treats as safe.
VOLATILE_KEYS = frozenset({"lastEvalAt", "lastUnknownAt", "lastColdAt", "recommendations"})


def lasting_part(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored state without its `VOLATILE_KEYS`: what a change of is worth a status write."""
    if stored is None:
        return None
    return {key: value for key, value in stored.items() if key not in VOLATILE_KEYS}


@dataclass
class PolicyState:
    """What the policy remembers between evaluations (mutable working copy)."""

    #: Time of the latest traffic seen (a positive demand sample or a wake request).
    last_request_at: float | None = None
    #: Time of the latest evaluation (to notice time going backwards).
    last_eval_at: float | None = None
    #: First evaluation of this pool: a pool never seen busy is idle since then.
    observed_since: float | None = None
    #: Latest time the traffic was unknown (metrics unavailable or a missing sample): idle time
    #: is only counted from after it, and a gap spanning it is not learned.
    last_unknown_at: float | None = None
    #: Latest evaluation that found no ready replica: demand then is mostly requests held for
    #: the cold start, a backlog that drains once replicas are warm.
    last_cold_at: float | None = None
    #: Finished busy periods, oldest first (at most MAX_PERIODS; `warmpool.scaling.history`).
    periods: list[Period] = field(default_factory=list)
    #: The busy period in progress: its start, the idle gap before it, its weight and the
    #: traffic it carried so far (`warmpool.scaling.history.Period`).
    busy_start: float | None = None
    busy_gap: float = 0.0
    busy_weight: float = 1.0
    busy_mass: float = 0.0
    #: Whether it started with no warm replica (None: not evaluated since it started).
    busy_cold: bool | None = None
    #: Whether it was started by a wake (its start moves to its first sample).
    busy_from_wake: bool = False
    #: Start of the latest burst (the anchor of the burst plan).
    last_burst_at: float | None = None
    #: The warm plan after the last request: its reference time and windows [start, end,
    #: prewarm 0/1] in seconds after it (`warmpool.scaling.cost`); recomputed once per idle
    #: period, not per evaluation.
    request_plan_at: float | None = None
    request_plan: list[list[float]] = field(default_factory=list)
    #: The warm plan anchored on the last burst's start, same form.
    burst_plan_at: float | None = None
    burst_plan: list[list[float]] = field(default_factory=list)
    #: (time, replicas) traffic recommendations in the stabilization window, as a max-queue:
    #: times increasing, replicas strictly decreasing (an older, smaller one can never win).
    recommendations: list[tuple[float, int]] = field(default_factory=list)

    def copy(self) -> PolicyState:
        """An independent copy (the policy never mutates its input)."""
        return PolicyState(
            last_request_at=self.last_request_at,
            last_eval_at=self.last_eval_at,
            observed_since=self.observed_since,
            last_unknown_at=self.last_unknown_at,
            last_cold_at=self.last_cold_at,
            periods=list(self.periods),
            busy_start=self.busy_start,
            busy_gap=self.busy_gap,
            busy_weight=self.busy_weight,
            busy_mass=self.busy_mass,
            busy_cold=self.busy_cold,
            busy_from_wake=self.busy_from_wake,
            last_burst_at=self.last_burst_at,
            request_plan_at=self.request_plan_at,
            request_plan=[list(w) for w in self.request_plan],
            burst_plan_at=self.burst_plan_at,
            burst_plan=[list(w) for w in self.burst_plan],
            recommendations=list(self.recommendations),
        )

    def add_recommendation(self, at: float, replicas: int, window_seconds: float) -> int:
        """Record a recommendation and return the highest one within the window ending `at`."""
        queue = [(t, r) for t, r in self.recommendations if at - window_seconds < t <= at]
        while queue and queue[-1][1] <= replicas:
            queue.pop()
        queue.append((at, replicas))
        self.recommendations = queue[-MAX_RECOMMENDATIONS:]
        return self.recommendations[0][1]

    def window_max(self, at: float, window_seconds: float) -> int:
        """The highest recorded recommendation within the window ending `at` (0 if none)."""
        inside = [r for t, r in self.recommendations if at - window_seconds < t <= at]
        return max(inside, default=0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in `status.scalerState` (camelCase like the rest of status)."""
        out: dict[str, Any] = {"version": STATE_VERSION}
        for key, value in (
            ("lastRequestAt", self.last_request_at),
            ("lastEvalAt", self.last_eval_at),
            ("observedSince", self.observed_since),
            ("lastUnknownAt", self.last_unknown_at),
            ("lastColdAt", self.last_cold_at),
            ("busyStart", self.busy_start),
            ("lastBurstAt", self.last_burst_at),
            ("requestPlanAt", self.request_plan_at),
            ("burstPlanAt", self.burst_plan_at),
        ):
            if value is not None:
                out[key] = round(value, 3)
        if self.busy_start is not None:
            out["busyGap"] = round(self.busy_gap, 1)
            out["busyWeight"] = round(self.busy_weight, 1)
            out["busyMass"] = round(self.busy_mass, 3)
            if self.busy_cold is not None:
                out["busyCold"] = self.busy_cold
            if self.busy_from_wake:
                out["busyFromWake"] = True
        out["periods"] = [p.to_list() for p in self.periods]
        out["requestPlan"] = [[round(v, 1) for v in w] for w in self.request_plan]
        out["burstPlan"] = [[round(v, 1) for v in w] for w in self.burst_plan]
        out["recommendations"] = [[round(t, 3), r] for t, r in self.recommendations]
        return out

    @classmethod
    def from_dict(cls, data: object) -> PolicyState:
        """Parse a stored state; anything malformed yields a fresh state rather than an error.

        A fresh state is always safe: it counts idle time from the first evaluation, so it
        can delay a scale-to-zero but never cause one.
        """
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        return cls(
            last_request_at=_time(data.get("lastRequestAt")),
            last_eval_at=_time(data.get("lastEvalAt")),
            observed_since=_time(data.get("observedSince")),
            last_unknown_at=_time(data.get("lastUnknownAt")),
            last_cold_at=_time(data.get("lastColdAt")),
            periods=[p for p in (Period.from_list(i) for i in _list(data.get("periods"))) if p][
                -MAX_PERIODS:
            ],
            busy_start=_time(data.get("busyStart")),
            busy_gap=_time(data.get("busyGap")) or 0.0,
            busy_weight=max(_time(data.get("busyWeight")) or 1.0, 1.0),
            busy_mass=max(_time(data.get("busyMass")) or 0.0, 0.0),
            busy_cold=data.get("busyCold") if isinstance(data.get("busyCold"), bool) else None,
            busy_from_wake=data.get("busyFromWake") is True,
            last_burst_at=_time(data.get("lastBurstAt")),
            request_plan_at=_time(data.get("requestPlanAt")),
            request_plan=_windows(data.get("requestPlan")),
            burst_plan_at=_time(data.get("burstPlanAt")),
            burst_plan=_windows(data.get("burstPlan")),
            recommendations=[
                (float(item[0]), int(item[1]))
                for item in _list(data.get("recommendations"))
                if isinstance(item, list | tuple)
                and len(item) == 2
                and _finite(item[0])
                and isinstance(item[1], int)
                and item[1] >= 0
            ][-MAX_RECOMMENDATIONS:],
        )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _windows(value: object) -> list[list[float]]:
    """Stored plan windows [start, end, prewarm]; malformed entries are dropped (at most 16)."""
    return [
        [float(v) for v in item]
        for item in _list(value)
        if isinstance(item, list) and len(item) == 3 and all(_finite(v) for v in item)
    ][:16]


def _time(value: object) -> float | None:
    return float(value) if _finite(value) else None  # type: ignore[arg-type]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
