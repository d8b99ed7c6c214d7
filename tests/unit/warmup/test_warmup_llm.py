"""Streaming warm-up pieces (warmpool.warmup.llm, StreamSteadyDetector): pure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from warmpool.warmup.llm import (
    StreamRequest,
    declared_inputs,
    generate_body,
    is_decoupled,
    parse_sampling,
    parse_sse_event,
    stream_tensors,
    timing_from_arrivals,
)
from warmpool.warmup.steady import SteadyRule, StreamSteadyDetector, Verdict

VLLM_METADATA = {
    "inputs": [
        {"name": "text_input", "datatype": "BYTES", "shape": [1]},
        {"name": "stream", "datatype": "BOOL", "shape": [1]},
        {"name": "sampling_parameters", "datatype": "BYTES", "shape": [1]},
        {"name": "exclude_input_in_output", "datatype": "BOOL", "shape": [1]},
    ]
}
TRTLLM_METADATA = {
    "inputs": [
        {"name": "text_input", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "max_tokens", "datatype": "INT32", "shape": [-1, 1]},
        {"name": "temperature", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "stream", "datatype": "BOOL", "shape": [-1, 1]},
    ]
}


def test_vllm_interface_gets_sampling_parameters_as_json() -> None:
    request = StreamRequest("Hi", 8, parse_sampling('{"temperature": "0", "top_p": 0.9}'))
    tensors = stream_tensors(request, declared_inputs(VLLM_METADATA))
    by_name = {t.name: t for t in tensors}
    assert set(by_name) == {"text_input", "stream", "sampling_parameters"}
    assert by_name["text_input"].array.tolist() == [b"Hi"]
    assert by_name["stream"].array.tolist() == [True]
    sampling = json.loads(by_name["sampling_parameters"].array[0])
    assert sampling == {"temperature": 0, "top_p": 0.9, "max_tokens": 8}
    body = generate_body(tensors)
    assert body["text_input"] == "Hi" and body["stream"] is True
    assert json.loads(body["sampling_parameters"])["max_tokens"] == 8


def test_trtllm_interface_gets_each_declared_parameter_as_a_tensor() -> None:
    request = StreamRequest("Hi", 8, {"temperature": 0.5, "top_k": 3})
    by_name = {t.name: t for t in stream_tensors(request, declared_inputs(TRTLLM_METADATA))}
    assert set(by_name) == {"text_input", "stream", "max_tokens", "temperature"}  # no top_k
    assert by_name["max_tokens"].array.dtype == np.int32
    assert by_name["max_tokens"].array.tolist() == [[8]]  # batching model: shape [1, 1]
    assert by_name["temperature"].array.dtype == np.float32
    assert by_name["text_input"].array.shape == (1, 1)


def test_a_model_without_text_input_is_refused_with_its_inputs_named() -> None:
    with pytest.raises(ValueError, match="INPUT0"):
        metadata = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4]}]}
        stream_tensors(StreamRequest("x", 1), declared_inputs(metadata))


def test_decoupled_is_read_from_http_and_grpc_configs() -> None:
    assert is_decoupled({"model_transaction_policy": {"decoupled": True}})
    assert is_decoupled({"config": {"model_transaction_policy": {"decoupled": True}}})
    assert not is_decoupled({"name": "m"})
    assert not is_decoupled({"config": {"model_transaction_policy": {}}})


def test_stream_timing_from_arrivals() -> None:
    timing = timing_from_arrivals([0.5, 0.6, 0.8, 0.9])
    assert timing.ttft == 0.5 and timing.tokens == 4
    assert timing.itl == pytest.approx(0.1)
    assert timing_from_arrivals([0.2]).itl is None
    with pytest.raises(ValueError, match="without any output"):
        timing_from_arrivals([])


def test_sse_events_with_output_errors_and_empty_final() -> None:
    assert parse_sse_event('{"model_name": "m", "text_output": "a"}')
    assert not parse_sse_event('{"model_name": "m", "text_output": ""}')
    with pytest.raises(ValueError, match="boom"):
        parse_sse_event('{"error": "boom"}')


def _feed(detector: StreamSteadyDetector, ttfts: list[float], itl: float | None) -> Verdict:
    verdict = Verdict.CONTINUE
    for ttft in ttfts:
        verdict = detector.add(ttft, itl)
    return verdict


def test_stream_is_steady_only_when_ttft_and_itl_both_are() -> None:
    rule = SteadyRule(window=3, tolerance=0.1, min_requests=6, max_requests=60)
    # Flat ITL, TTFT still falling: not steady yet.
    detector = StreamSteadyDetector(rule)
    assert _feed(detector, [3.0, 2.0, 1.0, 0.5, 0.25, 0.12], 0.01) is Verdict.CONTINUE
    assert detector.itl.verdict is Verdict.STEADY
    assert _feed(detector, [0.1] * 6, 0.01) is Verdict.STEADY
    # Flat TTFT, ITL drifting up: never steady.
    drifting = StreamSteadyDetector(rule)
    for index in range(60):
        drifting.add(0.1, 0.01 * 1.2**index)
    assert drifting.ttft.verdict is Verdict.STEADY
    assert drifting.verdict is Verdict.NOT_STEADY


def test_single_token_answers_cannot_be_judged_on_itl() -> None:
    rule = SteadyRule(window=2, tolerance=0.1, min_requests=4, max_requests=8)
    detector = StreamSteadyDetector(rule)
    assert _feed(detector, [0.1] * 7, None) is Verdict.CONTINUE
    assert _feed(detector, [0.1], None) is Verdict.NOT_STEADY
