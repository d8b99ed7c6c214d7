"""The InferencePool resource as a whole, and its identity on the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from warmpool.api.spec import InferencePoolSpec
from warmpool.api.status import InferencePoolStatus
from warmpool.contract import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    POOL_LABEL,
    VERSION,
    WAKE_ANNOTATION,
    WARM_CONDITION,
)

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "GROUP",
    "KIND",
    "MAX_POOL_NAME_LENGTH",
    "PLURAL",
    "POOL_LABEL",
    "POOL_NAME_PATTERN",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "WAKE_ANNOTATION",
    "WARM_CONDITION",
    "InferencePool",
    "ObjectMeta",
]

SINGULAR = "inferencepool"
SHORT_NAMES = ["ipool"]
CATEGORIES = ["warmpool"]

#: A pool's name names its Services `<pool>` and `<pool>-pods`: a DNS-1035 label with room
#: for the suffix.
MAX_POOL_NAME_LENGTH = 63 - len("-pods")
POOL_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class ObjectMeta(BaseModel):
    """The parts of metadata warmpool reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class InferencePool(BaseModel):
    """An InferencePool as read from the API (or a manifest)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta
    spec: InferencePoolSpec
    status: InferencePoolStatus = Field(default_factory=InferencePoolStatus)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> InferencePool:
        """Parse a manifest; kopf's `status.kopf` and unknown status keys are tolerated."""
        return cls.model_validate(manifest)

    @property
    def model_name(self) -> str:
        """Name of the model in Triton's repository."""
        return self.spec.model.name or self.metadata.name
