"""The wire contract between the operator and its agents: the formats, and the warm-up writer
tied to the operator's reader (what the sidecar writes is what the cold-start accounting reads)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from warmpool.contract import (
    SERVER_READY_AT,
    WARM_AT,
    WARM_CONDITION,
    PoolKey,
    format_gate_message,
    format_time,
    owner_pool_key,
    parse_gate_message,
    parse_time,
    pool_key,
)
from warmpool.controller.pool.coldstart import pod_cold_start, warm_time
from warmpool.warmup.condition import build_condition_patch, next_condition
from warmpool.warmup.runner import Outcome
from warmpool.warmup.settings import WarmupSettings

CREATED = datetime(2026, 11, 27, 21, 0, 0, tzinfo=UTC)


def test_times_round_trip_and_unreadable_ones_are_none() -> None:
    moment = datetime(2026, 11, 27, 21, 4, 5, 123456, tzinfo=UTC)
    assert format_time(moment) == "2026-11-27T21:04:05.123Z"
    assert parse_time(format_time(moment)) == moment.replace(microsecond=123000)
    assert parse_time("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    for unreadable in ("yesterday", "", None, 17):
        assert parse_time(unreadable) is None


def test_gate_message_pairs_and_tail_round_trip() -> None:
    message = format_gate_message(
        {SERVER_READY_AT: CREATED, "requests": 3, "durationS": 1.5, "skipped": None},
        tail="not  steady\nafter 3",
    )
    assert message == "serverReadyAt=2026-11-27T21:00:00.000Z requests=3 durationS=1.500" + (
        " -- not steady after 3"
    )
    pairs, tail = parse_gate_message(message)
    assert pairs == {SERVER_READY_AT: format_time(CREATED), "requests": "3", "durationS": "1.500"}
    assert tail == "not steady after 3"
    # A foreign message: words without `=` are ignored, and so is everything in the tail.
    assert parse_gate_message("warm after warmAt=x -- serverReadyAt=y") == (
        {WARM_AT: "x"},
        "serverReadyAt=y",
    )
    with pytest.raises(ValueError, match="invalid value"):
        format_gate_message({"note": "two words"})


def test_pool_keys_from_a_pool_and_from_a_child() -> None:
    pool = {"metadata": {"name": "llama", "namespace": "ml"}}
    assert pool_key(pool) == PoolKey("ml", "llama") == ("ml", "llama")
    assert str(pool_key(pool)) == "ml/llama"
    child = {"metadata": {"name": "llama-abc", "labels": {"warmpool.dev/pool": "llama"}}}
    assert owner_pool_key(child) == PoolKey("default", "llama")
    assert owner_pool_key({"metadata": {"name": "other"}}) is None


def test_what_the_warm_up_writes_is_what_the_operator_reads() -> None:
    server_ready = CREATED + timedelta(seconds=34.25)
    warm = server_ready + timedelta(seconds=6.5)
    outcome = Outcome("WarmupSucceeded", server_ready_at=server_ready, finished_at=warm)
    condition = next_condition(
        WarmupSettings.model_fields["condition_type"].default,
        outcome.status,
        outcome.reason,
        outcome.message(),
        None,
        warm,
    )
    patch = build_condition_patch(condition)
    pod = {
        "metadata": {"name": "llama-abc", "creationTimestamp": "2026-11-27T21:00:00Z"},
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-11-27T21:00:01Z",
                },
                {
                    "type": "Initialized",
                    "status": "True",
                    "lastTransitionTime": "2026-11-27T21:00:31Z",
                },
                *patch["status"]["conditions"],
            ]
        },
    }
    assert patch["status"]["conditions"][0]["type"] == WARM_CONDITION
    assert warm_time(pod) == warm  # milliseconds from the message, not the condition's seconds
    cold = pod_cold_start(pod)
    assert cold is not None
    assert cold.server_start_seconds == pytest.approx(3.25)
    assert cold.warmup_seconds == pytest.approx(6.5)
    assert cold.total_seconds == pytest.approx(40.75)
