"""The activator in front of a REAL Triton (CPU, Python backend), HTTP and gRPC.

Scenario of a scale-from-zero: many clients (tritonclient, HTTP and gRPC) call the pool
while it has no endpoint; only then does Triton start; when it is up its endpoint is published
(the test drives the EndpointTable as the EndpointSlice watch would: no apiserver in this
tier). Every client must get its own correct answer, and Triton must have served exactly one
inference per client: none dropped, none duplicated (``nv_inference_request_success``).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
import tritonclient.http.aio as httpclient
from activator_harness import POOL, eventually

from conftest import MakeActivator
from support.triton import TritonServer, require_triton
from warmpool.activator.endpoints import Endpoint

MODELS = Path(__file__).parent / "models"
HTTP_CLIENTS = 200
GRPC_CLIENTS = 50
HOST = "llama.ml.svc:8000"
AUTHORITY = "llama.ml.svc:8001"

pytestmark = pytest.mark.triton


@pytest.fixture
def triton() -> Iterator[TritonServer]:
    """A Triton that is NOT started yet: the test starts it while requests are held."""
    require_triton()
    server = TritonServer(MODELS)
    yield server
    server.stop()


def successes(triton: TritonServer, model: str = "affine") -> float:
    prefix = f'nv_inference_request_success{{model="{model}",version="1"}} '
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix) :])
    return 0.0


def values(i: int) -> np.ndarray:
    return np.array([i, -i, 0.5 * i], dtype=np.float32)


async def test_clients_held_at_zero_all_get_their_answer_once_triton_is_up(
    triton: TritonServer, make_activator: MakeActivator
) -> None:
    activator, wake = await make_activator()
    http = httpclient.InferenceServerClient(
        f"127.0.0.1:{activator.bound.http}",
        conn_limit=HTTP_CLIENTS,
        conn_timeout=300,
    )
    grpc = grpcclient.InferenceServerClient(
        f"127.0.0.1:{activator.bound.grpc}",
        channel_args=[("grpc.default_authority", AUTHORITY)],
    )

    async def http_call(i: int) -> np.ndarray:
        tensor = httpclient.InferInput("INPUT0", [3], "FP32")
        tensor.set_data_from_numpy(values(i), binary_data=True)
        result = await http.infer("affine", [tensor], headers={"Host": HOST}, timeout=300)
        return result.as_numpy("OUTPUT0")

    async def grpc_call(i: int) -> np.ndarray:
        tensor = grpcclient.InferInput("INPUT0", [3], "FP32")
        tensor.set_data_from_numpy(values(i))
        result = await grpc.infer("affine", [tensor], client_timeout=300)
        return result.as_numpy("OUTPUT0")

    try:
        http_calls = [asyncio.ensure_future(http_call(i)) for i in range(HTTP_CLIENTS)]
        grpc_calls = [
            asyncio.ensure_future(grpc_call(i))
            for i in range(HTTP_CLIENTS, HTTP_CLIENTS + GRPC_CLIENTS)
        ]
        total = HTTP_CLIENTS + GRPC_CLIENTS
        await eventually(lambda: activator.hold.held(POOL) == total, within=120, what="all held")
        assert wake.calls and wake.calls[0][0] == POOL

        # The pool scales up: the replica starts (a real Triton), then turns ready.
        await asyncio.to_thread(triton.start)
        assert successes(triton) == 0
        activator.table.set_pool(
            POOL, [Endpoint(triton.address, triton.http_port, triton.grpc_port)]
        )
        answers = await asyncio.gather(*http_calls, *grpc_calls)
    finally:
        await http.close()
        await grpc.close()

    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, 2 * values(i) + 1)
    assert successes(triton) == total
    registry = activator.metrics.registry
    forwarded = registry.get_sample_value(
        "warmpool_activator_requests_total",
        {"namespace": "ml", "pool": "llama", "outcome": "forwarded"},
    )
    assert forwarded == total


async def test_warm_pool_metadata_and_errors_pass_through(
    triton: TritonServer, make_activator: MakeActivator
) -> None:
    """Non-inference calls and Triton's own errors come back unchanged, both protocols."""
    await asyncio.to_thread(triton.start)
    activator, _ = await make_activator()
    activator.table.set_pool(POOL, [Endpoint(triton.address, triton.http_port, triton.grpc_port)])
    http = httpclient.InferenceServerClient(f"127.0.0.1:{activator.bound.http}")
    grpc = grpcclient.InferenceServerClient(
        f"127.0.0.1:{activator.bound.grpc}",
        channel_args=[("grpc.default_authority", AUTHORITY)],
    )
    try:
        assert await http.is_model_ready("affine", headers={"Host": HOST})
        assert await grpc.is_model_ready("affine")
        metadata = await grpc.get_model_metadata("affine", as_json=True)
        assert metadata["inputs"][0]["name"] == "INPUT0"
        with pytest.raises(Exception, match=r"unknown model|not found"):
            await http.get_model_metadata("nope", headers={"Host": HOST})
        with pytest.raises(Exception, match=r"unknown model|not found"):
            await grpc.get_model_metadata("nope")
    finally:
        await http.close()
        await grpc.close()
