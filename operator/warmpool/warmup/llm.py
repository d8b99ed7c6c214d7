"""Warm-up requests for streaming (decoupled) language models: prompts in, token streams out.

Pure except :func:`load_prompts`. A decoupled model (``model_transaction_policy.decoupled``, as
the vLLM and TensorRT-LLM backends are) answers one request with many responses, one per
token (or chunk). Its warm-up sends prompts and times the stream: time to first token (TTFT)
and the gaps between tokens (inter-token latency, ITL).

What is sent, by the inputs the model declares (its metadata):

* ``text_input`` (BYTES): the prompt;
* ``stream`` (BOOL) when declared: ``true``;
* ``sampling_parameters`` (BYTES) when declared, as the vLLM backend reads it: a JSON object of
  the sampling parameters with ``max_tokens``;
* otherwise each sampling parameter that is itself a declared input (TensorRT-LLM's ensemble:
  ``max_tokens`` INT32, ``temperature`` FP32, ...), as a ``[1]`` tensor of its datatype.

Over HTTP the same inputs go as the JSON body of ``generate_stream`` (Triton's generate
extension maps a body key to the input of that name); over gRPC as a ``ModelStreamInfer`` call.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from warmpool.warmup.inputs import NUMPY_DTYPES, Tensor

TEXT_INPUT = "text_input"
TEXT_OUTPUT = "text_output"
STREAM_INPUT = "stream"
SAMPLING_INPUT = "sampling_parameters"
DEFAULT_PROMPTS = (
    "Explain in one paragraph why the sky is blue.",
    "Write a haiku about a warm GPU.",
    "List three prime numbers and say why they are prime.",
    "Translate 'good morning' into French, German and Spanish.",
)
"""Used when neither the spec nor a ConfigMap gives prompts."""
MAX_PROMPTS = 1024
MAX_PROMPT_CHARS = 32768


@dataclass(frozen=True)
class StreamRequest:
    """One streaming warm-up request: a prompt and its sampling parameters."""

    prompt: str
    max_tokens: int
    sampling: dict[str, Any] = field(default_factory=dict)

    def sampling_parameters(self) -> dict[str, Any]:
        """The vLLM ``sampling_parameters`` object: the sampling values plus ``max_tokens``."""
        return {**self.sampling, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class StreamTiming:
    """How one streamed answer arrived (seconds from sending the request)."""

    ttft: float
    """Time to the first response carrying output."""
    gaps: tuple[float, ...]
    """Times between consecutive output responses."""

    @property
    def tokens(self) -> int:
        return len(self.gaps) + 1

    @property
    def itl(self) -> float | None:
        """Median inter-token latency of this answer; ``None`` with a single token."""
        return float(np.median(self.gaps)) if self.gaps else None


def timing_from_arrivals(arrivals: list[float]) -> StreamTiming:
    """The timing of a stream whose output responses arrived at ``arrivals`` (seconds after
    the request was sent). Raises ``ValueError`` for a stream without output."""
    if not arrivals:
        raise ValueError("the stream ended without any output")
    gaps = tuple(b - a for a, b in itertools.pairwise(arrivals))
    return StreamTiming(arrivals[0], gaps)


def parse_prompts(text: str) -> list[str]:
    """``--prompts``: a JSON list of strings."""
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise ValueError("--prompts must be a JSON list of non-empty strings")
    return _bounded(value, "--prompts")


def parse_sampling(text: str) -> dict[str, Any]:
    """``--sampling``: a JSON object; string values that are JSON scalars are decoded
    (the CRD carries ``{"temperature": "0.7"}`` as strings)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--sampling must be a JSON object")
    decoded: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, str):
            with contextlib.suppress(ValueError):
                item = json.loads(item)
        decoded[str(key)] = item
    if "max_tokens" in decoded:
        raise ValueError("--sampling must not set max_tokens; use --max-tokens")
    return decoded


def load_prompts(directory: Path) -> list[str]:
    """Prompts from a mounted ConfigMap: every regular file (name order) whose name does not
    start with a dot; a ``*.json`` file holds a JSON list of prompts, any other file is one
    prompt. I/O."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    prompts: list[str] = []
    for path in files:
        text = path.read_text()
        if path.suffix == ".json":
            try:
                prompts += parse_prompts(text)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from error
        elif text.strip():
            prompts.append(text.strip())
    if not prompts:
        raise ValueError(f"no prompts in {directory}")
    return _bounded(prompts, str(directory))


def _bounded(prompts: list[str], where: str) -> list[str]:
    if len(prompts) > MAX_PROMPTS:
        raise ValueError(f"{where}: {len(prompts)} prompts, at most {MAX_PROMPTS}")
    for index, prompt in enumerate(prompts):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"{where}[{index}]: longer than {MAX_PROMPT_CHARS} characters")
    return prompts


def is_decoupled(config: dict[str, Any]) -> bool:
    """Whether a model config (Triton's JSON, HTTP or gRPC ``as_json``) is decoupled."""
    inner = config.get("config", config)
    policy = inner.get("model_transaction_policy") or {}
    return bool(policy.get("decoupled", False))


@dataclass(frozen=True)
class Declared:
    """One input as the model's metadata declares it."""

    datatype: str
    shape: tuple[int, ...] = (1,)

    def concrete(self) -> tuple[int, ...]:
        """The shape of a one-element tensor for it: every dimension 1 (``-1`` too), so a
        batching model (``[-1, 1]``) gets ``[1, 1]`` and a non-batching one ``[1]``."""
        return tuple(1 for _ in self.shape) or (1,)


#: The vLLM backend's text interface (what ``tests/models/tiny_lm`` declares too).
VLLM_TEXT_INTERFACE = {
    TEXT_INPUT: Declared("BYTES"),
    STREAM_INPUT: Declared("BOOL"),
    SAMPLING_INPUT: Declared("BYTES"),
}


def declared_inputs(metadata: dict[str, Any]) -> dict[str, Declared]:
    """Input name -> datatype and shape, from the model's metadata."""
    return {
        str(i["name"]): Declared(str(i["datatype"]), tuple(int(d) for d in i.get("shape", [1])))
        for i in metadata.get("inputs") or []
    }


def stream_tensors(request: StreamRequest, declared: dict[str, Declared]) -> list[Tensor]:
    """The input tensors of one streaming request for a model declaring ``declared``."""
    if TEXT_INPUT not in declared:
        raise ValueError(
            f"the model declares no {TEXT_INPUT!r} input (it has {sorted(declared)}); "
            "streaming warm-up speaks the vLLM / TensorRT-LLM text interface"
        )

    def tensor(name: str, datatype: str, value: Any) -> Tensor:
        dtype = NUMPY_DTYPES[datatype]
        return Tensor(
            name, datatype, np.array([value], dtype=dtype).reshape(declared[name].concrete())
        )

    tensors = [tensor(TEXT_INPUT, "BYTES", request.prompt.encode())]
    if STREAM_INPUT in declared:
        tensors.append(tensor(STREAM_INPUT, "BOOL", True))
    if SAMPLING_INPUT in declared:
        text = json.dumps(request.sampling_parameters())
        tensors.append(tensor(SAMPLING_INPUT, "BYTES", text.encode()))
        return tensors
    for name, value in request.sampling_parameters().items():
        item = declared.get(name)
        if item is None or item.datatype not in NUMPY_DTYPES or item.datatype == "BYTES":
            continue
        tensors.append(tensor(name, item.datatype, value))
    return tensors


def generate_body(tensors: list[Tensor]) -> dict[str, Any]:
    """The ``generate_stream`` JSON body for ``tensors`` (scalars, by input name)."""
    body: dict[str, Any] = {}
    for tensor in tensors:
        value = tensor.array.reshape(-1)[0]
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        body[tensor.name] = value
    return body


def parse_sse_event(data: str) -> bool:
    """Whether one SSE ``data:`` payload of ``generate_stream`` carries output.

    Raises ``ValueError`` with the server's message for an error event.
    """
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError(f"unexpected event {data[:200]!r}")
    if "error" in event:
        raise ValueError(str(event["error"]))
    output = event.get(TEXT_OUTPUT)
    return bool(output)
