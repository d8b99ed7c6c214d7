"""Warm-up request data: generated from specs and read from sample requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from warmpool.warmup.inputs import (
    InputSpec,
    generate_request,
    generate_tensor,
    load_samples,
    parse_input_specs,
    parse_sample,
)

ALL_TYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip


def test_specs_parse_from_the_flag_json() -> None:
    specs = parse_input_specs('[{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]')
    assert specs == [InputSpec(name="INPUT0", datatype="FP32", shape=[1, 4])]


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{}",
        '[{"name": "x", "datatype": "BF16", "shape": [1]}]',
        '[{"name": "", "datatype": "FP32", "shape": [1]}]',
        '[{"name": "x", "datatype": "FP32", "shape": [1], "extra": 1}]',
        "not json",
    ],
)
def test_bad_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_input_specs(text)


@pytest.mark.parametrize("datatype", ALL_TYPES)
def test_generated_data_is_deterministic_and_typed(datatype: str) -> None:
    spec = InputSpec(name="INPUT0", datatype=datatype, shape=[2, -1, 3])  # type: ignore[arg-type]
    first, second = generate_tensor(spec), generate_tensor(spec)
    assert first.array.shape == (2, 1, 3)
    assert first.datatype == datatype
    assert np.array_equal(first.array, second.array)
    if datatype == "BYTES":
        assert first.array.dtype == np.object_
        assert first.array.flat[0] == b"warmpool-0"
    else:
        names = {"BOOL": "bool", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
        assert first.array.dtype.name == names.get(datatype, datatype.lower())


def test_different_inputs_get_different_data() -> None:
    a = generate_tensor(InputSpec(name="A", datatype="FP32", shape=[16]))
    b = generate_tensor(InputSpec(name="B", datatype="FP32", shape=[16]))
    assert not np.array_equal(a.array, b.array)
    assert np.all(np.isfinite(a.array)) and a.array.std() > 0


def test_huge_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="elements"):
        generate_tensor(InputSpec(name="X", datatype="FP32", shape=[1 << 20, 1 << 10]))


def test_invalid_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="dimension"):
        generate_tensor(InputSpec(name="X", datatype="FP32", shape=[-2, 3]))


def test_request_has_one_tensor_per_spec() -> None:
    specs = parse_input_specs(
        '[{"name": "IDS", "datatype": "INT64", "shape": [1, 8]},'
        ' {"name": "MASK", "datatype": "BOOL", "shape": [1, 8]}]'
    )
    request = generate_request(specs)
    assert [t.name for t in request] == ["IDS", "MASK"]
    assert request[0].array.min() >= 0 and request[0].array.max() < 100


def test_sample_requests_parse_flat_and_nested_data() -> None:
    request = parse_sample(
        json.dumps(
            {
                "id": "ignored",
                "inputs": [
                    {"name": "A", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]},
                    {"name": "B", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                    {"name": "C", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
                ],
            }
        )
    )
    assert request[0].array.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert request[0].array.dtype == np.float32
    assert request[1].array.tolist() == [[1, 2], [3, 4]]
    assert request[2].array.tolist() == [b"x", b"y"]


def test_sample_with_wrong_element_count_is_refused() -> None:
    text = json.dumps({"inputs": [{"name": "A", "datatype": "FP32", "shape": [3], "data": [1]}]})
    with pytest.raises(ValueError, match="1 values for shape"):
        parse_sample(text)


def test_sample_without_inputs_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_sample('{"inputs": []}')


def test_samples_load_from_a_directory_in_name_order(tmp_path: Path) -> None:
    for name, value in (("b.json", 2.0), ("a.json", 1.0)):
        body = {"inputs": [{"name": "A", "datatype": "FP32", "shape": [1], "data": [value]}]}
        (tmp_path / name).write_text(json.dumps(body))
    (tmp_path / "README.txt").write_text("not a sample")
    requests = load_samples(tmp_path)
    assert [r[0].array.tolist() for r in requests] == [[1.0], [2.0]]


def test_empty_samples_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no \*\.json"):
        load_samples(tmp_path)


def test_broken_sample_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_samples(tmp_path)
