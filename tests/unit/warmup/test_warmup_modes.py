"""Which warm-up a model gets (runner.warm_up): streams for a decoupled model, unary otherwise.

The driver here is a stand-in for Triton with a scripted config, metadata and latencies (no
server in the unit tier; tests/integration/warmup drives real Triton over both protocols).
"""

from __future__ import annotations

from typing import Any

from warmpool.warmup.inputs import Tensor, WarmupRequest
from warmpool.warmup.llm import StreamRequest, StreamTiming
from warmpool.warmup.runner import GateState, warm_up
from warmpool.warmup.settings import WarmupSettings
from warmpool.warmup.triton import TritonDriver

VLLM_INPUTS = [
    {"name": "text_input", "datatype": "BYTES", "shape": [1]},
    {"name": "stream", "datatype": "BOOL", "shape": [1]},
    {"name": "sampling_parameters", "datatype": "BYTES", "shape": [1]},
]


class ScriptedTriton(TritonDriver):
    """Ready at once; answers with flat latencies; a config as given (or an error)."""

    def __init__(self, config: dict[str, Any] | None) -> None:
        super().__init__("m", "")
        self._config = config
        self.unary = 0
        self.streams: list[list[Tensor]] = []

    async def server_live(self) -> bool:
        return True

    async def server_ready(self) -> bool:
        return True

    async def model_ready(self) -> bool:
        return True

    async def _repository_index(self) -> list[dict[str, Any]]:
        return [{"name": "m", "version": "1", "state": "READY"}]

    async def metadata(self) -> dict[str, Any]:
        return {"name": "m", "inputs": VLLM_INPUTS}

    async def config(self) -> dict[str, Any]:
        if self._config is None:
            raise ConnectionError("no config endpoint")
        return self._config

    async def infer(self, request: WarmupRequest) -> None:
        self.unary += 1

    async def stream(self, tensors: list[Tensor]) -> StreamTiming:
        self.streams.append(tensors)
        return StreamTiming(0.01, (0.002, 0.002, 0.002))

    async def close(self) -> None:
        pass


SETTINGS = WarmupSettings(model="m", min_requests=4, window=2, timeout=30)
UNARY_REQUEST: list[WarmupRequest] = [[]]


async def test_decoupled_model_gets_streams_with_the_prompts() -> None:
    driver = ScriptedTriton({"model_transaction_policy": {"decoupled": True}})
    prompts = [StreamRequest("a", 4), StreamRequest("b", 4)]
    outcome = await warm_up(driver, UNARY_REQUEST, SETTINGS, GateState(), prompts)
    assert outcome.succeeded and outcome.mode == "stream"
    assert driver.unary == 0 and len(driver.streams) == outcome.requests
    sent = [t.array.reshape(-1)[0] for s in driver.streams for t in s if t.name == "text_input"]
    assert sent[:4] == [b"a", b"b", b"a", b"b"]  # round-robin
    assert outcome.itl_p50_s == 0.002


async def test_unary_model_and_unreadable_config_get_unary_requests() -> None:
    for config in ({"name": "m"}, None):
        driver = ScriptedTriton(config)
        outcome = await warm_up(driver, UNARY_REQUEST, SETTINGS, GateState(), [])
        assert outcome.succeeded and outcome.mode == ""
        assert driver.streams == [] and driver.unary >= 4


async def test_forced_stream_mode_without_prompts_uses_the_built_in_ones() -> None:
    driver = ScriptedTriton({"name": "m"})
    settings = SETTINGS.model_copy(update={"mode": "stream", "max_tokens": 3})
    outcome = await warm_up(driver, UNARY_REQUEST, settings, GateState(), None)
    assert outcome.succeeded and outcome.mode == "stream" and driver.unary == 0
    assert b'"max_tokens": 3' in driver.streams[0][2].array.reshape(-1)[0]
