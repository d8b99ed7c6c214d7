"""Quantiles and the predicted warm window."""

from __future__ import annotations

import pytest

from warmpool.scaling.histogram import MIN_GAPS, quantile, warm_window


def test_quantile_matches_linear_interpolation() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert quantile(values, 0.0) == 10.0
    assert quantile(values, 1.0) == 40.0
    assert quantile(values, 0.5) == 25.0
    assert quantile(values, 0.25) == pytest.approx(17.5)
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_too_few_gaps_predict_nothing() -> None:
    assert warm_window([600.0] * (MIN_GAPS - 1), 0.95, 30, 10, 30) is None


def test_long_regular_gaps_release_and_prewarm() -> None:
    window = warm_window([600.0] * 10, 0.95, 30, 10, 30)
    assert window is not None and window.mode == "pre-warm"
    assert window.start_seconds == 600 - 30 - 2 * 10
    assert window.end_seconds == 600 + 10
    assert not window.wants_replica(549) and window.wants_replica(550)
    assert window.wants_replica(609) and not window.wants_replica(610)


def test_short_or_spread_gaps_keep_alive() -> None:
    window = warm_window([40.0, 80.0, 120.0, 900.0], 0.95, 30, 10, 30)
    assert window is not None and window.mode == "keep-alive"
    assert window.start_seconds == 0 and window.wants_replica(0)


def test_coverage_widens_the_window_and_few_gaps_widen_it_more() -> None:
    gaps = [float(g) for g in range(500, 701, 10)]
    narrow = warm_window(gaps, 0.6, 30, 10, 30)
    wide = warm_window(gaps, 0.99, 30, 10, 30)
    assert narrow is not None and wide is not None
    assert wide.start_seconds < narrow.start_seconds and wide.end_seconds > narrow.end_seconds
    few = warm_window([500.0, 700.0], 0.99, 30, 10, 30)
    assert few is not None and few.start_seconds < wide.start_seconds
