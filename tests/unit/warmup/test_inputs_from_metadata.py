"""Warm-up inputs from Triton's model metadata (HTTP JSON and gRPC-as-JSON shapes)."""

from __future__ import annotations

import pytest

from warmpool.warmup.inputs import generate_request, specs_from_metadata


def test_http_metadata_gives_specs_with_dynamic_dims() -> None:
    metadata = {
        "name": "m",
        "inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "IDS", "datatype": "INT64", "shape": [1, 8]},
        ],
    }
    specs = specs_from_metadata(metadata)
    assert [(s.name, s.datatype, s.shape) for s in specs] == [
        ("INPUT0", "FP32", [-1, 4]),
        ("IDS", "INT64", [1, 8]),
    ]
    request = generate_request(specs)
    assert [t.array.shape for t in request] == [(1, 4), (1, 8)]


def test_grpc_metadata_shapes_arrive_as_strings() -> None:
    specs = specs_from_metadata(
        {"inputs": [{"name": "X", "datatype": "FP16", "shape": ["2", "3"]}]}
    )
    assert specs[0].shape == [2, 3]


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"inputs": []}, "declares no inputs"),
        ({}, "declares no inputs"),
        ({"inputs": [{"name": "X", "datatype": "BF16", "shape": [1]}]}, "datatype"),
    ],
)
def test_unusable_metadata_is_a_clear_error(metadata: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        specs_from_metadata(metadata)  # type: ignore[arg-type]
