"""The condition message format the operator parses (warmpool.warmup.report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from warmpool.warmup.report import format_message, format_time, parse_message, parse_time

T0 = datetime(2026, 11, 27, 21, 4, 5, 123456, tzinfo=UTC)


def test_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_time(T0) == "2026-11-27T21:04:05.123Z"
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    assert format_time(berlin) == "2026-11-27T21:04:05.123Z"
    assert parse_time("2026-11-27T21:04:05.123Z") == T0.replace(microsecond=123000)


def test_success_message_matches_the_documented_example() -> None:
    message = format_message(
        {
            "serverReadyAt": T0,
            "warmAt": T0 + timedelta(seconds=3.5),
            "requests": 37,
            "firstMs": 812.34,
            "steadyP50Ms": 11.21,
            "durationS": 3.5,
        }
    )
    assert message == (
        "serverReadyAt=2026-11-27T21:04:05.123Z warmAt=2026-11-27T21:04:08.623Z requests=37 "
        "firstMs=812.3 steadyP50Ms=11.2 durationS=3.500"
    )


def test_round_trip_with_tail_and_missing_values() -> None:
    message = format_message(
        {"serverReadyAt": None, "requests": 0}, "model x failed:\n  RuntimeError  -- boom"
    )
    assert message == "requests=0 -- model x failed: RuntimeError -- boom"
    pairs, tail = parse_message(message)
    assert pairs == {"requests": "0"}
    assert tail == "model x failed: RuntimeError -- boom"


def test_parse_ignores_foreign_tokens() -> None:
    pairs, tail = parse_message("hello requests=3 =x a= 9z=1 firstMs=1.5")
    assert pairs == {"requests": "3", "firstMs": "1.5"}
    assert tail == ""


@pytest.mark.parametrize(
    ("key", "value"), [("bad key", 1), ("1x", 1), ("ok", "has space"), ("ok", "a=b"), ("ok", "")]
)
def test_invalid_pairs_are_refused(key: str, value: str | int) -> None:
    with pytest.raises(ValueError):
        format_message({key: value})
