"""What the operator's Prometheus would answer, simulated (for benchmarks/autoscale.py).

The operator reads demand with a range query (`warmpool.scaling.prometheus.PrometheusReader`:
the default Concurrency query, `rate(...[30s])`, step = evaluation interval, 120 s lookback)
and parses it with `parse_range_result`. This module builds the answer that query would get
from the series a real pool exposes, so the simulated warmpool sees what the operator sees:

- `nv_inference_request_duration_us`, one counter per replica (Triton increments it when a
  request completes, by the time from Triton receiving it to completion, queue included);
  the series exists while the replica runs (from warm to stop) and restarts at 0 per replica;
- `nv_inference_pending_request_count`, a gauge: requests queued inside Triton;
- `warmpool_activator_held_requests`, a gauge: requests the activator holds until a replica is
  warm (operator/warmpool/activator/hold.py).

Scrapes every `scrape_interval` seconds (docs/scaling.md recommends 5 s), each visible to
queries `ingest_lag` seconds after it was taken. `rate()` follows Prometheus's
`extrapolatedRate` (promql/functions.go): samples in the left-open window, at least two, the
extrapolation to the window's edges when the first/last sample is within 1.1 average sample
spacings (else half a spacing), and never past the counter's zero point. Instant gauges take
the latest sample at or before the step (the default 5-minute lookback delta); a stopped
replica's series goes stale at its next scrape. `or vector(0)` makes every step a number.

Not modelled: scrape duration jitter, Prometheus evaluation time, counter resets inside a
replica (one counter per replica lifetime).
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    """One replica's request-duration counter (seconds, not microseconds: /1e6 done here)."""

    born: float  # first time the series can be scraped (replica warm)
    died: float = math.inf  # replica stopped
    pending: list[tuple[float, float]] = field(default_factory=list)  # heap (end, seconds)
    ends: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)

    def add(self, end: float, seconds: float) -> None:
        heapq.heappush(self.pending, (end, seconds))

    def settle(self, now: float) -> None:
        """Completions up to `now` are final (later requests complete after `now`)."""
        while self.pending and self.pending[0][0] <= now:
            end, seconds = heapq.heappop(self.pending)
            self.ends.append(end)
            self.totals.append((self.totals[-1] if self.totals else 0.0) + seconds)

    def value(self, at: float) -> float:
        index = bisect.bisect_right(self.ends, at)
        return self.totals[index - 1] if index else 0.0


class Gauge:
    """An integer gauge from +1/-1 steps at arbitrary times, read at integer seconds."""

    def __init__(self, horizon: float) -> None:
        self.diff = [0] * (int(horizon) + 4000)
        self.levels: list[int] = []

    def interval(self, begin: float, end: float) -> None:
        """Count one during [begin, end)."""
        a, b = math.ceil(begin), math.ceil(end)
        if b <= a or a >= len(self.diff):
            return
        self.diff[a] += 1
        if b < len(self.diff):
            self.diff[b] -= 1

    def at(self, second: int) -> int:
        """Level at an integer second (all steps before it must be recorded)."""
        second = min(max(second, 0), len(self.diff) - 1)
        while len(self.levels) <= second:
            previous = self.levels[-1] if self.levels else 0
            self.levels.append(previous + self.diff[len(self.levels)])
        return self.levels[second]


@dataclass(frozen=True)
class PromConfig:
    scrape_interval: float = 5.0
    ingest_lag: float = 1.0
    window: float = 30.0
    lookback: float = 120.0
    step: float = 10.0


class SimulatedPrometheus:
    """The demand query's answer for one pool (Concurrency target)."""

    def __init__(self, config: PromConfig, horizon: float) -> None:
        self.config = config
        self.series: list[Series] = []
        self.held = Gauge(horizon)
        self.queued = Gauge(horizon)
        self._cache: dict[float, float] = {}

    def new_series(self, warm_at: float) -> Series:
        made = Series(warm_at)
        self.series.append(made)
        return made

    def record(
        self, series: Series, arrival: float, ready: float, start: float, end: float
    ) -> None:
        """A request placed on a replica: held until it is warm, queued in Triton, served."""
        triton_from = max(arrival, ready)
        if ready > arrival:
            self.held.interval(arrival, ready)
        if start > triton_from:
            self.queued.interval(triton_from, start)
        series.add(end, end - triton_from)

    def _scrapes(self, begin: float, end: float) -> list[float]:
        """Scrape times in (begin, end]."""
        si = self.config.scrape_interval
        first = math.floor(begin / si) + 1
        last = math.floor(end / si)
        return [k * si for k in range(first, last + 1)]

    def _visible_until(self, now: float) -> float:
        return now - self.config.ingest_lag

    def value_at(self, t: float, now: float) -> float:
        """The query's value at evaluation time `t` as seen by a query made at `now`."""
        final = t <= self._visible_until(now)
        if final and t in self._cache:
            return self._cache[t]
        seen = min(t, self._visible_until(now))
        window = self.config.window
        rate = 0.0
        keep: list[Series] = []
        for series in self.series:
            if series.died < t - window - 600:
                continue  # long gone: never inside a window again
            keep.append(series)
            series.settle(now)
            times = [
                x
                for x in self._scrapes(t - window, seen)
                if series.born <= x < series.died + self.config.scrape_interval and x < series.died
            ]
            rate += _extrapolated_rate([(x, series.value(x)) for x in times], t - window, t)
        if len(keep) != len(self.series) and final:
            self.series = keep
        last_scrape = self._scrapes(seen - self.config.scrape_interval, seen)
        gauges = 0.0
        if last_scrape:
            second = int(last_scrape[-1])
            gauges = float(self.held.at(second) + self.queued.at(second))
        value = rate + gauges
        if final:
            self._cache[t] = value
            if len(self._cache) > 64:
                for key in sorted(self._cache)[:32]:
                    del self._cache[key]
        return value

    def range_query(self, now: float, since: float | None = None) -> list[dict[str, Any]]:
        """The answer to the range query at `now` (steps back over the lookback, or to `since`
        after the simulator skipped quiet evaluations), in the HTTP API's matrix form."""
        step, lookback = self.config.step, self.config.lookback
        begin = now - lookback if since is None else min(now - lookback, since)
        count = round((now - begin) / step)
        values = [
            [now - (count - k) * step, f"{self.value_at(now - (count - k) * step, now):.6g}"]
            for k in range(count + 1)
        ]
        return [{"metric": {}, "values": values}]


def _extrapolated_rate(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """Prometheus's rate() of one counter series over (start, end] (see the module docstring)."""
    if len(samples) < 2:
        return 0.0
    (first_t, first_v), (last_t, last_v) = samples[0], samples[-1]
    increase = last_v - first_v
    sampled = last_t - first_t
    if sampled <= 0:
        return 0.0
    average = sampled / (len(samples) - 1)
    threshold = average * 1.1
    to_start, to_end = first_t - start, end - last_t
    if to_start >= threshold:
        to_start = average / 2
    if increase > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / increase))
    if to_end >= threshold:
        to_end = average / 2
    return increase * (sampled + to_start + to_end) / sampled / (end - start)
