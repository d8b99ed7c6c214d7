"""The steady-state rule (warmpool.warmup.steady), on latency sequences with known answers."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warmpool.warmup.steady import SteadyRule, SteadyStateDetector, Verdict


def feed(rule: SteadyRule, latencies: list[float]) -> tuple[SteadyStateDetector, int | None]:
    """Feed latencies; return the detector and the 1-based request at which it decided."""
    detector = SteadyStateDetector(rule)
    for n, latency in enumerate(latencies, start=1):
        if detector.add(latency) is not Verdict.CONTINUE:
            return detector, n
    return detector, None


def test_warm_up_curve_becomes_steady_only_after_the_cold_requests() -> None:
    rule = SteadyRule(window=3, tolerance=0.1, min_requests=4, max_requests=100)
    cold = [0.8, 0.05, 0.02, 0.015, 0.012]
    detector, decided = feed(rule, cold + [0.010] * 20)
    assert detector.verdict is Verdict.STEADY
    # Window medians reach the flat 0.010 at n = 7 (window 0.012, 0.010, 0.010); rule 3 needs
    # M_{n-3} there too, so n = 10. At n = 9, M_6 = 0.012 is 20 % off.
    assert decided == 10
    assert detector.first == pytest.approx(0.8)
    assert detector.current_median == pytest.approx(0.010)


def test_still_falling_latency_is_not_steady_although_each_window_is_the_best() -> None:
    rule = SteadyRule(window=3, tolerance=0.1, min_requests=1, max_requests=12)
    falling = [1.0 * 0.8**i for i in range(12)]  # 20 % better every request
    detector, decided = feed(rule, falling)
    assert detector.verdict is Verdict.NOT_STEADY
    assert decided == 12


def test_drifting_latency_is_not_steady_at_max_requests() -> None:
    rule = SteadyRule(window=5, tolerance=0.1, min_requests=10, max_requests=40)
    drifting = [0.002 + 0.0005 * i for i in range(100)]
    detector, decided = feed(rule, drifting)
    assert detector.verdict is Verdict.NOT_STEADY
    assert decided == 40
    assert detector.count == 40
    assert detector.best_median is not None and detector.current_median is not None
    assert detector.current_median > 1.1 * detector.best_median


def test_slow_drift_within_tolerance_of_the_best_is_steady() -> None:
    rule = SteadyRule(window=5, tolerance=0.1, min_requests=10, max_requests=100)
    detector, decided = feed(rule, [0.010 * (1 + 0.001 * i) for i in range(100)])
    assert detector.verdict is Verdict.STEADY
    assert decided == 10


def test_drift_is_judged_against_recent_windows_not_the_best_ever() -> None:
    # A quiet spell early on (best median 5 ms), then a stable but busier machine (8 ms):
    # against the best ever this would never be steady; against the last h windows it is.
    rule = SteadyRule(window=5, tolerance=0.1, min_requests=30, max_requests=200, history=4)
    latencies = [0.005] * 20 + [0.008] * 100
    detector, decided = feed(rule, latencies)
    assert detector.verdict is Verdict.STEADY
    # M_j is 8 ms once 3 of its 5 latencies are (j >= 23); rule 2 needs M_n .. M_{n-20} all
    # at 8 ms: n - 20 >= 23.
    assert decided == 43
    assert detector.best_median == pytest.approx(0.005)


def test_drift_across_the_history_is_not_steady() -> None:
    # +4 % per window: consecutive windows agree (rule 3), yet over 4 windows it is > 10 %.
    # Slow drift shows only once h earlier windows exist: min_requests = (h + 1) * k.
    rule = SteadyRule(window=5, tolerance=0.1, min_requests=25, max_requests=100, history=4)
    detector, decided = feed(rule, [0.010 * 1.04 ** (i // 5) for i in range(200)])
    assert detector.verdict is Verdict.NOT_STEADY
    assert decided == 100


def test_single_outliers_do_not_prevent_steadiness() -> None:
    rule = SteadyRule(window=5, tolerance=0.1, min_requests=10, max_requests=100)
    latencies = [0.010] * 30
    latencies[11] = latencies[17] = 0.5  # a GC pause, a noisy neighbour
    detector, decided = feed(rule, latencies)
    assert detector.verdict is Verdict.STEADY
    assert decided == 10


def test_never_steady_before_min_requests() -> None:
    rule = SteadyRule(window=2, tolerance=0.1, min_requests=25, max_requests=100)
    _, decided = feed(rule, [0.01] * 100)
    assert decided == 25


def test_verdict_is_final() -> None:
    rule = SteadyRule(window=2, tolerance=0.1, min_requests=4, max_requests=10)
    detector, _ = feed(rule, [0.01] * 4)
    assert detector.verdict is Verdict.STEADY
    assert detector.add(5.0) is Verdict.STEADY
    assert detector.count == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"tolerance": -0.1},
        {"min_requests": 0},
        {"window": 5, "min_requests": 1, "max_requests": 9},
        {"min_requests": 50, "max_requests": 20},
        {"history": 0},
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SteadyRule(**kwargs)  # type: ignore[arg-type]


def test_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError):
        SteadyStateDetector(SteadyRule()).add(-1.0)


@given(
    level=st.floats(min_value=1e-4, max_value=10.0),
    window=st.integers(min_value=1, max_value=8),
    min_requests=st.integers(min_value=1, max_value=30),
)
def test_constant_latency_is_steady_exactly_when_allowed(
    level: float, window: int, min_requests: int
) -> None:
    rule = SteadyRule(window=window, tolerance=0.0, min_requests=min_requests, max_requests=100)
    detector, decided = feed(rule, [level] * 100)
    assert detector.verdict is Verdict.STEADY
    assert decided == max(min_requests, 2 * window)


@given(
    latencies=st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=60),
    window=st.integers(min_value=1, max_value=6),
    tolerance=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_steady_verdict_always_satisfies_the_documented_rule(
    latencies: list[float], window: int, tolerance: float
) -> None:
    rule = SteadyRule(window=window, tolerance=tolerance, min_requests=1, max_requests=1000)
    detector, decided = feed(rule, latencies)
    if detector.verdict is not Verdict.STEADY:
        return
    assert decided is not None and decided >= 2 * window
    n, k = len(latencies[:decided]), window
    median = lambda j: statistics.median(latencies[j - k : j])  # noqa: E731  (M_j, 1-based j)
    earlier = [median(n - i * k) for i in range(1, rule.history + 1) if n - i * k >= k]
    assert median(n) <= (1 + tolerance) * min(earlier) + 1e-12
    assert abs(median(n) - median(n - k)) <= tolerance * median(n - k) + 1e-12
