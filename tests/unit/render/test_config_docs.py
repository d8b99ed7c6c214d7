"""docs/configuration.md is exactly what hack/gen-config-docs.py generates from the models."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "gen-config-docs.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_fresh() -> None:
    expected = _generator().render_markdown()
    actual = (ROOT / "docs" / "configuration.md").read_text()
    assert actual == expected, "docs/configuration.md is stale: run hack/gen-config-docs.py"


def test_reference_covers_every_spec_field() -> None:
    from warmpool.api.spec import InferencePoolSpec

    text = _generator().render_markdown()
    for name, field in InferencePoolSpec.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
    # Nested fields with their docstrings, e.g. the cache kind and the schedule's time zone.
    assert "| `sizeLimit` |" in text
    assert "IANA time zone" in text
