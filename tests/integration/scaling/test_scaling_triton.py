"""The reader's default queries over a REAL Triton's metrics, scraped by a REAL Prometheus.

Triton (CPU, Python backend; hack/install-triton.sh) serves the activator tests' `affine`
model; Prometheus scrapes its metrics port with the `namespace`/`pool` target labels the
chart's relabelling attaches. Real inferences must show up as the pool's demand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from support.prometheus import PrometheusServer, require_prometheus, static_job
from support.triton import TritonServer, require_triton
from warmpool.scaling.prometheus import DemandWindow, PrometheusReader

pytestmark = [pytest.mark.prometheus, pytest.mark.triton]

MODELS = Path(__file__).resolve().parents[1] / "activator" / "models"
MAX_REQUESTS = 20000


@pytest.fixture
def triton_and_prometheus(tmp_path: Path) -> Iterator[tuple[TritonServer, PrometheusServer]]:
    require_prometheus()
    require_triton()
    with TritonServer(MODELS) as triton:
        metrics = triton.metrics_url.removeprefix("http://").removesuffix("/metrics")
        job = static_job("triton", [metrics], {"namespace": "ml", "pool": "llama"})
        with PrometheusServer([job], tmp_path / "prometheus") as prometheus:
            prometheus.wait_scraped()  # the idle series exist before any load
            yield triton, prometheus


class Load(threading.Thread):
    """Real inferences, one after the other, until stopped (at most MAX_REQUESTS)."""

    def __init__(self, triton: TritonServer) -> None:
        super().__init__(daemon=True)
        self.triton, self.done, self.stopping = triton, 0, threading.Event()

    def run(self) -> None:
        client = httpclient.InferenceServerClient(self.triton.http_url)
        try:
            while not self.stopping.is_set() and self.done < MAX_REQUESTS:
                tensor = httpclient.InferInput("INPUT0", [3], "FP32")
                tensor.set_data_from_numpy(np.array([self.done, 1, 0.5], dtype=np.float32))
                client.infer("affine", [tensor])
                self.done += 1
        finally:
            client.close()


async def test_real_triton_requests_are_the_pools_demand(
    triton_and_prometheus: tuple[TritonServer, PrometheusServer],
) -> None:
    triton, prometheus = triton_and_prometheus
    reader = PrometheusReader(prometheus.url, window="5s", lookback_seconds=30, step_seconds=1)
    counter = 'sum(nv_inference_request_success{namespace="{namespace}",pool="{pool}"})'

    async def read(query: str | None = None, target: str = "Concurrency") -> float | None:
        result = await reader.read(
            "ml",
            "llama",
            now=datetime.now(UTC),
            query=query,
            target_type=target,  # type: ignore[arg-type]
        )
        assert isinstance(result, DemandWindow), result
        return result.samples[-1].value if result.samples else None

    # Idle Triton: its series exist (scraped) and are flat: zero demand.
    assert await read(counter) == 0.0
    assert await read() == 0.0

    load = Load(triton)
    load.start()
    try:
        busy = await _eventually(read, lambda v: v is not None and v > 0, what="demand > 0")
        rps = await _eventually(
            lambda: read(target="RequestsPerSecond"),
            lambda v: v is not None and v > 0,
            what="request rate > 0",
        )
    finally:
        load.stopping.set()
        load.join(timeout=60)
    assert busy is not None and busy > 0 and rps is not None and rps > 0
    # Every request Triton served is in the pool's series, labelled with its pool.
    assert load.done > 0
    served = await _eventually(lambda: read(counter), lambda v: v == load.done, what="all scraped")
    assert served == load.done


async def _eventually(
    read: Callable[[], Awaitable[float | None]],
    accept: Callable[[float | None], bool],
    what: str,
    within: float = 60.0,
) -> float | None:
    """Re-read until `accept(value)`, for at most `within` seconds; returns the last value."""
    deadline = time.monotonic() + within
    value = await read()
    while not accept(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # poll interval of a bounded wait
        value = await read()
    assert accept(value), f"{what}: last value {value!r} after {within:g}s"
    return value
