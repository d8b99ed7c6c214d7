"""The InferencePool API: pydantic models (the source of truth) and CRD generation."""

from warmpool.api.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    POOL_LABEL,
    VERSION,
    WAKE_ANNOTATION,
    WARM_CONDITION,
    InferencePool,
    ObjectMeta,
)
from warmpool.api.spec import InferencePoolSpec
from warmpool.api.status import (
    ColdStart,
    Condition,
    ConditionType,
    InferencePoolStatus,
    Phase,
    ScalingStatus,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "POOL_LABEL",
    "VERSION",
    "WAKE_ANNOTATION",
    "WARM_CONDITION",
    "ColdStart",
    "Condition",
    "ConditionType",
    "InferencePool",
    "InferencePoolSpec",
    "InferencePoolStatus",
    "ObjectMeta",
    "Phase",
    "ScalingStatus",
]
