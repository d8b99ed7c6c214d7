"""The condition an outcome renders, and the health endpoints that report it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from warmpool.warmup import health
from warmpool.warmup.report import parse_message
from warmpool.warmup.runner import GateState, Outcome

READY = datetime(2026, 11, 27, 21, 0, 0, tzinfo=UTC)


def test_success_renders_the_documented_keys() -> None:
    outcome = Outcome(
        "WarmupSucceeded",
        server_ready_at=READY,
        finished_at=READY + timedelta(seconds=2.5),
        requests=37,
        first_s=0.8123,
        p50_s=0.0112,
        best_p50_s=0.0110,
    )
    assert outcome.succeeded and outcome.status == "True"
    pairs, tail = parse_message(outcome.message())
    assert pairs == {
        "serverReadyAt": "2026-11-27T21:00:00.000Z",
        "warmAt": "2026-11-27T21:00:02.500Z",
        "requests": "37",
        "firstMs": "812.3",
        "steadyP50Ms": "11.2",
        "durationS": "2.500",
    }
    assert tail == ""


def test_failure_before_readiness_has_no_latencies() -> None:
    outcome = Outcome("ModelNotReady", finished_at=READY, detail="model m failed to load: boom")
    assert not outcome.succeeded and outcome.status == "False"
    pairs, tail = parse_message(outcome.message())
    assert pairs == {"failedAt": "2026-11-27T21:00:00.000Z", "requests": "0"}
    assert tail == "model m failed to load: boom"


def test_not_steady_reports_last_and_best_window() -> None:
    outcome = Outcome(
        "NotSteady",
        server_ready_at=READY,
        finished_at=READY + timedelta(seconds=9),
        requests=500,
        first_s=1.0,
        p50_s=0.0055,
        best_p50_s=0.0029,
        detail="latency not steady after 500 requests",
    )
    pairs, _ = parse_message(outcome.message())
    assert (pairs["lastP50Ms"], pairs["bestP50Ms"], pairs["durationS"]) == ("5.5", "2.9", "9.000")
    assert "steadyP50Ms" not in pairs and "warmAt" not in pairs


async def test_health_endpoints_follow_the_gate_state() -> None:
    state = GateState()
    site = await health.start(state, "127.0.0.1", 0)
    try:
        port = site.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as reply:
                assert reply.status == 200
            async with session.get(f"{base}/readyz") as reply:
                assert reply.status == 503
            state.phase = "warm"
            state.outcome = Outcome("WarmupSucceeded", server_ready_at=READY, requests=3)
            async with session.get(f"{base}/readyz") as reply:
                assert reply.status == 200
            async with session.get(f"{base}/status") as reply:
                body = await reply.json()
            assert body["phase"] == "warm" and body["reason"] == "WarmupSucceeded"
            assert "requests=3" in body["message"]
    finally:
        await site.cleanup()


def test_streaming_success_adds_itl_and_mode() -> None:
    outcome = Outcome(
        "WarmupSucceeded",
        server_ready_at=READY,
        finished_at=READY + timedelta(seconds=4),
        requests=20,
        first_s=3.2,
        p50_s=0.04,
        itl_p50_s=0.0052,
        mode="stream",
    )
    pairs, _ = parse_message(outcome.message())
    assert pairs["firstMs"] == "3200.0" and pairs["steadyP50Ms"] == "40.0"
    assert pairs["steadyItlMs"] == "5.2" and pairs["mode"] == "stream"
    failed = Outcome(
        "NotSteady", server_ready_at=READY, finished_at=READY, itl_p50_s=0.01, mode="stream"
    )
    pairs, _ = parse_message(failed.message())
    assert pairs["lastItlMs"] == "10.0" and pairs["mode"] == "stream"
