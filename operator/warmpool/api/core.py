"""Kubernetes core types the InferencePool embeds, with their real (bounded) schema.

An open object would let any typo through to the Deployment, where the error surfaces late and
far from the field the user wrote; these models make the apiserver reject it at apply time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from warmpool.api.base import APIModel, cel

#: A Kubernetes resource quantity ("1", "500m", "16Gi"): int-or-string on the wire.
Quantity = Annotated[
    str | int,
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            # The apiserver's own Quantity pattern (resource.Quantity's OpenAPI definition).
            "pattern": (
                r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
            ),
        }
    ),
]

#: A DNS-1123 label: names of Secrets, ConfigMaps, claims, ServiceAccounts.
ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]

#: The name part of a label key: at most 63 characters, alphanumeric at both ends.
_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
#: A label key as Kubernetes validates it: an optional DNS-subdomain prefix and `/`, then a name.
LABEL_KEY_PATTERN = (
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$"
)
#: A label value as Kubernetes validates it (empty allowed).
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

# Checked at the door: a node selector the Deployment would be refused for must not be stored.
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class SecretKeySelector(APIModel):
    """A key of a Secret in the pool's namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253)
    """Key within the Secret."""
    optional: bool | None = None
    """Whether the Secret or its key may be missing."""


class ConfigMapKeySelector(APIModel):
    """A key of a ConfigMap in the pool's namespace."""

    name: ObjectName
    """Name of the ConfigMap."""
    key: str = Field(min_length=1, max_length=253)
    """Key within the ConfigMap."""
    optional: bool | None = None
    """Whether the ConfigMap or its key may be missing."""


class FieldSelector(APIModel):
    """A field of the pod (downward API)."""

    field_path: str = Field(max_length=256)
    """Path of the field, e.g. metadata.name or status.podIP."""
    api_version: str | None = Field(default=None, max_length=64)
    """Version of the schema the path is written in."""


class EnvVarSource(APIModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeySelector | None = None
    """A key of a Secret."""
    config_map_key_ref: ConfigMapKeySelector | None = None
    """A key of a ConfigMap."""
    field_ref: FieldSelector | None = None
    """A field of the pod."""


class EnvVar(APIModel):
    """An environment variable of the model server container (core/v1 EnvVar)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!(has(self.value) && has(self.valueFrom))",
            "value and valueFrom are exclusive",
            ".valueFrom",
        )
    )

    name: str = Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    """Name of the variable."""
    value: str | None = Field(default=None, max_length=32768)
    """Literal value."""
    value_from: EnvVarSource | None = None
    """Source of the value; exclusive with value."""

    @model_validator(mode="after")
    def _exclusive(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: value and valueFrom are exclusive")
        return self


class ResourceRequirements(APIModel):
    """Compute resources of the model server container (core/v1 ResourceRequirements).

    GPUs are set through server.gpu, not here.
    """

    requests: dict[Annotated[str, Field(max_length=253)], Quantity] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 16}
    )
    """Minimum resources, e.g. {cpu: "4", memory: 32Gi}."""
    limits: dict[Annotated[str, Field(max_length=253)], Quantity] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 16}
    )
    """Maximum resources, e.g. {memory: 48Gi}."""


class Toleration(APIModel):
    """A toleration of the model server pods (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=317)
    """Taint key the toleration applies to; empty matches all keys."""
    operator: Literal["Exists", "Equal"] | None = None
    """Relation of key and value."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value the toleration matches."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""
