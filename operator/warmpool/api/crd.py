"""Generate the InferencePool CustomResourceDefinition from the pydantic models.

Pydantic's JSON Schema is not a structural CRD schema: it uses `$defs`/`$ref`, `anyOf` with
`null` for optionals, `additionalProperties: false`, titles and JSON-Schema-2020 numeric
exclusives. This module rewrites it into the OpenAPI v3 subset the apiserver accepts, keeps every
description (for `kubectl explain`), carries the CEL rules the models declare, and adds the
subresources, printer columns and names. `warmpool crd` prints the result; crds/ and the Helm
chart hold exactly that text (a test fails on drift).
"""

from __future__ import annotations

from typing import Any

import yaml

from warmpool.api.resource import (
    CATEGORIES,
    GROUP,
    KIND,
    MAX_POOL_NAME_LENGTH,
    PLURAL,
    POOL_NAME_PATTERN,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from warmpool.api.spec import InferencePoolSpec
from warmpool.api.status import InferencePoolStatus

JSONSchema = dict[str, Any]

# Keys of pydantic's output that have no place in a structural schema.
_DROPPED_KEYS = {"title", "$defs"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Where the pool stands",
    },
    {
        "name": "Desired",
        "type": "integer",
        "jsonPath": ".status.desiredReplicas",
        "description": "Replicas the pool is driving to",
    },
    {
        "name": "Ready",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "description": "Replicas whose containers are ready",
    },
    {
        "name": "Warm",
        "type": "integer",
        "jsonPath": ".status.warmReplicas",
        "description": "Replicas past warm-up, receiving traffic",
    },
    {
        "name": "Floor",
        "type": "integer",
        "jsonPath": ".status.scaling.effectiveWarmFloor",
        "description": "Warm floor in force now",
    },
    {
        "name": "Max",
        "type": "integer",
        "jsonPath": ".spec.scaling.maxReplicas",
        "description": "Upper bound of replicas",
    },
    {
        "name": "Cold-Start",
        "type": "number",
        "jsonPath": ".status.lastColdStart.totalSeconds",
        "description": "Seconds of the last cold start, creation to warm",
    },
    {
        "name": "Owner",
        "type": "string",
        "jsonPath": ".status.scaling.owner",
        "priority": 1,
        "description": "Who sets replicas: warmpool or external (spec.replicas)",
    },
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".spec.model.uri",
        "priority": 1,
        "description": "Where the weights come from",
    },
    {
        "name": "Revision",
        "type": "string",
        "jsonPath": ".status.rollout.revision",
        "priority": 1,
        "description": "Revision of the replicas' pod template being rolled out",
    },
    {
        "name": "Updated",
        "type": "integer",
        "jsonPath": ".status.rollout.updatedReplicas",
        "priority": 1,
        "description": "Replicas of that revision",
    },
    {
        "name": "Last-Cold-Start",
        "type": "date",
        "jsonPath": ".status.lastColdStart.startedAt",
        "priority": 1,
        "description": "When the last cold start began",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve_ref(ref: str, defs: dict[str, JSONSchema]) -> JSONSchema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    return defs[ref.removeprefix(prefix)]


def _key_pattern_rule(pattern: str) -> dict[str, str]:
    """A CEL rule holding every key of a map to `pattern` (RE2, as the apiserver's CEL has)."""
    if "'" in pattern:
        raise ValueError(f"cannot quote key pattern {pattern!r} as a CEL raw string")
    return {
        "rule": f"self.all(k, k.matches(r'{pattern}'))",
        "message": f"keys must match {pattern}",
    }


def structural(schema: JSONSchema, defs: dict[str, JSONSchema]) -> JSONSchema:
    """Rewrite one pydantic JSON Schema node (recursively) into a structural CRD schema node."""
    node = dict(schema)
    if "$ref" in node:
        target = _resolve_ref(node.pop("$ref"), defs)
        # Sibling keys (description, default) win over the referenced model's own.
        node = {**target, **node}
    nullable = False
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        any_of = node.pop("anyOf")
        members = [m for m in any_of if m.get("type") != "null"]
        nullable = len(members) < len(any_of)
        if len(members) != 1:
            raise ValueError(f"cannot make a structural schema of anyOf {members!r}")
        member = structural(members[0], defs)
        # The member's own description is the model docstring; the field's wins.
        node = {**member, **{k: v for k, v in node.items() if k != "default" or v is not None}}
    out: JSONSchema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs)
            # `false` is implied (unknown fields are pruned) and `true` is said with
            # x-kubernetes-preserve-unknown-fields; neither is allowed beside properties.
            continue
        if key == "patternProperties":
            # pydantic says a dict's key pattern this way; CRD schemas have no patternProperties:
            # the values' schema becomes additionalProperties and the key pattern a CEL rule.
            if len(value) != 1:
                raise ValueError(f"cannot make a structural schema of patternProperties {value!r}")
            ((pattern, values),) = value.items()
            out["additionalProperties"] = structural(values, defs)
            out.setdefault("x-kubernetes-validations", []).append(_key_pattern_rule(pattern))
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "propertyNames":
            # CRD schemas have no propertyNames; bound the keys with CEL instead.
            if "maxLength" in value:
                limit = value["maxLength"]
                out.setdefault("x-kubernetes-validations", []).append(
                    {
                        "rule": f"self.all(k, size(k) <= {limit})",
                        "message": f"keys must be at most {limit} characters",
                    }
                )

        elif key == "description":
            # Docstrings wrap at the source's line length; kubectl explain re-wraps.
            out[key] = " ".join(str(value).split())
        elif key == "const":
            out["enum"] = [value]
        elif key in {"exclusiveMinimum", "exclusiveMaximum"} and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "default":
            # Empty collections are left to the consumer: defaulting them would write `[]`
            # and `{}` into every stored object for no meaning.
            if value is None or value == [] or value == {}:
                continue
            out[key] = value
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        _default_nested_objects(out)
    if nullable:
        out["nullable"] = True
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
    return out


def _default_nested_objects(node: JSONSchema) -> None:
    """Give optional, non-nullable sub-objects `default: {}` so their own defaults apply.

    The apiserver applies a nested default only when the parent object exists; `{}` on the
    parent makes `spec.scaling.warmFloor` default even when `spec.scaling` is omitted.
    """
    required = set(node.get("required", []))
    for name, sub in node["properties"].items():
        if (
            name not in required
            and sub.get("type") == "object"
            and "properties" in sub
            and not sub.get("nullable")
            and "default" not in sub
        ):
            sub["default"] = {}


def _model_schema(model: type[InferencePoolSpec] | type[InferencePoolStatus]) -> JSONSchema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def build_crd() -> dict[str, Any]:
    """The InferencePool CRD as a dict."""
    spec_schema = _model_schema(InferencePoolSpec)
    status_schema = _model_schema(InferencePoolStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "warmpool",
                "app.kubernetes.io/part-of": "warmpool",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "An InferencePool serves one model with Triton Inference Server "
                                "and keeps it warm: weights prefetched into a node-local cache, "
                                "pods gated on a warm-up that drives latency to steady state, "
                                "replicas scaled between a warm floor and zero from traffic."
                            ),
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": (
                                        f"size(self.metadata.name) <= {MAX_POOL_NAME_LENGTH}"
                                        f" && self.metadata.name.matches('{POOL_NAME_PATTERN}')"
                                    ),
                                    "message": (
                                        "metadata.name must be a DNS-1035 label of at most "
                                        f"{MAX_POOL_NAME_LENGTH} characters: it names the "
                                        "Services <name> and <name>-pods"
                                    ),
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML text that crds/ and the chart carry."""
    header = "# Generated by `warmpool crd` from operator/warmpool/api; do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
