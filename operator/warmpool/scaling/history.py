"""The pool's busy-period history and the arrival samples the cost planner reads (pure).

A *busy period* is traffic with no pause longer than 1.5 evaluation intervals. Each finished
one is kept as a `Period`: its start, the idle gap before it (from the previous period's last
request), the requests it put at risk (its *weight*: the highest demand in its first cold
start, which for a pool at zero is the activator's held count), its length, and, when it was a
*burst* (an anchor), the time since the previous burst's start.

Two kinds of samples come out of it (`warmpool.scaling.cost` plans on each):

- *gaps*: time from the last request to the next period's start; the plan after the last
  request (keep-alive, release, pre-warm);
- *burst intervals*: time from a burst's start to the next burst's start; the plan anchored on
  the last burst. Stray single requests between bursts are not bursts, so they shorten the
  gaps but never the burst intervals: a learned period survives them.

A period is a burst when its *size* (weight + length / cold start) is at least a quarter of
the size-weighted median size of the history: bursts carry most of the traffic, strays little.
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
from collections.abc import Sequence
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
    #: Seconds from its first to its last request.
    duration: float
    #: Seconds since the previous burst's start when this period was a burst; 0 otherwise.
    burst_interval: float = 0.0

    def to_list(self) -> list[float]:
        return [
            round(self.start, 3),
            round(self.gap, 1),
            round(self.weight, 1),
            round(self.duration, 1),
            round(self.burst_interval, 1),
        ]

    @classmethod
    def from_list(cls, item: object) -> Period | None:
        if not isinstance(item, list | tuple) or len(item) != 5:
            return None
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
            return None
        values = [float(v) for v in item]
        if not all(math.isfinite(v) for v in values) or min(values[1:]) < 0:
            return None
        return cls(values[0], values[1], max(values[2], 1.0), values[3], values[4])


def size(weight: float, duration: float, cold_start: float) -> float:
    """How much traffic a period carries: requests at risk plus its length in cold starts."""
    return weight + duration / max(cold_start, 1.0)


def burst_threshold(periods: Sequence[Period], cold_start: float) -> float:
    """Smallest size of a burst: BURST_SHARE of the size-weighted median size."""
    sizes = sorted(size(p.weight, p.duration, cold_start) for p in periods)
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


def gap_arrivals(periods: Sequence[Period], reference: float, timeout: float) -> list[Arrival]:
    """Samples of the time from the last request (at `reference`) to the next period."""
    usable = [p for p in periods if p.gap > 0]
    picked = _similar(usable, [p.start - p.gap for p in usable], reference)
    return [Arrival(p.gap, weight, p.weight) for p, weight in picked if p.gap > 0 and timeout >= 0]


def burst_arrivals(periods: Sequence[Period], reference: float, elapsed: float) -> list[Arrival]:
    """Samples of the time from the last burst's start (`reference`) to the next burst, for a
    plan made `elapsed` seconds after it (earlier arrivals are past: not samples)."""
    usable = [p for p in periods if p.burst_interval > 0]
    picked = _similar(usable, [p.start - p.burst_interval for p in usable], reference)
    return [Arrival(p.burst_interval, w, p.weight) for p, w in picked if p.burst_interval > elapsed]


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
