"""Cost-aware warm plans: when to hold, release and pre-warm one replica (pure).

One knob, `λ` (`spec.scaling.predictive.coldStartCostSeconds`): how many GPU-seconds one
request that waits on a cold start is worth. After a reference time `R` (the last request, or
the start of the last burst), the next arrival comes at `R + x`; the pool's history gives
samples of `x` (each with a probability weight `k` and the requests it put at risk `w`, the
activator's held count at wake). A *plan* is a set of warm windows after `R`; the planner picks
the plan that minimises

    E[warm GPU-seconds] + λ · E[requests that wait on a cold start]

over those samples, choosing per group of samples between three answers: keep the replica
warm until after them (keep-alive), release and pre-warm one cold start `C` before them, or
let them start cold. Costs of one arrival at `x`:

- inside a window `[a, b)`: the GPU-seconds of every earlier window (`b - a`, plus `C` for a
  pre-warm), plus `x - a` (plus `C` for a pre-warm); no cold start;
- outside every window: the GPU-seconds of every earlier window, plus `C` for its own cold
  start, plus `λ · w`.

After the last request the replica may be held until after some arrivals or released at once;
a pre-warm after a hold starts its replica at least one cold start after the release. Exact
dynamic programming over the sorted samples, merged into at most `MAX_GROUPS` groups
(O(MAX_GROUPS³) at worst per plan, about a few ms), once per idle period, not per evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Sample groups the planner works on (merging neighbours keeps a plan at a few ms).
MAX_GROUPS = 40
#: Samples per group at least: a window is fitted to a group, never to one past arrival (a
#: window around each past sample of a memoryless process would look free of misses in the
#: history and miss in the future); six agreeing samples are the least evidence of a mode.
MIN_GROUP_SAMPLES = 6


@dataclass(frozen=True)
class Arrival:
    """One past next-arrival time `x` after the reference, with its weights."""

    after_seconds: float
    #: Probability weight (recency and time-of-day similarity).
    weight: float = 1.0
    #: Requests the arrival put at risk (that would have waited on a cold start).
    requests: float = 1.0


@dataclass(frozen=True)
class Window:
    """Warm from `start` to `end` seconds after the reference; a pre-warm asks for the replica
    `cold_start` seconds before `start`."""

    start: float
    end: float
    prewarm: bool


@dataclass(frozen=True)
class Plan:
    """The chosen windows and their expected cost per idle period."""

    windows: tuple[Window, ...]
    expected_gpu_seconds: float
    expected_cold_requests: float
    samples: int

    def hold_seconds(self) -> float:
        """How long the replica stays after the reference before any release (0: at once)."""
        return next((w.end for w in self.windows if not w.prewarm and w.start == 0), 0.0)

    def wants_replica(self, since_reference: float, cold_start: float) -> bool:
        """True while a replica should exist (a pre-warm's replica starts `cold_start` early)."""
        for window in self.windows:
            begin = window.start - cold_start if window.prewarm else window.start
            if begin <= since_reference < window.end:
                return True
        return False

    def boundaries(self, cold_start: float) -> list[float]:
        """Offsets from the reference at which `wants_replica` may change."""
        out: list[float] = []
        for window in self.windows:
            out.append(window.start - cold_start if window.prewarm else window.start)
            out.append(window.end)
        return out

    def describe(self) -> str:
        parts = [
            f"{'pre-warm ' if w.prewarm else 'keep '}{w.start:.0f}-{w.end:.0f}s"
            for w in self.windows
            if w.end > w.start
        ]
        text = ", ".join(parts) or "release at once"
        if not self.samples:
            return text
        return (
            f"{text} from {self.samples} arrivals (expected {self.expected_gpu_seconds:.0f}"
            f" GPU-s, {self.expected_cold_requests:.2f} cold requests)"
        )


@dataclass(frozen=True)
class _Group:
    low: float
    high: float
    weight: float  # sum of k
    weighted_at: float  # sum of k * x
    weighted_requests: float  # sum of k * w
    count: int

    @property
    def margin(self) -> float:
        """How far past its samples a group's window reaches on each side: the mean spacing of
        its samples (the next one falls outside the m seen with probability ~2/(m + 1)), and
        at least a prior of 1 % of the time over m samples (a day, 2 samples: 7 minutes), so a
        few agreeing samples do not make a window narrower than the evidence allows."""
        spacing = (self.high - self.low) / (self.count - 1) if self.count > 1 else 0.0
        return max(spacing, 0.01 * self.high / self.count)


def _groups(arrivals: Sequence[Arrival], limit: int) -> list[_Group]:
    """Sorted samples merged into at most `limit` groups of about equal probability weight."""
    ordered = sorted(arrivals, key=lambda a: a.after_seconds)
    total = sum(a.weight for a in ordered)
    share = total / limit
    groups: list[_Group] = []
    low = high = ordered[0].after_seconds
    k = kx = kw = 0.0
    count = 0
    for arrival in ordered:
        if k > 0 and (k + arrival.weight > share * 1.0001 and arrival.after_seconds > high):
            groups.append(_Group(low, high, k, kx, kw, count))
            low, k, kx, kw, count = arrival.after_seconds, 0.0, 0.0, 0.0, 0
        high = arrival.after_seconds
        k += arrival.weight
        kx += arrival.weight * arrival.after_seconds
        kw += arrival.weight * arrival.requests
        count += 1
    groups.append(_Group(low, high, k, kx, kw, count))
    return groups


def plan(
    arrivals: Sequence[Arrival],
    *,
    cold_start_cost: float,
    cold_start_seconds: float,
    lead_seconds: float,
    pad_seconds: float,
    keep_alive: bool = True,
    earliest_prewarm: float = 0.0,
    min_hold: float = 0.0,
) -> Plan | None:
    """The cheapest plan for `arrivals` (None without samples).

    `keep_alive` True: the replica is warm at the reference (the last request) and may be held
    until after some arrivals, or released at once. False: it is gone (a plan anchored on a
    past burst): only pre-warm windows. `lead_seconds` is how early a window must be warm
    before an arrival (the evaluation interval: a pre-warm starts at the first evaluation after
    its time); `pad_seconds` how long after the last arrival it covers a window stays (the time
    the metrics need to show the arrival). Pre-warms start no earlier than `earliest_prewarm`.
    With `keep_alive`, the replica is held at least `min_hold` (the time the metrics need to
    confirm the pool is idle): arrivals before it are covered, and "release at once" means
    then.
    """
    usable = [a for a in arrivals if a.weight > 0 and math.isfinite(a.after_seconds)]
    if not usable:
        return None
    lam, cold = max(cold_start_cost, 0.0), max(cold_start_seconds, 0.0)
    hold = min_hold if keep_alive else 0.0
    below = [a for a in usable if a.after_seconds < hold]
    above = [a for a in usable if a.after_seconds >= hold]
    groups = (
        _groups(above, max(1, min(MAX_GROUPS, len(above) // MIN_GROUP_SAMPLES))) if above else []
    )
    n = len(groups)
    total = sum(a.weight for a in usable)
    below_gpu = sum(a.weight * a.after_seconds for a in below)
    # Suffix sums: weight of the groups from i on.
    suffix = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + groups[i].weight

    def released_from(floor_start: float) -> list[tuple[float, float, float, tuple[Window, ...]]]:
        """Per group i: cheapest (cost, gpu, cold requests, windows) for groups i.. with no
        replica, pre-warm windows starting at or after `floor_start`."""
        table: list[tuple[float, float, float, tuple[Window, ...]]] = [(0.0, 0.0, 0.0, ())] * (
            n + 1
        )
        for i in range(n - 1, -1, -1):
            g = groups[i]
            nxt = table[i + 1]
            cold_gpu = g.weight * cold
            best = (
                cold_gpu + lam * g.weighted_requests + nxt[0],
                cold_gpu + nxt[1],
                g.weighted_requests + nxt[2],
                nxt[3],
            )
            start = g.low - g.margin - lead_seconds
            if start >= floor_start:
                inside = kx = 0.0
                for j in range(i, n):
                    kx += groups[j].weighted_at
                    inside += groups[j].weight
                    end = groups[j].high + groups[j].margin + pad_seconds
                    gpu = kx - inside * start + inside * cold + suffix[j + 1] * (end - start + cold)
                    rest = table[j + 1]
                    if gpu + rest[0] < best[0]:
                        window = Window(start, end, prewarm=True)
                        best = (gpu + rest[0], gpu + rest[1], rest[2], (window, *rest[3]))
            table[i] = best
        return table

    if not keep_alive:
        _, gpu, cold_req, windows = released_from(max(earliest_prewarm, cold))[0]
        return Plan(windows, gpu / total, cold_req / total, len(usable))
    # Hold `min_hold`, then release, or hold until after groups 0..j; then (released) pre-warm
    # later ones.
    base = below_gpu + suffix[0] * hold
    loose = released_from(max(earliest_prewarm, hold + cold))
    first = loose[0]
    best = (
        base + first[0],
        base + first[1],
        first[2],
        ((Window(0.0, hold, False),) if hold > 0 else ()) + first[3],
    )
    kx = 0.0
    for j in range(n):
        kx += groups[j].weighted_at
        end = max(hold, groups[j].high + groups[j].margin + pad_seconds)
        gpu = below_gpu + kx + suffix[j + 1] * end
        tail = loose[j + 1]
        if any(w.start - cold < end for w in tail[3]):
            # The loose table's pre-warm would overlap the hold: redo with the true floor
            # (rare: only when a hold and a pre-warm are both worth it).
            tail = released_from(max(earliest_prewarm, end + cold))[j + 1]
        if gpu + tail[0] < best[0]:
            best = (gpu + tail[0], gpu + tail[1], tail[2], (Window(0.0, end, False), *tail[3]))
    _, gpu, cold_req, windows = best
    return Plan(windows, gpu / total, cold_req / total, len(usable))
