from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller_builders import make_pod

from warmpool.api.status import ColdStart
from warmpool.controller.pool.coldstart import (
    describe,
    go_duration_seconds,
    image_pulls,
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


def _slow_start_pod() -> dict:
    """Created at 0, scheduled at 60 (a node came up), init done at 100, server ready at 130,
    warm at 140."""
    return make_pod(
        created="2026-01-01T00:00:00Z",
        scheduled="2026-01-01T00:01:00Z",
        initialized="2026-01-01T00:01:40Z",
        containers_ready="2026-01-01T00:02:10Z",
        warm="2026-01-01T00:02:20Z",
        warm_message="serverReadyAt=2026-01-01T00:02:10.000Z warmAt=2026-01-01T00:02:20.000Z",
    )


def _pulled(image: str, duration: str, at: str) -> dict:
    """A kubelet `Pulled` Event as core/v1 carries it."""
    return {
        "reason": "Pulled",
        "message": (
            f'Successfully pulled image "{image}" in {duration} ({duration} including waiting). '
            "Image size: 123 bytes."
        ),
        "lastTimestamp": at,
    }


def test_node_provisioning_and_image_pulls_are_split_out_and_everything_adds_up() -> None:
    pulls = image_pulls(
        [
            _pulled("agent:1", "12s", "2026-01-01T00:01:12Z"),  # 60-72: in prefetch
            _pulled("agent:1", "5s", "2026-01-01T00:01:10Z"),  # 65-70: inside the first
            _pulled("tritonserver:25", "12.5s", "2026-01-01T00:01:52.5Z"),  # 100-112.5: server
            {"reason": "Pulled", "message": 'Container image "x" already present on machine'},
            {"reason": "Started", "message": "Started container triton"},
        ]
    )
    measured = pod_cold_start(
        _slow_start_pod(),
        node_created=datetime(2026, 1, 1, 0, 0, 45, tzinfo=UTC),
        pulls=pulls,
    )
    assert measured is not None
    assert measured.node_provisioning_seconds == 45.0
    assert measured.scheduling_seconds == 15.0
    assert measured.image_pull_seconds == 24.5  # overlapping pulls count once
    assert measured.prefetch_seconds == 28.0
    assert measured.server_start_seconds == 17.5
    assert measured.warmup_seconds == 10.0
    parts = (
        measured.node_provisioning_seconds
        + measured.image_pull_seconds
        + measured.scheduling_seconds
        + measured.prefetch_seconds
        + measured.server_start_seconds
        + measured.warmup_seconds
    )
    assert abs(parts - measured.total_seconds) < 1e-6
    assert describe(measured).startswith(
        "cold start 140.0s: node provisioning 45.0s, image pull 24.5s, scheduling 15.0s"
    )


def test_a_node_older_than_the_pod_provisions_nothing() -> None:
    measured = pod_cold_start(
        _slow_start_pod(), node_created=datetime(2025, 1, 1, tzinfo=UTC), pulls=[]
    )
    assert measured is not None
    assert (measured.node_provisioning_seconds, measured.scheduling_seconds) == (0.0, 60.0)
    assert measured.image_pull_seconds == 0.0


# What the real kubelet v1.34.4 posted for a pull from the real node's registry
# (tests/e2e/test_real_node_image_pull.py), as `kubectl get events -o json` lists them.
_REAL_KUBELET = {"component": "kubelet", "host": "real-node-0"}
_REAL_IMAGE = "registry.node.warmpool.test/warmpool/triton-cpu:6a6545b4fd7c6538-pull"
_REAL_PULL_EVENTS = [
    {
        "reason": "Pulled",
        "message": (
            'Container image "localhost/warmpool/agent:ddaa080f466deebd" already present on machine'
        ),
        "firstTimestamp": "2026-12-04T21:54:19Z",
        "lastTimestamp": "2026-12-04T21:54:19Z",
        "eventTime": None,
        "count": 1,
        "source": _REAL_KUBELET,
    },
    {
        "reason": "Pulling",
        "message": f'Pulling image "{_REAL_IMAGE}"',
        "firstTimestamp": "2026-12-04T21:54:21Z",
        "lastTimestamp": "2026-12-04T21:54:21Z",
        "eventTime": None,
        "count": 1,
        "source": _REAL_KUBELET,
    },
    {
        "reason": "Pulled",
        "message": f'Successfully pulled image "{_REAL_IMAGE}" in 917ms (917ms including waiting). '
        "Image size: 751487598 bytes.",
        "firstTimestamp": "2026-12-04T21:54:22Z",
        "lastTimestamp": "2026-12-04T21:54:22Z",
        "eventTime": None,
        "count": 1,
        "source": _REAL_KUBELET,
    },
]


def test_the_real_kubelets_pull_events() -> None:
    end = datetime(2026, 12, 4, 21, 54, 22, tzinfo=UTC)
    assert image_pulls(_REAL_PULL_EVENTS) == [(end - timedelta(milliseconds=917), end)]
    # The same pull on another run took over a second: the other duration form.
    slower = {
        **_REAL_PULL_EVENTS[2],
        "message": f'Successfully pulled image "{_REAL_IMAGE}" in 1.246s (1.246s including '
        "waiting). Image size: 751487603 bytes.",
    }
    assert image_pulls([slower]) == [(end - timedelta(seconds=1.246), end)]


def test_go_durations() -> None:
    assert go_duration_seconds("850ms") == 0.85
    assert go_duration_seconds("1m2.5s") == 62.5
    assert go_duration_seconds("1h") == 3600
    assert go_duration_seconds("12 s") is None
    assert go_duration_seconds("") is None
