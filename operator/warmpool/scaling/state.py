"""The scaling policy's memory, stored in the pool's `status.scalerState`.

The operator may restart at any time; everything the policy needs to resume (when traffic was
last seen, the pool's idle-gap history, the recommendations inside the scale-down stabilization
window) lives here, as a small JSON dict. Its size is bounded: at most `MAX_GAPS` idle gaps and
`MAX_RECOMMENDATIONS` recommendations, so the status object never grows with the pool's age.

Times are Unix epoch seconds (floats): JSON-friendly and free of time-zone ambiguity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Version of the stored layout; an unknown version is discarded (the policy starts afresh,
#: which is safe: a fresh state never scales to zero before a full idle timeout).
STATE_VERSION = 1
#: Most recent idle gaps kept: enough for stable tail percentiles across a day/night cycle
#: (64 followed the last regime too closely on the diurnal benchmark trace and cost cold starts
#: at dusk and dawn), recent enough to follow a pool whose pattern changes; about 2 KiB of JSON.
MAX_GAPS = 256
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
    #: Recent idle gaps in seconds, oldest first (at most MAX_GAPS).
    gaps: list[float] = field(default_factory=list)
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
            gaps=list(self.gaps),
            recommendations=list(self.recommendations),
        )

    def add_gap(self, seconds: float) -> None:
        """Remember an idle gap, dropping the oldest beyond MAX_GAPS."""
        self.gaps.append(round(seconds, 1))
        del self.gaps[:-MAX_GAPS]

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
        ):
            if value is not None:
                out[key] = round(value, 3)
        out["gaps"] = list(self.gaps)
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
            gaps=[float(g) for g in _list(data.get("gaps")) if _finite_positive(g)][-MAX_GAPS:],
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


def _finite_positive(value: object) -> bool:
    return _finite(value) and float(value) > 0  # type: ignore[arg-type]


def _time(value: object) -> float | None:
    return float(value) if _finite(value) else None  # type: ignore[arg-type]


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
