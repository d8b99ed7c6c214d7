"""The base every API model shares: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class APIModel(BaseModel):
    """Base of the InferencePool models.

    Fields are snake_case in Python and camelCase in manifests; unknown fields are an error
    (the CRD schema prunes them at the apiserver, the model refuses them everywhere else), and
    every field carries a description that becomes `kubectl explain` text.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )


class Validations(dict[str, Any]):
    """CEL rules of one schema node (`x-kubernetes-validations`); `|` concatenates them."""

    def __or__(self, other: dict[str, Any]) -> Validations:  # type: ignore[override]
        key = "x-kubernetes-validations"
        return Validations({key: [*self.get(key, []), *other.get(key, [])]})


def cel(rule: str, message: str, field_path: str | None = None) -> Validations:
    """One CEL validation rule, enforced by the apiserver with `message` naming the field.

    `field_path` (relative to the node, e.g. ".warmFloor") makes the apiserver report the error
    at that field rather than at the object holding the rule.
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return Validations({"x-kubernetes-validations": [entry]})
