from __future__ import annotations

from datetime import UTC, datetime

from controller_builders import make_pod

from warmpool.api.status import ColdStart
from warmpool.controller.pool.coldstart import (
    describe,
    new_cold_starts,
    pod_cold_start,
)


def test_cold_start_phases_add_up_from_pod_conditions_and_gate_message() -> None:
    pod = make_pod(
        created="2026-01-01T00:00:00Z",
        scheduled="2026-01-01T00:00:01Z",
        initialized="2026-01-01T00:00:31Z",
        containers_ready="2026-01-01T00:00:36Z",
        warm="2026-01-01T00:00:41Z",
        warm_message="serverReadyAt=2026-01-01T00:00:35.500Z warmAt=2026-01-01T00:00:41.800Z",
    )
    measured = pod_cold_start(pod)
    assert measured is not None
    assert measured.scheduling_seconds == 1.0
    assert measured.prefetch_seconds == 30.0
    assert measured.server_start_seconds == 4.5  # from serverReadyAt, not ContainersReady
    assert measured.warmup_seconds == 6.3
    assert measured.total_seconds == 41.8
    parts = (
        measured.scheduling_seconds
        + measured.prefetch_seconds
        + measured.server_start_seconds
        + measured.warmup_seconds
    )
    assert abs(parts - measured.total_seconds) < 1e-6


def test_without_server_ready_in_message_containers_ready_is_used() -> None:
    pod = make_pod(
        initialized="2026-01-01T00:00:10Z",
        containers_ready="2026-01-01T00:00:12Z",
        warm="2026-01-01T00:00:20Z",
    )
    measured = pod_cold_start(pod)
    assert measured is not None
    assert measured.server_start_seconds == 2.0
    assert measured.warmup_seconds == 8.0


def test_pod_not_warm_has_no_cold_start() -> None:
    assert pod_cold_start(make_pod(initialized="2026-01-01T00:00:10Z")) is None


def test_new_cold_starts_skips_what_status_already_reported() -> None:
    first = make_pod("a", warm="2026-01-01T00:00:20Z", initialized="2026-01-01T00:00:10Z")
    second = make_pod(
        "b",
        created="2026-01-01T00:01:00Z",
        scheduled="2026-01-01T00:01:00Z",
        initialized="2026-01-01T00:01:05Z",
        warm="2026-01-01T00:01:30Z",
    )
    found = new_cold_starts([second, first], None)
    assert [c.pod for c in found] == ["a", "b"]  # oldest first
    again = new_cold_starts([first, second], found[-1])
    assert again == []
    only_second = new_cold_starts([first, second], found[0])
    assert [c.pod for c in only_second] == ["b"]


def test_describe_names_every_phase() -> None:
    text = describe(
        ColdStart(
            pod="p",
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
            total_seconds=41.2,
            scheduling_seconds=0.4,
            prefetch_seconds=30.1,
            server_start_seconds=4.4,
            warmup_seconds=6.3,
        )
    )
    assert text.startswith(
        "cold start 41.2s: scheduling 0.4s, prefetch 30.1s, server 4.4s, warm-up 6.3s"
    )
