"""Warm-up request inputs: generated from a spec, or read from sample requests.

Two sources, both turned into :class:`WarmupRequest` (a list of named numpy tensors):

* ``--inputs``: a JSON list ``[{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]``.
  Data is generated DETERMINISTICALLY per input (seeded by name, datatype and shape), so every
  replica warms up on the same data. Dynamic dimensions (``-1``) become 1.
* neither: after the model is ready, the inputs its metadata declares (names, datatypes,
  shapes) are generated the same way (:func:`specs_from_metadata`).
* ``--samples-dir``: a directory (a mounted ConfigMap) of ``*.json`` files, each a KServe v2 /
  Triton inference request body: ``{"inputs": [{"name", "datatype", "shape", "data"}]}``
  (``data`` flat or nested, row-major). Files are used in name order, round-robin.

Everything here but :func:`load_samples` is pure.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from warmpool.api.spec import WarmupDatatype

# One list of generatable datatypes for the API and the program that generates them.
Datatype = WarmupDatatype

NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}

MAX_ELEMENTS = 64 * 1024 * 1024
"""Refuse specs that would generate more than this many elements (a typo, not a warm-up)."""


class InputSpec(BaseModel):
    """One model input to generate data for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    """The input's name in the model config."""
    datatype: Datatype
    """Triton datatype (BF16 is not supported: numpy has no bfloat16)."""
    shape: list[int] = Field(min_length=0, max_length=16)
    """Full request shape, batch dimension included; ``-1`` (dynamic) becomes 1."""


class SampleInput(InputSpec):
    """One input of a sample request, with its data."""

    data: list[Any]
    """The values, flat or nested, row-major."""


class SampleRequest(BaseModel):
    """A KServe v2 inference request body (only ``inputs`` is used)."""

    model_config = ConfigDict(extra="ignore")

    inputs: list[SampleInput] = Field(min_length=1)


@dataclass(frozen=True)
class Tensor:
    """A named input tensor ready to send."""

    name: str
    datatype: str
    array: np.ndarray[Any, Any]


WarmupRequest = list[Tensor]

_SPECS = TypeAdapter(list[InputSpec])


def parse_input_specs(text: str) -> list[InputSpec]:
    """Parse the ``--inputs`` JSON list; raises ``ValueError`` (pydantic's) when malformed."""
    specs = _SPECS.validate_json(text)
    if not specs:
        raise ValueError("--inputs must list at least one input")
    return specs


def specs_from_metadata(metadata: dict[str, Any]) -> list[InputSpec]:
    """Input specs from Triton's model metadata (``GET /v2/models/<m>``, or gRPC
    ``ModelMetadata`` as JSON, whose int64 dims arrive as strings).

    Dynamic dimensions stay ``-1`` (generated as 1). Raises ``ValueError`` when the model
    declares no inputs or one of a datatype warm-up cannot generate (e.g. BF16).
    """
    declared = metadata.get("inputs") or []
    if not declared:
        raise ValueError("the model's metadata declares no inputs; set spec.warmup.inputs")
    return [
        InputSpec.model_validate(
            {
                "name": item["name"],
                "datatype": item["datatype"],
                "shape": [int(d) for d in item.get("shape", [])],
            }
        )
        for item in declared
    ]


def concrete_shape(shape: list[int]) -> tuple[int, ...]:
    """The shape with dynamic dimensions (``-1``) set to 1."""
    if any(d < -1 for d in shape):
        raise ValueError(f"invalid dimension in shape {shape}")
    return tuple(1 if d == -1 else d for d in shape)


def generate_tensor(spec: InputSpec) -> Tensor:
    """Deterministic data for ``spec``: the same spec always yields the same array.

    Floats are standard-normal, integers uniform in [0, 100) (valid token ids / indices for
    most models), booleans fair coin flips, BYTES the strings ``warmpool-<i>``.
    """
    shape = concrete_shape(spec.shape)
    size = int(np.prod(shape, dtype=np.int64))
    if size > MAX_ELEMENTS:
        raise ValueError(f"input {spec.name}: {size} elements is more than {MAX_ELEMENTS}")
    seed = zlib.crc32(f"{spec.name}|{spec.datatype}|{shape}".encode())
    rng = np.random.default_rng(seed)
    dtype = NUMPY_DTYPES[spec.datatype]
    array: np.ndarray[Any, Any]
    if spec.datatype == "BYTES":
        array = np.array([f"warmpool-{i}".encode() for i in range(size)], dtype=np.object_)
    elif spec.datatype == "BOOL":
        array = rng.random(size) < 0.5
    elif spec.datatype.startswith("FP"):
        array = rng.standard_normal(size).astype(dtype)
    else:
        array = rng.integers(0, 100, size).astype(dtype)
    return Tensor(spec.name, spec.datatype, array.reshape(shape))


def generate_request(specs: list[InputSpec]) -> WarmupRequest:
    """One request with generated data for every input."""
    return [generate_tensor(spec) for spec in specs]


def sample_to_request(sample: SampleRequest) -> WarmupRequest:
    """Turn a parsed sample request into tensors, checking data against shape."""
    tensors = []
    for item in sample.inputs:
        shape = concrete_shape(item.shape)
        dtype = NUMPY_DTYPES[item.datatype]
        data: Any = item.data
        if item.datatype == "BYTES":
            data = [v.encode() if isinstance(v, str) else v for v in np.ravel(data).tolist()]
        array = np.asarray(data, dtype=dtype)
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"sample input {item.name}: {array.size} values for shape {shape}")
        tensors.append(Tensor(item.name, item.datatype, array.reshape(shape)))
    return tensors


def parse_sample(text: str) -> WarmupRequest:
    """Parse one sample file's JSON text."""
    return sample_to_request(SampleRequest.model_validate(json.loads(text)))


def load_samples(directory: Path) -> list[WarmupRequest]:
    """Read every ``*.json`` sample in ``directory`` (name order). I/O."""
    files = sorted(p for p in directory.glob("*.json") if p.is_file())
    if not files:
        raise ValueError(f"no *.json sample requests in {directory}")
    requests = []
    for path in files:
        try:
            requests.append(parse_sample(path.read_text()))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error
    return requests
