"""The generated CRD: no drift from the models, structural, bounded, explained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from warmpool.api.crd import build_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "warmpool.dev_inferencepools.yaml"


def schema() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below `node`, with its dotted path."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crd_matches_generator() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "crds/ drifted from the models: run `warmpool crd -o crds/warmpool.dev_inferencepools.yaml`"
    )


def test_crd_is_a_valid_kubernetes_object() -> None:
    manifest = yaml.safe_load(render_crd_yaml())
    kubernetes_validate.validate(manifest, "1.34", strict=True)


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "$defs", "title", "const", "oneOf", "allOf"}
    for path, node in walk(schema()):
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()}"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf outside int-or-string"
        if "properties" in node:
            assert "additionalProperties" not in node, f"{path}: properties + additionalProperties"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path}: no type"


def test_every_string_list_and_map_is_bounded() -> None:
    # The apiserver refuses CEL rules whose cost it cannot bound, and megabyte strings should
    # be refused at the door.
    for path, node in walk(schema()["properties"]["spec"], ".spec"):
        kind = node.get("type")
        if kind == "string" and "enum" not in node and node.get("format") != "date-time":
            assert "maxLength" in node, f"{path}: string without maxLength"
        if kind == "array":
            assert "maxItems" in node, f"{path}: list without maxItems"
        if kind == "object" and isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, f"{path}: map without maxProperties"


def test_every_spec_field_is_described() -> None:
    for path, node in walk(schema()["properties"]["spec"], ".spec"):
        if path.endswith(("[]", "{}")):
            continue
        assert node.get("description"), f"{path}: no description for kubectl explain"


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("scaling", "self.warmFloor <= self.maxReplicas"),
        ("scaling", "scaleToZeroAfterSeconds"),
        ("cache", "claimName"),
        ("warmup", "self.minRequests <= self.maxRequests"),
        ("model", "sha256File"),
    ],
)
def test_cross_field_rules_are_cel(path: str, fragment: str) -> None:
    node = schema()["properties"]["spec"]["properties"][path]
    rules = [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]
    assert any(fragment in rule for rule in rules), rules


def test_llm_rules_are_cel() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    target = spec["scaling"]["properties"]["target"]
    assert any("KVCacheUtilization" in r["rule"] for r in target["x-kubernetes-validations"])
    llm = spec["warmup"]["properties"]["llm"]
    assert any("promptsConfigMap" in r["rule"] for r in llm["x-kubernetes-validations"])
    assert "KVCacheUtilization" in target["properties"]["type"]["enum"]


def test_nested_defaults_apply_when_section_omitted() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["scaling"]["default"] == {}
    assert spec["scaling"]["properties"]["warmFloor"]["default"] == 1
    assert spec["replicas"].get("nullable") is True
    assert "default" not in spec["replicas"]


def test_scale_subresource_and_columns() -> None:
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    names = [column["name"] for column in version["additionalPrinterColumns"]]
    assert names[:7] == ["Phase", "Desired", "Ready", "Warm", "Floor", "Max", "Cold-Start"]
    assert names[-1] == "Age"
