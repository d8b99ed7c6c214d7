"""The pool's busy-period history and the arrival samples the cost planner reads (pure).

A *busy period* is traffic with no pause longer than 1.5 evaluation intervals. Each finished
one is kept as a `Period`: its start, the idle gap before it (from the previous period's last
request), the requests it put at risk (its *weight*: the highest demand in its first cold
start, which for a pool at zero is the activator's held count), the traffic it carried, and,
when it was a *burst* (an anchor), the time since the previous burst's start.

Two kinds of samples come out of it (`warmpool.scaling.cost` plans on each):

- *gaps*: time from the last request to the next period's start; the plan after the last
  request (keep-alive, release, pre-warm);
- *burst intervals*: time from a burst's start to the next burst's start; the plan anchored on
  the last burst. Stray single requests between bursts are not bursts, so they shorten the
  gaps but never the burst intervals: a learned period survives them.

A period is a burst when its *size* (weight + the traffic it carried while warm, demand x
time) is at least a quarter of the size-weighted median size of the history: bursts carry
most of the traffic, strays little. (Not its length: a `rate()` window keeps a single request
visible for up to a window, so a stray looks nearly as long as a short burst.)
When every period looks alike (a client polling with one request) every period is a burst.

Time-of-day and week: samples whose reference time lies within `TIME_OF_DAY_SECONDS` of the
current one on the clock (once the history spans `DAY_SPAN_NEEDED`), and on the same kind of
day (weekday or weekend, UTC, once it spans `WEEK_SPAN_NEEDED`) are used when there are at least
`MIN_SAMPLES` of them; recent samples weigh more (half weight `HALF_LIFE` samples back).

Retention: at most `MAX_PERIODS`; beyond that the oldest period of the fullest hour-of-week
bucket (weekday/weekend x hour) goes, so a busy afternoon cannot push last night or last
Saturday out of memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from warmpool.scaling.cost import Arrival

MAX_PERIODS = 256
MIN_SAMPLES = 3
HALF_LIFE = 48
DAY = 86400.0
TIME_OF_DAY_SECONDS = 5400.0
DAY_SPAN_NEEDED = 1.5 * DAY
WEEK_SPAN_NEEDED = 8 * DAY
#: A burst is at least this share of the size-weighted median size.
BURST_SHARE = 0.25


@dataclass(frozen=True)
class Period:
    """A finished busy period."""

    start: float
    #: Idle seconds before it (since the previous period's last request); 0 for the first.
    gap: float
    #: Requests it put at risk (>= 1).
    weight: float
    #: Traffic it carried, counted while a replica was warm: the sum of demand x interval
    #: (request-seconds for Concurrency, requests for RequestsPerSecond).
    mass: float
    #: Seconds since the previous burst's start when this period was a burst; 0 otherwise.
    burst_interval: float = 0.0
    #: Whether it started at a pool with no warm replica: its weight is then the held count;
    #: a warm start sees only the concurrency inside Triton, a lower bound.
    cold: bool = True

    def to_list(self) -> list[float]:
        return [
            round(self.start, 3),
            round(self.gap, 1),
            round(self.weight, 1),
            round(self.mass, 1),
            round(self.burst_interval, 1),
            1.0 if self.cold else 0.0,
        ]

    @classmethod
    def from_list(cls, item: object) -> Period | None:
        if not isinstance(item, list | tuple) or len(item) != 6:
            return None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
            return None
        values = [float(v) for v in item]
        if not all(math.isfinite(v) for v in values) or min(values[1:]) < 0:
            return None
        return cls(values[0], values[1], max(values[2], 1.0), values[3], values[4], values[5] > 0)


def size(weight: float, mass: float) -> float:
    """How much traffic a period carries: requests at risk plus the traffic it carried."""
    return weight + mass


def burst_threshold(periods: Sequence[Period]) -> float:
    """Smallest size of a burst: BURST_SHARE of the size-weighted median size."""
    sizes = sorted(size(p.weight, p.mass) for p in periods)
    if not sizes:
        return 0.0
    half, running = sum(sizes) / 2, 0.0
    for value in sizes:
        running += value
        if running >= half:
            return BURST_SHARE * value
    return BURST_SHARE * sizes[-1]


def add_period(periods: list[Period], period: Period) -> list[Period]:
    """History with `period` appended, thinned to MAX_PERIODS (see the module docstring)."""
    out = [*periods, period]
    while len(out) > MAX_PERIODS:
        buckets: dict[tuple[bool, int], list[int]] = {}
        for index, item in enumerate(out[:-1]):
            buckets.setdefault(_hour_of_week(item.start), []).append(index)
        fullest = max(buckets.values(), key=len)
        plain = [i for i in fullest if out[i].burst_interval == 0]
        del out[(plain or fullest)[0]]
    return out


def gap_arrivals(
    periods: Sequence[Period],
    reference: float,
    burst_miss: float = 1.0,
    prewarm_after: float = 0.0,
) -> list[Arrival]:
    """Samples of the time from the last request (at `reference`) to the next period. A gap of
    at least `prewarm_after` (long enough to pre-warm for) that ended in a burst puts only
    `burst_miss` of its requests at risk: the share of bursts the burst-anchored plan is
    expected to miss (the rest it pre-warms for). Shorter gaps keep their full weight: only
    holding the replica can catch them (a pause inside a burst, say)."""
    usable = [p for p in periods if p.gap > 0]
    picked = _similar(usable, [p.start - p.gap for p in usable], reference)
    at_risk = _at_risk(periods)
    return [
        Arrival(
            p.gap,
            weight,
            at_risk(p) * (burst_miss if p.burst_interval > 0 and p.gap >= prewarm_after else 1),
        )
        for p, weight in picked
    ]


def burst_arrivals(periods: Sequence[Period], reference: float, elapsed: float) -> list[Arrival]:
    """Samples of the time from the last burst's start (`reference`) to the next burst, for a
    plan made `elapsed` seconds after it (earlier arrivals are past: not samples)."""
    usable = [p for p in periods if p.burst_interval > elapsed]
    picked = _similar(usable, [p.start - p.burst_interval for p in usable], reference)
    at_risk = _at_risk(periods)
    return [Arrival(p.burst_interval, w, at_risk(p)) for p, w in picked]


def _at_risk(periods: Sequence[Period]) -> Callable[[Period], float]:
    """Requests a period put at risk: its held count when it started cold; when it started warm
    (its weight only a lower bound), at least the median held count of the cold starts of its
    kind (bursts, or the other periods). Without this a burst that was pre-warmed would look
    cheap to miss, and the next one would not be pre-warmed."""
    typical: dict[bool, float] = {}
    for kind in (True, False):
        held = sorted(p.weight for p in periods if p.cold and (p.burst_interval > 0) == kind)
        typical[kind] = held[len(held) // 2] if held else 1.0

    def at_risk(period: Period) -> float:
        if period.cold:
            return period.weight
        return max(period.weight, typical[period.burst_interval > 0])

    return at_risk


def _similar(
    periods: Sequence[Period], references: Sequence[float], reference: float
) -> list[tuple[Period, float]]:
    """Periods whose reference time is like `reference` (time of day, kind of day), with
    recency weights; all of them when too few are alike."""
    if not periods:
        return []
    span = reference - min(references)
    chosen = list(range(len(periods)))
    if span >= DAY_SPAN_NEEDED:
        same_time = [
            i for i in chosen if _clock_distance(references[i], reference) <= TIME_OF_DAY_SECONDS
        ]
        if len(same_time) >= MIN_SAMPLES:
            chosen = same_time
        if span >= WEEK_SPAN_NEEDED:
            kind = _weekend(reference)
            same_kind = [i for i in chosen if _weekend(references[i]) == kind]
            if len(same_kind) >= MIN_SAMPLES:
                chosen = same_kind
    chosen.sort(key=lambda i: references[i], reverse=True)
    return [(periods[i], 0.5 ** (rank / HALF_LIFE)) for rank, i in enumerate(chosen)]


def _clock_distance(a: float, b: float) -> float:
    delta = abs(a - b) % DAY
    return min(delta, DAY - delta)


def _weekend(at: float) -> bool:
    return datetime.fromtimestamp(at, UTC).weekday() >= 5


def _hour_of_week(at: float) -> tuple[bool, int]:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.weekday() >= 5, moment.hour
