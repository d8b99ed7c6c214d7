"""LLM scaling signals end to end: a REAL Prometheus scraping a REAL Triton whose decoupled
Python-backend model (tests/models/tiny_lm: a torch LM streaming token by token) exports the
vLLM backend's metric names through ``pb_utils.MetricFamily``.

The four LLM target types (QueueDepth, KVCacheUtilization, TokensPerSecond, TimeToFirstToken)
are read with their DEFAULT queries while real streamed generations run, and the scaling service
turns them into replicas. tiny_lm runs one generation at a time (an engine's scheduler), so
concurrent prompts really wait: that is the queue. Weights: produced by torch in Triton's venv
(tests/support/torch_models.py); this test does not need S3.

Asserted: structure and bounds that follow from what was sent (a queue exists while more
prompts than one are in flight; signals are zero when idle), never a latency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support.prometheus import PrometheusServer, require_prometheus, static_job
from support.torch_models import require_torch, stage_model
from support.triton import TritonServer
from warmpool.api.resource import InferencePool
from warmpool.scaling.prometheus import DemandWindow, PrometheusReader
from warmpool.scaling.service import evaluate
from warmpool.scaling.state import PolicyState
from warmpool.warmup.llm import VLLM_TEXT_INTERFACE, StreamRequest, stream_tensors
from warmpool.warmup.triton import GrpcDriver

pytestmark = [pytest.mark.prometheus, pytest.mark.triton]

PROMPTS_IN_FLIGHT = 6
MAX_TOKENS = 160


@pytest.fixture
def llm_and_prometheus(tmp_path: Path) -> Iterator[tuple[TritonServer, PrometheusServer]]:
    require_prometheus()
    require_torch()
    repository = tmp_path / "repository"
    stage_model("tiny_lm", repository)
    args = ["--model-control-mode=explicit", "--load-model=tiny_lm"]
    with TritonServer(repository, http_address="127.0.1.8", extra_args=args) as triton:
        metrics = triton.metrics_url.removeprefix("http://").removesuffix("/metrics")
        labels = {"namespace": "ml", "pool": "llm", "pod": "llm-0"}
        job = static_job("triton", [metrics], labels)
        with PrometheusServer([job], tmp_path / "prometheus") as prometheus:
            prometheus.wait_scraped()
            yield triton, prometheus


def pool(target: str, value: float) -> InferencePool:
    return InferencePool.from_manifest(
        {
            "metadata": {"name": "llm", "namespace": "ml"},
            "spec": {
                "model": {"uri": "s3://models/llm"},
                "scaling": {
                    "warmFloor": 1,
                    "maxReplicas": 8,
                    "target": {"type": target, "value": value},
                },
            },
        }
    )


async def test_llm_signals_from_a_real_streaming_model(
    llm_and_prometheus: tuple[TritonServer, PrometheusServer],
) -> None:
    triton, prometheus = llm_and_prometheus
    reader = PrometheusReader(prometheus.url, window="5s", lookback_seconds=30, step_seconds=1)

    async def read(target: str) -> float | None:
        result = await reader.read("ml", "llm", now=datetime.now(UTC), target_type=target)  # type: ignore[arg-type]
        assert isinstance(result, DemandWindow), result
        return result.samples[-1].value if result.samples else None

    # Idle: the series exist (scraped) and say nothing is going on.
    for target in ("QueueDepth", "KVCacheUtilization", "TokensPerSecond", "TimeToFirstToken"):
        assert await read(target) == 0.0, target

    driver = GrpcDriver(triton.grpc_url, "tiny_lm", "", 600.0)
    tensors = [
        stream_tensors(
            StreamRequest(f"Prompt number {i}: tell a long story.", MAX_TOKENS), VLLM_TEXT_INTERFACE
        )
        for i in range(PROMPTS_IN_FLIGHT)
    ]
    load = [asyncio.ensure_future(driver.stream(t)) for t in tensors]
    try:
        # One generation runs, the rest wait: the queue the default QueueDepth query reads.
        queue = await _eventually(lambda: read("QueueDepth"), lambda v: (v or 0) >= 1, "queue")
        assert queue is not None and queue <= PROMPTS_IN_FLIGHT - 1
        kv = await _eventually(lambda: read("KVCacheUtilization"), lambda v: (v or 0) > 0, "kv")
        assert kv is not None and kv <= 1.0  # one replica: a fraction of its cache
        tps = await _eventually(lambda: read("TokensPerSecond"), lambda v: (v or 0) > 0, "tps")
        assert tps is not None

        async def decide_queue() -> Any:
            return await evaluate(
                pool("QueueDepth", 1),
                PolicyState(),
                datetime.now(UTC),
                reader,
                current_replicas=1,
                ready_replicas=1,
            )

        decision = await _eventually(
            decide_queue,
            lambda d: d.observed_demand is not None and d.observed_demand >= 2,
            "evaluate",
        )
        assert decision.metrics_available, decision.reason
        assert decision.desired >= 2, decision.reason  # ceil(waiting / 1 per replica)
        timings = await asyncio.wait_for(asyncio.gather(*load), timeout=600)
    finally:
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
        await driver.close()
    assert all(t.tokens == MAX_TOKENS for t in timings)
    # Every prompt had a first token: the mean TTFT (seconds) times the one replica.
    ttft = await _eventually(lambda: read("TimeToFirstToken"), lambda v: (v or 0) > 0, "ttft")
    assert ttft is not None
    # After the load: nothing waits, no KV cache is held.
    await _eventually(lambda: read("QueueDepth"), lambda v: v == 0.0, "queue drained")
    await _eventually(lambda: read("KVCacheUtilization"), lambda v: v == 0.0, "cache freed")


async def _eventually(
    read: Callable[[], Awaitable[Any]],
    accept: Callable[[Any], bool],
    what: str,
    within: float = 120.0,
) -> Any:
    """Re-read until ``accept(value)``, for at most ``within`` seconds; returns the value."""
    deadline = time.monotonic() + within
    value = await read()
    while not accept(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # poll interval of a bounded wait
        value = await read()
    assert accept(value), f"{what}: last value {value!r} after {within:g}s"
    return value
