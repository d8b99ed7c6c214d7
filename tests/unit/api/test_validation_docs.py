"""docs/validation.md is exactly what hack/gen-validation-docs.py generates, and it names every
CEL rule of the CRD (quoted message) and every check only the operator makes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "gen-validation-docs.py"
DOC = ROOT / "docs" / "validation.md"
CRD = ROOT / "crds" / "warmpool.dev_inferencepools.yaml"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_validation_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _crd_rules() -> list[dict[str, str]]:
    """Every x-kubernetes-validations entry of the CRD, found without the generator's walk."""
    found: list[dict[str, str]] = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            found.extend(node.get("x-kubernetes-validations") or [])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(yaml.safe_load(CRD.read_text())["spec"]["versions"])
    return found


def test_validation_table_is_fresh() -> None:
    expected = _generator().render_markdown()
    assert DOC.read_text() == expected, "stale: run hack/gen-validation-docs.py"


def test_every_cel_rule_is_quoted() -> None:
    text = DOC.read_text()
    rules = _crd_rules()
    assert len(rules) >= 10
    for rule in rules:
        assert f'"{rule["message"]}"' in text, rule
        assert rule["rule"].replace("|", "\\|") in text, rule


def test_operator_only_checks_are_listed() -> None:
    text = DOC.read_text()
    # The checks test_hostile_manifests.py treats as operator-only, and validate.py's own.
    for words in ("unknown time zone", "Schedule.timezone", "Schedule.cron", "check_crons"):
        assert words in text
    assert "ChildRejected" in text


def test_bounded_strings_lists_and_maps_are_listed() -> None:
    text = DOC.read_text()
    for row in (
        "| `spec.model.uri` | type string; maxLength 2048;",
        "| `spec.server.args` | type array; maxItems 64 |",
        "| `spec.server.nodeSelector` | type object; maxProperties 32 |",
        "| `spec.scaling.maxReplicas` | type integer; minimum 1; maximum 1000;",
    ):
        assert row in text
