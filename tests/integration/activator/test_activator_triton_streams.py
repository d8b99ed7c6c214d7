"""A streamed LLM answer from a REAL Triton through the activator, across a scale-down.

Triton (CPU, Python backend) serves ``tests/models/tiny_lm``: a torch LM, decoupled, one
response per generated token over ``generate_stream`` (Server-Sent Events). The request arrives
while the pool is at zero (held), is released when Triton's endpoint is published, and while the
answer streams the replica is scaled down: its endpoint leaves the pool and Triton gets SIGTERM,
as the kubelet sends it after the preStop hook. The answer still completes, every token of it,
and only then does Triton exit (within its ``--exit-timeout-secs``, the pod's grace period).
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
import pytest
from activator_harness import POOL, eventually

from conftest import MakeActivator
from support.torch_models import require_torch, stage_model
from support.triton import TritonServer
from warmpool.activator.endpoints import Endpoint

pytestmark = pytest.mark.triton

HOST = "llama.ml.svc:8000"
MAX_TOKENS = 120


async def test_held_stream_from_real_triton_completes_across_scale_down(
    make_activator: MakeActivator, tmp_path: Path
) -> None:
    require_torch()
    repository = tmp_path / "repository"
    stage_model("tiny_lm", repository)
    triton = TritonServer(
        repository,
        http_address="127.0.1.10",
        extra_args=[
            "--model-control-mode=explicit",
            "--load-model=tiny_lm",
            "--exit-timeout-secs=300",
        ],
    )
    activator, _ = await make_activator(shutdown_grace=300.0)
    body = {
        "text_input": "Tell me a long story about a warm GPU.",
        "stream": True,
        "sampling_parameters": json.dumps({"max_tokens": MAX_TOKENS, "temperature": 0}),
    }
    url = f"http://127.0.0.1:{activator.bound.http}/v2/models/tiny_lm/generate_stream"
    tokens = 0
    stopping: asyncio.Future[int] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            request = asyncio.ensure_future(session.post(url, json=body, headers={"Host": HOST}))
            await eventually(lambda: activator.hold.held(POOL) == 1, what="held at zero")
            await asyncio.to_thread(triton.start)
            activator.table.set_pool(POOL, [Endpoint("127.0.1.10", triton.http_port, None)])
            response = await asyncio.wait_for(request, timeout=300)
            assert response.status == 200, await response.text()
            async with asyncio.timeout(600):
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    event = json.loads(line[5:])
                    assert "error" not in event, event
                    if event.get("text_output"):
                        tokens += 1
                    if tokens == 3 and stopping is None:
                        # Scale-down mid-answer: the endpoint leaves, the server is told to stop.
                        activator.table.set_pool(POOL, [])
                        stopping = asyncio.ensure_future(asyncio.to_thread(_terminate, triton))
            response.release()
        assert stopping is not None
        code = await asyncio.wait_for(stopping, timeout=300)
    finally:
        triton.stop()
    assert tokens == MAX_TOKENS  # the answer completed, token by token, after SIGTERM
    assert code == 0  # and the server then exited by itself, not killed


def _terminate(triton: TritonServer) -> int:
    """SIGTERM to the server (as the kubelet sends it), then wait for it to exit."""
    assert triton.process is not None
    triton.process.send_signal(signal.SIGTERM)
    return triton.process.wait(timeout=300)
