"""Names, labels and annotations of a pool's children (pure).

Every child carries the recommended `app.kubernetes.io/*` labels and `warmpool.dev/pool`. Pod
templates are stricter: only the inference server's pods carry `warmpool.dev/pool`, because the
pool's Services select on that label alone (contract) and a ready placeholder or pre-pull pod
must never be counted, or routed to, as a warm replica.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, Literal

from warmpool.api import resource as api_resource
from warmpool.api.spec import ModelSpec
from warmpool.contract import GROUP, POOL_LABEL

Component = Literal["inference-server", "prepull", "headroom", "warmup"]

INFERENCE_SERVER: Final = "inference-server"
PREPULL: Final = "prepull"
HEADROOM: Final = "headroom"
WARMUP: Final = "warmup"

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"

#: Triton backend of the model (spec.server.backend), for dashboards and selectors.
BACKEND_LABEL = f"{GROUP}/backend"
#: Hash of everything else the operator writes into a child; equal hashes mean an apply
#: would change nothing, so an idle resync can skip it.
SPEC_HASH_ANNOTATION = f"{GROUP}/spec-hash"
#: Fingerprint of the weights a pod or pre-pull copy serves (see `model_fingerprint`).
MODEL_FINGERPRINT_ANNOTATION = f"{GROUP}/model-fingerprint"
#: With pre-pull: the model spec (JSON) the server Deployment was rendered from. The operator
#: reads it back to keep the replicas on these weights while a new revision is pre-pulled
#: (controller/prepull/gate.py): the Deployment itself remembers, across operator restarts.
MODEL_SPEC_ANNOTATION = f"{GROUP}/model-spec"
#: Annotation of a replica's pod template (and so of its pods): the template's revision, a hash
#: of the template itself. The pool's status.rollout counts pods by it.
REVISION_ANNOTATION = f"{GROUP}/revision"
#: Prefix of the node label that says a node holds a verified copy of a pool's weights.
PREPULL_LABEL_PREFIX = f"prepull.{GROUP}/"

#: Service and Deployment names are DNS-1035 labels (63 characters); `<pool>-pods` is the
#: longest Service name derived from the pool's.
MAX_POOL_NAME_LENGTH = api_resource.MAX_POOL_NAME_LENGTH


def recommended_labels(pool: str, component: Component) -> dict[str, str]:
    """The `app.kubernetes.io/*` labels of a child of `pool`."""
    return {
        NAME_LABEL: "triton",
        INSTANCE_LABEL: pool,
        COMPONENT_LABEL: component,
        PART_OF_LABEL: "warmpool",
        MANAGED_BY_LABEL: "warmpool",
    }


def object_labels(pool: str, component: Component, **extra: str) -> dict[str, str]:
    """Labels on a child object's own metadata: recommended labels plus `warmpool.dev/pool`."""
    return {**recommended_labels(pool, component), POOL_LABEL: pool, **extra}


def server_selector(pool: str) -> dict[str, str]:
    """Selects the pool's inference-server pods, and only them (the contract's selector)."""
    return {POOL_LABEL: pool}


def component_selector(pool: str, component: Component) -> dict[str, str]:
    """Selects the pods of a helper workload (pre-pull, headroom), which lack the pool label."""
    return {
        INSTANCE_LABEL: pool,
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: "warmpool",
    }


def _short_hash(payload: Any, length: int) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def model_fingerprint(model: ModelSpec) -> str:
    """A 20-hex-digit fingerprint of what the prefetcher fetches and verifies.

    It changes when the weights would: uri, revision, include patterns, checksums, endpoint.
    Used as the value of a node's pre-pull label, so a node that holds an older revision stops
    attracting replicas the moment the revision changes.
    """
    return _short_hash(
        {
            "uri": model.uri,
            "revision": model.revision,
            "include": sorted(model.include),
            "sha256": dict(sorted(model.sha256.items())),
            "sha256File": model.sha256_file,
            "endpoint": model.endpoint,
        },
        20,
    )


def model_spec_annotation(model: ModelSpec) -> str:
    """`MODEL_SPEC_ANNOTATION`'s value: the model spec as compact JSON, as in the manifest."""
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return json.dumps(dumped, sort_keys=True, separators=(",", ":"))


def prepull_node_label_key(namespace: str, pool: str) -> str:
    """Node label key marking a verified pre-pulled copy of `namespace/pool`'s weights.

    The name part of a label key is at most 63 characters, too few for `<pool>.<ns>`, so it is a
    hash of both: `prepull.warmpool.dev/<sha1(ns/pool)[:16]>`. Its value is the pool's
    `model_fingerprint`.
    """
    digest = hashlib.sha1(f"{namespace}/{pool}".encode(), usedforsecurity=False).hexdigest()
    return PREPULL_LABEL_PREFIX + digest[:16]


def template_revision(template: dict[str, Any]) -> str:
    """The revision of a pod template: a hash of it, its own revision annotation left out."""
    annotations = dict(template.get("metadata", {}).get("annotations") or {})
    annotations.pop(REVISION_ANNOTATION, None)
    payload = {**template, "metadata": {**template.get("metadata", {}), "annotations": annotations}}
    return _short_hash(payload, 10)


def content_hash(obj: dict[str, Any]) -> str:
    """Hash of a rendered object, its own spec-hash annotation left out."""
    annotations = dict(obj.get("metadata", {}).get("annotations") or {})
    annotations.pop(SPEC_HASH_ANNOTATION, None)
    payload = {**obj, "metadata": {**obj.get("metadata", {}), "annotations": annotations}}
    return _short_hash(payload, 16)
