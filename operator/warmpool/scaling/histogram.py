"""Predictive keep-alive and pre-warm from the pool's own idle-gap history.

After the hybrid-histogram policy of "Serverless in the Wild" (Shahrad et al., USENIX ATC'20),
adapted to GPU replicas whose cold start `C` is long (tens of seconds) and known:

- An *idle gap* is the time from the last traffic of a busy period to the first traffic of the
  next one. The pool keeps its last `MAX_GAPS` gaps (an exact empirical distribution: the paper's
  one-minute-bin histogram, without the binning error that would cost minutes of GPU time at a
  one-day period). Gaps the idle timer covers anyway (`<= scaleToZeroAfterSeconds`) are not
  learned: they never release the pool.
- With `coverage = c`, the keep-alive horizon is `K = Q(c) + d + I` and the pre-warm point is
  `P = Q(1 - c) - d - C - 2 I`, where `Q` is the linear-interpolated quantile of the gaps,
  `d = 2 (max - min) / (n + 1)` twice the mean spacing of the `n` gaps (a few gaps say little
  about the tails: the next gap falls outside the `n` seen with probability about 2/(n + 1),
  so the window widens on each side and narrows as gaps accumulate),
  `I` the evaluation interval (one interval for the sample that shows the request, one for the
  operator to act) and `C` the cold-start time.
- *Pre-warm mode* when the pool would stay released for at least one cold start
  (`P >= S + C`, `S` = scaleToZeroAfterSeconds): after a request the idle timer releases the last
  replica at `S`, the policy brings one back at `P` and keeps it until `K`.
- *Keep-alive mode* otherwise: one replica stays warm until `K` after the last request.
- Fewer than `MIN_GAPS` gaps: no prediction (the idle timer alone decides).

`coverage` is the knob: it widens `[P, K)` on both sides, so more of the next arrivals find a
warm replica and more GPU-seconds are spent waiting for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: Gaps needed before predicting: two agreeing gaps are the smallest evidence of a pattern, and
#: a wrong prediction costs at most one extra warm window.
MIN_GAPS = 2


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of a non-empty sequence."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = min(max(q, 0.0), 1.0) * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class WarmWindow:
    """When, relative to the last request, the prediction wants one warm replica."""

    mode: Literal["keep-alive", "pre-warm"]
    #: Idle time at which the replica must be (back) up; 0 in keep-alive mode.
    start_seconds: float
    #: Idle time after which the prediction no longer asks for a replica.
    end_seconds: float
    #: Gaps the window was learned from.
    samples: int

    def wants_replica(self, idle_seconds: float) -> bool:
        """True while the idle time is inside [start, end)."""
        return self.start_seconds <= idle_seconds < self.end_seconds

    def describe(self) -> str:
        """Short human-readable form for the scaler's reason."""
        if self.mode == "keep-alive":
            return f"keep-alive {self.end_seconds:.0f}s from {self.samples} idle gaps"
        return (
            f"pre-warm at {self.start_seconds:.0f}s until {self.end_seconds:.0f}s "
            f"idle from {self.samples} idle gaps"
        )


def warm_window(
    gaps: Sequence[float],
    coverage: float,
    cold_start_seconds: float,
    interval_seconds: float,
    scale_to_zero_after_seconds: float,
) -> WarmWindow | None:
    """The predicted warm window, or None while the history is too short to predict."""
    if len(gaps) < MIN_GAPS:
        return None
    # Whole seconds: the boundaries are compared with idle times that are whole seconds apart
    # for a timer-driven caller; sub-second float noise must not move a boundary past a tick.
    pad = 2 * (max(gaps) - min(gaps)) / (len(gaps) + 1)
    end = math.ceil(quantile(gaps, coverage) + pad + interval_seconds)
    prewarm_at = math.floor(
        quantile(gaps, 1.0 - coverage) - pad - cold_start_seconds - 2 * interval_seconds
    )
    if prewarm_at >= scale_to_zero_after_seconds + cold_start_seconds:
        return WarmWindow("pre-warm", prewarm_at, end, len(gaps))
    return WarmWindow("keep-alive", 0.0, end, len(gaps))
