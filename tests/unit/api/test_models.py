"""The API models refuse what the operator cannot serve, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from warmpool.api import InferencePool, InferencePoolSpec

MINIMAL: dict[str, Any] = {"model": {"uri": "s3://models/llama-3-8b"}}


def spec(**overrides: Any) -> dict[str, Any]:
    """A minimal spec with top-level sections replaced."""
    return {**MINIMAL, **overrides}


def test_minimal_spec_gets_defaults() -> None:
    parsed = InferencePoolSpec.model_validate(MINIMAL)
    assert parsed.scaling.warm_floor == 1
    assert parsed.scaling.max_replicas == 4
    assert parsed.cache.kind == "node"
    assert parsed.server.gpu.count == 1
    assert parsed.warmup.enabled is True
    assert parsed.replicas is None


def test_camel_case_round_trip() -> None:
    wire = spec(scaling={"warmFloor": 0, "maxReplicas": 3, "scaleToZeroAfterSeconds": 60})
    parsed = InferencePoolSpec.model_validate(wire)
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped["scaling"]["scaleToZeroAfterSeconds"] == 60
    assert InferencePoolSpec.model_validate(dumped) == parsed


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="warmFlor"):
        InferencePoolSpec.model_validate(spec(scaling={"warmFlor": 2}))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"scaling": {"warmFloor": 5, "maxReplicas": 2}}, "spec.scaling.warmFloor"),
        (
            {"scaling": {"warmFloor": 1, "scaleToZeroAfterSeconds": 60}},
            "spec.scaling.scaleToZeroAfterSeconds",
        ),
        (
            {
                "scaling": {
                    "maxReplicas": 2,
                    "schedules": [{"cron": "0 8 * * 1-5", "warmFloor": 3, "durationMinutes": 60}],
                }
            },
            "spec.scaling.schedules[0].warmFloor",
        ),
        ({"cache": {"kind": "pvc"}}, "spec.cache.claimName"),
        ({"cache": {"kind": "ephemeral", "prepull": True}}, "spec.cache.prepull"),
        ({"warmup": {"minRequests": 50, "maxRequests": 10}}, "spec.warmup.minRequests"),
        ({"server": {"ports": {"http": 8001}}}, "spec.server.ports"),
        (
            {"scaling": {"target": {"type": "KVCacheUtilization", "value": 75}}},
            "spec.scaling.target.value",
        ),
        (
            {"warmup": {"llm": {"prompts": ["hi"], "promptsConfigMap": "prompts"}}},
            "spec.warmup.llm",
        ),
        (
            {"warmup": {"llm": {"samplingParameters": {"max_tokens": "9"}}}},
            "spec.warmup.llm.samplingParameters",
        ),
    ],
)
def test_cross_field_rules_name_the_field(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        InferencePoolSpec.model_validate(spec(**overrides))
    assert expected in str(caught.value)


def test_checksum_sources_are_exclusive() -> None:
    model = {"uri": "s3://models/x", "sha256": {"a.bin": "0" * 64}, "sha256File": "SHA256SUMS"}
    with pytest.raises(ValidationError, match="sha256File"):
        InferencePoolSpec.model_validate({"model": model})


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/llama",
        "gs://bucket/prefix/dir",
        "hf://meta-llama/Llama-3-8B",
        "https://example.org/models/resnet/",
        "file:///mnt/models/resnet",
        "pvc://model-store/resnet",
    ],
)
def test_supported_uris(uri: str) -> None:
    assert InferencePoolSpec.model_validate({"model": {"uri": uri}}).model.uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://host/x",
        "s3://",
        "hf://only-org",
        "http://insecure/x",
        "models/llama",
        "",
        "file:///etc/../../proc/self",
        "s3://bucket/a/../b",
        "pvc://claim/..",
    ],
)
def test_unsupported_uris(uri: str) -> None:
    with pytest.raises(ValidationError, match="uri"):
        InferencePoolSpec.model_validate({"model": {"uri": uri}})


def test_unknown_time_zone_names_the_field() -> None:
    schedule = {
        "cron": "0 8 * * *",
        "timezone": "Mars/Olympus",
        "warmFloor": 1,
        "durationMinutes": 5,
    }
    with pytest.raises(ValidationError) as caught:
        InferencePoolSpec.model_validate(spec(scaling={"schedules": [schedule]}))
    assert "timezone" in str(caught.value)
    assert "Mars/Olympus" in str(caught.value)


def test_env_value_and_value_from_are_exclusive() -> None:
    env = [{"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    with pytest.raises(ValidationError, match="exclusive"):
        InferencePoolSpec.model_validate(spec(server={"env": env}))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"server": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.server.env[1].name: duplicate name 'A'",
        ),
        (
            {
                "warmup": {
                    "inputs": [
                        {"name": "x", "datatype": "FP32", "shape": [1]},
                        {"name": "y", "datatype": "FP32", "shape": [1]},
                        {"name": "x", "datatype": "INT8", "shape": [2]},
                    ]
                }
            },
            "spec.warmup.inputs[2].name: duplicate name 'x'",
        ),
    ],
)
def test_lists_keyed_by_name_refuse_duplicates(overrides: dict[str, Any], expected: str) -> None:
    # The CRD declares these lists as maps keyed by name (the apiserver refuses duplicates and
    # server-side apply merges by name); the models must refuse what the apiserver refuses.
    with pytest.raises(ValidationError) as caught:
        InferencePoolSpec.model_validate(spec(**overrides))
    assert expected in str(caught.value)


def test_dots_inside_a_segment_are_not_dot_dot() -> None:
    uri = "s3://bucket/v1..v2/model..onnx"
    assert InferencePoolSpec.model_validate({"model": {"uri": uri}}).model.uri == uri


@pytest.mark.parametrize(
    ("selector", "valid"),
    [
        ({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, True),
        ({"pool": ""}, True),
        ({"k": "not a label value!"}, False),
        ({"k": "-leading-dash"}, False),
        ({"Bad_Prefix.io/k": "v"}, False),
        ({"k" * 64: "v"}, False),
        ({"k": "v" * 64}, False),
    ],
)
def test_node_selector_holds_kubernetes_label_syntax(selector: dict[str, str], valid: bool) -> None:
    # A selector the Deployment would be refused for must be refused with the pool.
    document = spec(server={"nodeSelector": selector})
    if valid:
        InferencePoolSpec.model_validate(document)
    else:
        with pytest.raises(ValidationError, match="nodeSelector"):
            InferencePoolSpec.model_validate(document)


def test_resource_parses_manifest_with_kopf_status() -> None:
    manifest = {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": "ml", "generation": 3},
        "spec": MINIMAL,
        "status": {"phase": "Ready", "replicas": 2, "kopf": {"progress": {}}},
    }
    pool = InferencePool.from_manifest(manifest)
    assert pool.model_name == "llama"
    assert pool.status.replicas == 2
    assert pool.metadata.generation == 3
