"""The autoscaling benchmark's simulator parts (benchmarks/): small traces only, never the full
benchmark (it runs minutes; `python benchmarks/autoscale.py --all` regenerates the results)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import autoscale  # noqa: E402
from promsim import PromConfig, SimulatedPrometheus, _extrapolated_rate  # noqa: E402


def test_rate_extrapolates_like_prometheus() -> None:
    # A counter growing 1/s, scraped every 5 s: rate over a 30 s window is 1.
    samples = [(t, float(t)) for t in range(75, 101, 5)]
    assert _extrapolated_rate(samples, 70, 100) == pytest.approx(1.0)
    # One sample: no rate (Prometheus needs two).
    assert _extrapolated_rate(samples[:1], 70, 100) == 0.0
    # A series born inside the window: extrapolated half a sample spacing back...
    assert _extrapolated_rate([(95, 5.0), (100, 10.0)], 70, 100) == pytest.approx(7.5 / 30)
    # ... but never past its zero point (here 5/9 s before the first sample).
    assert _extrapolated_rate([(95, 1.0), (100, 10.0)], 70, 100) == pytest.approx(10 / 30)


def test_simulated_prometheus_sees_a_request_late_and_the_held_count_at_once() -> None:
    prom = SimulatedPrometheus(PromConfig(), horizon=1000)
    series = prom.new_series(warm_at=130)
    # Held from 100 until the replica is warm at 130, then served for 20 s.
    prom.record(series, arrival=100, ready=130, start=130, end=150)
    assert prom.value_at(100, now=100) == 0  # not scraped yet
    assert prom.value_at(110, now=112) == 1  # the scrape at 110, visible at 111
    assert prom.value_at(140, now=142) == 0  # executing: the counter moves at completion
    assert prom.value_at(160, now=162) > 0  # the completed request shows in the rate


def small_trace() -> list[autoscale.Request]:
    # A request every 600 s (+-2 s), one hour.
    return [autoscale.Request(600.0 * k + (k % 3) - 1, 0.5) for k in range(1, 7)]


def test_oracle_prewarms_every_request_and_pays_about_a_cold_start_each() -> None:
    settings = autoscale.Settings()
    requests = small_trace()
    oracle = autoscale.Oracle(requests, settings.slots, settings.cold.total)
    outcome = autoscale.simulate(requests, oracle, "oracle", settings.cold.total, settings.slots)
    assert outcome.cold_hits == 0
    # Per request: one cold start + up to two ticks of lead + the request itself.
    assert 6 * 30 <= outcome.gpu_seconds <= 6 * (30 + 4 + 2 + 2)


def test_knative_goes_to_zero_a_stable_window_after_the_last_request() -> None:
    settings = autoscale.Settings()
    requests = [autoscale.Request(100.0, 0.5)]
    knative = autoscale.Knative(float(settings.slots), 4)
    outcome = autoscale.simulate(requests, knative, "knative", settings.cold.total, 4)
    # Woken 1 s after the request, warm 30 s later; then ~60 s (stable window) + the 3 s
    # re-enqueue, on 2 s ticks: the activator is in the path, so no further 30 s grace.
    assert outcome.cold_hits == 1
    assert 1 + 30 + 60 <= outcome.gpu_seconds <= 1 + 30 + 60 + 8
    # Without the activator in the path (target-burst-capacity 0) the grace adds 30 s.
    tbc0 = autoscale.Knative(float(settings.slots), 4, activator_in_path=False)
    slower = autoscale.simulate(requests, tbc0, "knative", settings.cold.total, 4)
    assert slower.gpu_seconds == pytest.approx(outcome.gpu_seconds + 30 - 4, abs=4)


def test_warmpool_learns_the_period_through_the_simulated_prometheus() -> None:
    settings = autoscale.Settings()
    requests = [autoscale.Request(600.0 * k + (k % 3) - 1, 0.5) for k in range(1, 13)]
    warmpool = autoscale.Warmpool(settings.warmpool_spec(), settings.cold.total)
    outcome = autoscale.simulate(requests, warmpool, "warmpool", settings.cold.total, 4)
    # The first requests start cold while the pool learns, the later ones find it warm.
    assert outcome.cold_hits <= 3
    line = autoscale.summary_line(
        [outcome]
        + [autoscale.Outcome(p, 0, 0, 0, 0, 0, 0, 0) for p in autoscale.POLICIES if p != "warmpool"]
    )
    assert line.startswith(f"warmpool_cold_hits={outcome.cold_hits} warmpool_gpu_s=")
    assert line.split()[-1].startswith("oracle_gpu_s=")
