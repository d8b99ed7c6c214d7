"""The pure decisions of leader election (controller/leader.py): no cluster, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from warmpool.contract import format_micro_time, parse_time
from warmpool.controller.ha.leader import (
    MIN_WAIT,
    Action,
    LeaseRecord,
    Observation,
    expires_at,
    next_action,
    next_attempt_in,
    next_record,
    observe,
    released,
    renew_deadline_passed,
)

T0 = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=UTC)
T1 = datetime(2026, 11, 28, 1, 2, 5, tzinfo=UTC)


def held(holder: str, duration: int = 15, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, duration, acquire_time=T0, renew_time=T0, transitions=transitions)


def seen(record: LeaseRecord | None, at: float) -> Observation:
    return Observation(record=record, resource_version="7", observed_at=at)


def test_no_lease_is_created() -> None:
    assert next_action(seen(None, 100.0), "a", now=100.0, default_duration=15) is Action.CREATE


def test_own_lease_is_renewed_even_when_it_looks_expired() -> None:
    assert next_action(seen(held("a"), 0.0), "a", now=1000.0, default_duration=15) is Action.RENEW


def test_live_lease_of_another_is_left_alone_until_it_expires_on_our_clock() -> None:
    observation = seen(held("b", duration=15), at=100.0)
    assert next_action(observation, "a", now=100.0, default_duration=15) is Action.WAIT
    assert next_action(observation, "a", now=114.9, default_duration=15) is Action.WAIT
    assert next_action(observation, "a", now=115.0, default_duration=15) is Action.TAKE


def test_the_records_duration_wins_over_our_own() -> None:
    observation = seen(held("b", duration=30), at=100.0)
    assert expires_at(observation, default_duration=15) == 130.0
    assert next_action(observation, "a", now=120.0, default_duration=15) is Action.WAIT
    # A record without a duration falls back to ours.
    assert expires_at(seen(held("b", duration=0), at=100.0), default_duration=15) == 115.0


def test_released_lease_is_taken_at_once() -> None:
    observation = seen(released(held("b"), T1), at=100.0)
    assert next_action(observation, "a", now=100.0, default_duration=15) is Action.TAKE


def test_clock_restarts_only_when_the_record_changes() -> None:
    first = observe(None, held("b"), "7", now=100.0)
    same = observe(first, held("b"), "8", now=110.0)
    assert same.observed_at == 100.0 and same.resource_version == "8"
    renewed = LeaseRecord("b", 15, acquire_time=T0, renew_time=T1)
    changed = observe(same, renewed, "9", now=112.0)
    assert changed.observed_at == 112.0
    # A holder that stopped renewing expires 15 s after we first saw its last record, whatever
    # its renewTime says (another machine's clock is never compared with ours).
    assert next_action(same, "a", now=114.0, default_duration=15) is Action.WAIT
    assert next_action(same, "a", now=115.0, default_duration=15) is Action.TAKE


def test_taking_over_counts_a_transition_and_restarts_acquire_time() -> None:
    taken = next_record(held("b", transitions=2), "a", T1, 15)
    assert taken == LeaseRecord("a", 15, acquire_time=T1, renew_time=T1, transitions=3)
    created = next_record(None, "a", T1, 15)
    assert created.transitions == 0 and created.holder == "a"
    after_release = next_record(released(held("b", transitions=2), T1), "a", T1, 15)
    assert after_release.transitions == 3


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    renewed = next_record(held("a", transitions=4), "a", T1, 15)
    assert renewed == LeaseRecord("a", 15, acquire_time=T0, renew_time=T1, transitions=4)


def test_release_clears_the_holder_and_keeps_the_count() -> None:
    record = released(held("a", transitions=4), T1)
    assert record.holder == ""
    assert record.lease_duration_seconds == 1
    assert record.transitions == 4


def test_renew_deadline() -> None:
    assert not renew_deadline_passed(last_renewed_at=100.0, now=109.9, renew_deadline=10.0)
    assert renew_deadline_passed(last_renewed_at=100.0, now=110.0, renew_deadline=10.0)


def test_spec_round_trip_in_micro_time() -> None:
    record = held("pod-0_1a2b3c4d", transitions=5)
    spec = record.to_spec()
    assert spec == {
        "holderIdentity": "pod-0_1a2b3c4d",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 5,
        "acquireTime": "2026-11-28T01:02:03.456789Z",
        "renewTime": "2026-11-28T01:02:03.456789Z",
    }
    assert LeaseRecord.from_spec(spec) == record
    assert LeaseRecord.from_spec({}) == LeaseRecord("", 0)


@pytest.mark.parametrize(
    "text", ["2026-11-28T01:02:03.456789Z", "2026-11-28T01:02:03Z", "2026-11-28T01:02:03.4+00:00"]
)
def test_micro_time_parses_what_the_apiserver_returns(text: str) -> None:
    value = parse_time(text)
    assert value is not None and value.tzinfo is not None
    assert parse_time(format_micro_time(value)) == value


def test_a_standby_tries_again_when_the_lease_runs_out_not_a_retry_period_later() -> None:
    observation = seen(held("b", duration=15), at=100.0)
    assert next_attempt_in(observation, now=101.0, retry_period=2, default_duration=15) == 2
    assert next_attempt_in(observation, now=114.5, retry_period=2, default_duration=15) == 0.5
    # Expired, or about to: soon, but never a busy loop.
    assert next_attempt_in(observation, now=120.0, retry_period=2, default_duration=15) == MIN_WAIT
    # Nobody holds it, or no Lease yet: the next attempt takes it anyway.
    assert next_attempt_in(seen(None, 100.0), 100.0, retry_period=2, default_duration=15) == 2
    assert next_attempt_in(None, 100.0, retry_period=2, default_duration=15) == 2
