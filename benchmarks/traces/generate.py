"""Generate request traces: diurnal, bursty, sparse-periodic, daily-schedule, flash-crowd.

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


GENERATORS: dict[str, Callable[..., list[Request]]] = {
    "sparse-periodic": sparse_periodic,
    "daily-schedule": daily_schedule,
    "diurnal": diurnal,
    "bursty": bursty,
    "flash-crowd": flash_crowd,
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
