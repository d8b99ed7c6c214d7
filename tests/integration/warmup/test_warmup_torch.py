"""The warm-up gate on torch models served by a REAL Triton (CPU, Python backend).

The models' weights are produced by torch, stored in a real S3 server and fetched by
``warmpool prefetch`` (fixture ``torch_repository``). Their slow first requests are torch's own:
lazy safetensors loading, TorchScript tracing/freezing per shape, the profiling executor (see
tests/models/*/1/model.py). The LLM (``tiny_lm``) is DECOUPLED: it streams one response per
generated token, so only a streaming warm-up can ever open its gate.

What is asserted is structure, never time: the gate opens, the expensive specialisation ran
during warm-up (the model logs it once per shape), a user request after the gate does not run
it again, and every warm-up stream generated exactly ``--max-tokens`` tokens (the model's own
``vllm:generation_tokens_total`` counter).
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from warmup_harness import inference_count, run_once, triton_args

from support.triton import TritonServer

pytestmark = pytest.mark.triton

CONV_INPUTS = json.dumps([{"name": "INPUT0", "datatype": "FP32", "shape": [4, 3, 64, 64]}])
SPECIALISED = "torch_convnet: specialised a plan for shape"
MAX_TOKENS = 8


def test_torch_model_is_specialised_during_warmup_not_on_user_requests(
    torch_repository: Path, tmp_path: Path
) -> None:
    with TritonServer(
        torch_repository, http_address="127.0.1.6", extra_args=triton_args("torch_convnet")
    ) as triton:
        code, gates, log = run_once(
            ["--url", triton.http_url, "--model", "torch_convnet", "--inputs", CONV_INPUTS,
             "--timeout", "300"],
            tmp_path / "warmup.log",
            timeout=360,
        )  # fmt: skip
        assert code == 0, log
        assert [(g.status, g.reason) for g in gates] == [("True", "WarmupSucceeded")]
        warm = gates[0].pairs
        assert int(warm["requests"]) >= 10  # min-requests, and the rule held after it
        assert "mode" not in warm  # a unary model: judged on request latency
        # The specialisation for this shape happened, once, before the gate opened.
        assert triton.log_text().count(SPECIALISED) == 1
        served = inference_count(triton.http_url, "torch_convnet")
        assert served == int(warm["requests"])

        client = httpclient.InferenceServerClient(triton.http_url)
        try:
            tensor = httpclient.InferInput("INPUT0", [4, 3, 64, 64], "FP32")
            tensor.set_data_from_numpy(np.ones((4, 3, 64, 64), dtype=np.float32))
            result = client.infer("torch_convnet", [tensor])
        finally:
            client.close()
        output = result.as_numpy("OUTPUT0")
        assert output is not None and output.shape == (4, 10) and np.isfinite(output).all()
        # The user's request met a specialised plan: nothing was traced for it.
        assert triton.log_text().count(SPECIALISED) == 1


def _generated_tokens(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(
        r'^vllm:generation_tokens_total\{[^}]*model="tiny_lm"[^}]*\} (\S+)$', text, re.M
    )
    assert match, "tiny_lm exports vllm:generation_tokens_total"
    return float(match.group(1))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_decoupled_llm_passes_the_gate_with_streams(
    torch_repository: Path, tmp_path: Path, protocol: str
) -> None:
    with TritonServer(
        torch_repository, http_address="127.0.1.7", extra_args=triton_args("tiny_lm")
    ) as triton:
        url = triton.grpc_url if protocol == "grpc" else triton.http_url
        prompts = json.dumps(["Why is the sky blue?", "Name three rivers.", "Count to five."])
        code, gates, log = run_once(
            ["--protocol", protocol, "--url", url, "--model", "tiny_lm", "--prompts", prompts,
             "--max-tokens", str(MAX_TOKENS), "--sampling", '{"temperature": "0"}',
             "--timeout", "300"],
            tmp_path / "warmup.log",
            timeout=360,
        )  # fmt: skip
        assert code == 0, log
        assert [(g.status, g.reason) for g in gates] == [("True", "WarmupSucceeded")]
        warm = gates[0].pairs
        # mode auto found the model decoupled and judged TTFT and inter-token latency.
        assert warm["mode"] == "stream", log
        # Both judged (an ITL median may round to 0.0 ms when a loaded machine delivers a
        # burst of tokens at once: present is what counts here).
        assert float(warm["steadyItlMs"]) >= 0 and float(warm["steadyP50Ms"]) > 0, log
        streams = int(warm["requests"])
        assert streams >= 10, log
        # Each warm-up request streamed MAX_TOKENS tokens, generated one by one.
        assert _generated_tokens(triton.metrics_url) == streams * MAX_TOKENS, log
        # The prompts fall in two prefill length buckets (16 and 32 tokens): each graph was
        # specialised once, during warm-up.
        sizes = re.findall(
            r"tiny_lm: specialised the prefill graph for (\d+) tokens", triton.log_text()
        )
        assert sorted(sizes) == ["16", "32"]


def test_unary_warmup_of_a_decoupled_model_fails_with_a_reason(
    torch_repository: Path, tmp_path: Path
) -> None:
    with TritonServer(
        torch_repository, http_address="127.0.1.7", extra_args=triton_args("tiny_lm")
    ) as triton:
        inputs = json.dumps([{"name": "text_input", "datatype": "BYTES", "shape": [1]}])
        code, gates, log = run_once(
            ["--protocol", "grpc", "--url", triton.grpc_url, "--model", "tiny_lm",
             "--mode", "unary", "--inputs", inputs, "--timeout", "120"],
            tmp_path / "warmup.log",
            timeout=180,
        )  # fmt: skip
        assert code == 1, log
        assert [(g.status, g.reason) for g in gates] == [("False", "InferenceFailed")]
        assert "decoupled" in gates[0].tail.lower() or "stream" in gates[0].tail.lower(), gates
