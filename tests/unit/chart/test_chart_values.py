"""values.yaml: every value documented helm-docs style (`# --`), and the schema strict."""

from __future__ import annotations

import json
from typing import Any

import yaml
from chart_support import CHART


def _documented(lines: list[str], line: int) -> bool:
    """A `# --` comment in the comment block right above `line` (0-based)."""
    index = line - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        if lines[index].strip().startswith("# --"):
            return True
        index -= 1
    return False


def _undocumented(node: yaml.Node, lines: list[str], path: str = "") -> list[str]:
    """Keys neither documented themselves nor fully documented through their children."""
    missing: list[str] = []
    if not isinstance(node, yaml.MappingNode):
        return missing
    for key, value in node.value:
        child = f"{path}.{key.value}" if path else key.value
        if _documented(lines, key.start_mark.line):
            continue
        if isinstance(value, yaml.MappingNode) and value.value:
            missing += _undocumented(value, lines, child)
        else:
            missing.append(child)
    return missing


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    missing = _undocumented(yaml.compose(text), text.splitlines())
    assert missing == []


def _objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema with declared properties, by path."""
    found = []
    if schema.get("type") == "object" and "properties" in schema:
        found.append((path or "<root>", schema))
        for key, child in schema["properties"].items():
            found += _objects(child, f"{path}.{key}" if path else key)
    return found


def test_schema_is_strict_at_every_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _objects(schema)
    assert len(objects) > 20
    loose = [path for path, obj in objects if obj.get("additionalProperties") is not False]
    assert loose == []


def test_schema_covers_every_default_value() -> None:
    """Each key of values.yaml is declared in the schema (values.yaml is what users copy)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict) or "properties" not in node:
            return []
        missing = []
        for key, item in value.items():
            if key not in node["properties"]:
                missing.append(f"{path}.{key}")
            else:
                missing += walk(item, node["properties"][key], f"{path}.{key}")
        return missing

    assert walk(values, schema, "") == []
