"""Generate request traces: the published five and five that look more like production.

Published (easy: tiny jitter, no background): sparse-periodic, daily-schedule, diurnal, bursty,
flash-crowd. Production-like (jitter at least the 30 s cold start, stray single requests
between bursts, Poisson night and weekend traffic): periodic-strays, daily-strays,
office-hours, burst-onsets, drifting-period.

A trace is a CSV with a header and one row per request: `timestamp_s` (seconds from the
trace's start, non-decreasing) and `duration_ms` (service time on a warm replica). Every
generator is seeded, so the checked-in CSVs are reproducible:

    python benchmarks/traces/generate.py --out benchmarks/traces
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

DAY = 86400.0
Request = tuple[float, float]  # (timestamp_s, duration_ms)


def _poisson(rng: random.Random, start: float, end: float, rate: float) -> Iterator[float]:
    """Arrival times of a homogeneous Poisson process with `rate` per second."""
    t = start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        yield t


def _thinned(
    rng: random.Random, end: float, peak: float, shape: Callable[[float], float]
) -> Iterator[float]:
    """Arrivals of a Poisson process with rate `peak * shape(t)` (shape in [0, 1]), by thinning."""
    for t in _poisson(rng, 0.0, end, peak):
        if rng.random() < shape(t):
            yield t


def diurnal(seed: int = 1, days: int = 2) -> list[Request]:
    """Day/night cycle: up to 0.6 req/s mid-day, near silence at night (gaps of many minutes)."""
    rng = random.Random(seed)

    def shape(t: float) -> float:
        return (0.5 - 0.5 * math.cos(2 * math.pi * t / DAY)) ** 3

    arrivals = _thinned(rng, days * DAY, 0.6, shape)
    return [(t, rng.lognormvariate(math.log(300), 0.5)) for t in arrivals]


def bursty(seed: int = 2, days: int = 2) -> list[Request]:
    """On/off sessions: exponential quiet periods (mean 20 min), bursts of 30-180 s at 2 req/s."""
    rng = random.Random(seed)
    out: list[Request] = []
    t = 0.0
    while t < days * DAY:
        t += rng.expovariate(1 / 1200)
        length = rng.uniform(30, 180)
        out.extend((a, rng.uniform(400, 1200)) for a in _poisson(rng, t, t + length, 2.0))
        t += length
    return [r for r in out if r[0] < days * DAY]


def sparse_periodic(seed: int = 3, days: int = 2, period: float = 300.0) -> list[Request]:
    """A client polling every `period` seconds (+-5 s jitter), one request each time."""
    rng = random.Random(seed)
    count = int(days * DAY / period)
    return [(i * period + 60 + rng.uniform(-5, 5), rng.uniform(300, 700)) for i in range(count)]


def daily_schedule(seed: int = 4, days: int = 28) -> list[Request]:
    """A daily batch at 09:00 UTC (+-2 min): 10 minutes at 0.5 req/s, silence otherwise."""
    rng = random.Random(seed)
    out: list[Request] = []
    for day in range(days):
        start = day * DAY + 9 * 3600 + rng.uniform(-120, 120)
        out.extend((a, rng.uniform(200, 600)) for a in _poisson(rng, start, start + 600, 0.5))
    return out


def flash_crowd(seed: int = 5, days: int = 1) -> list[Request]:
    """Sparse background (one request per ~5 min) and three 5-minute crowds at 30 req/s."""
    rng = random.Random(seed)
    end = days * DAY
    out = [(t, rng.uniform(200, 600)) for t in _poisson(rng, 0.0, end, 1 / 300)]
    for _ in range(3 * days):
        start = rng.uniform(0, end - 600)
        out.extend((a, rng.uniform(300, 700)) for a in _poisson(rng, start, start + 300, 30.0))
    return out


def _strays(rng: random.Random, end: float, mean_gap: float) -> list[Request]:
    """Single requests at random (Poisson, one per `mean_gap` seconds on average)."""
    return [(t, rng.uniform(200, 800)) for t in _poisson(rng, 0.0, end, 1 / mean_gap)]


def _burst(rng: random.Random, start: float, length: float, rate: float) -> list[Request]:
    """A burst: the first request at `start`, then Poisson arrivals for `length` seconds."""
    first = [(start, rng.uniform(300, 700))]
    return first + [(a, rng.uniform(300, 700)) for a in _poisson(rng, start, start + length, rate)]


def periodic_strays(seed: int = 6, days: int = 3, period: float = 900.0) -> list[Request]:
    """A job every 15 min (+-60 s jitter): 20-60 s bursts at 0.3 req/s; a stray single request
    every ~20 min in between."""
    rng = random.Random(seed)
    end = days * DAY
    out = _strays(rng, end, 1200.0)
    for i in range(int(end / period)):
        out.extend(_burst(rng, i * period + 120 + rng.uniform(-60, 60), rng.uniform(20, 60), 0.3))
    return [r for r in out if r[0] < end]


def daily_strays(seed: int = 7, days: int = 28) -> list[Request]:
    """A daily batch at 09:00 UTC (+-15 min): 10 minutes at 0.5 req/s; a stray single request
    every ~3 h around the clock."""
    rng = random.Random(seed)
    end = days * DAY
    out = _strays(rng, end, 3 * 3600.0)
    for day in range(days):
        out.extend(_burst(rng, day * DAY + 9 * 3600 + rng.uniform(-900, 900), 600, 0.5))
    return out


def office_hours(seed: int = 8, days: int = 21) -> list[Request]:
    """Weekdays from 09:00 (+-20 min) to 17:30 (+-20 min) UTC at 0.08 req/s with a lunch dip;
    nights one request per ~45 min, weekends one per ~90 min (Poisson). Day 0 is a Monday."""
    rng = random.Random(seed)
    out: list[Request] = []
    for day in range(days):
        base = day * DAY
        if day % 7 >= 5:
            out.extend((t + base, rng.uniform(200, 800)) for t in _poisson(rng, 0, DAY, 1 / 5400))
            continue
        begin = 9 * 3600 + rng.uniform(-1200, 1200)
        finish = 17.5 * 3600 + rng.uniform(-1200, 1200)
        out.extend((t + base, rng.uniform(200, 800)) for t in _poisson(rng, 0, begin, 1 / 2700))
        for t in _poisson(rng, begin, finish, 0.08):
            lunch = 12 * 3600 <= t < 13 * 3600
            if not lunch or rng.random() < 0.3:
                out.append((t + base, rng.uniform(300, 900)))
        out.extend((t + base, rng.uniform(200, 800)) for t in _poisson(rng, finish, DAY, 1 / 2700))
    return out


def burst_onsets(seed: int = 9, days: int = 2) -> list[Request]:
    """Sudden 3-minute bursts at 3 req/s from silence (quiet periods exponential, mean 40 min),
    a stray single request every ~30 min."""
    rng = random.Random(seed)
    end = days * DAY
    out = _strays(rng, end, 1800.0)
    t = 0.0
    while t < end:
        t += rng.expovariate(1 / 2400)
        out.extend(_burst(rng, t, 180, 3.0))
        t += 180
    return [r for r in out if r[0] < end]


def drifting_period(seed: int = 10, days: int = 3) -> list[Request]:
    """A job whose period drifts from 10 to 20 minutes over the trace (+-45 s jitter), 3-8
    requests each; a stray single request every ~30 min."""
    rng = random.Random(seed)
    end = days * DAY
    out = _strays(rng, end, 1800.0)
    t = 60.0
    while t < end:
        count = rng.randint(3, 8)
        out.extend((t + rng.uniform(0, 20), rng.uniform(300, 700)) for _ in range(count))
        t += 600 + 600 * t / end + rng.uniform(-45, 45)
    return [r for r in out if r[0] < end]


GENERATORS: dict[str, Callable[..., list[Request]]] = {
    "sparse-periodic": sparse_periodic,
    "daily-schedule": daily_schedule,
    "diurnal": diurnal,
    "bursty": bursty,
    "flash-crowd": flash_crowd,
    "periodic-strays": periodic_strays,
    "daily-strays": daily_strays,
    "office-hours": office_hours,
    "burst-onsets": burst_onsets,
    "drifting-period": drifting_period,
}


def write_csv(path: Path, requests: list[Request]) -> None:
    """Write a trace CSV (sorted by time)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp_s", "duration_ms"])
        for timestamp, duration in sorted(requests):
            writer.writerow([f"{timestamp:.3f}", f"{duration:.1f}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--only", choices=sorted(GENERATORS), action="append")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or GENERATORS:
        requests = GENERATORS[name]()
        write_csv(args.out / f"{name}.csv", requests)
        print(f"{name}: {len(requests)} requests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
