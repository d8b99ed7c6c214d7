"""Property: any hostile spec either parses or fails with a ValidationError that names a field;
nothing else ever escapes the models (the operator parses every pool through them)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from pydantic import ValidationError

from support.hostile import VALID_SPEC, hostile_specs
from warmpool.api import InferencePoolSpec


def test_valid_spec_parses() -> None:
    InferencePoolSpec.model_validate(VALID_SPEC)


@settings(max_examples=400, deadline=None)
@given(hostile_specs())
def test_hostile_specs_parse_or_name_the_field(spec: dict[str, Any]) -> None:
    try:
        InferencePoolSpec.model_validate(spec)
    except ValidationError as error:
        for detail in error.errors():
            # A location, or (for model-level rules) a message that names spec.<field>.
            assert detail["loc"] or "spec." in detail["msg"], detail
