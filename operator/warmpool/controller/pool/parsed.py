"""A pool's body read once per version: its validated spec, its parsed status, its render inputs.

The refresh loop syncs every pool once per scaling interval. Validating the manifest and parsing
the status with pydantic, and serialising what the render reads for the render signature, were
a third of an idle sync's CPU (py-spy of `benchmarks/scale.py`'s idle ticks, 1,000 pools),
although none of them can change until the object does. Every write to an object (spec,
metadata or status) gives it a new resourceVersion, so (uid, resourceVersion) names one content:
the results are kept per pool and recomputed when either differs. A body without a
resourceVersion is never cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warmpool.api.resource import InferencePool
from warmpool.api.status import InferencePoolStatus
from warmpool.contract import PoolKey
from warmpool.controller.pool.status import FOREIGN_FIELDS, parse_status
from warmpool.controller.pool.validate import Invalid, validate_pool


@dataclass(frozen=True)
class ParsedPool:
    """What a sync reads from one version of a pool's body (the models are frozen)."""

    #: (uid, resourceVersion) of the body these were computed from.
    version: tuple[str, str] | None
    #: The pool as a model, or why it cannot be served (`validate_pool`).
    checked: InferencePool | Invalid
    #: status as the operator reads it (`parse_status`: kopf's part left out).
    status: InferencePoolStatus
    #: status without the fields other writers own (what `status_patch` compares against).
    public_status: InferencePoolStatus
    #: A digest of what the render reads from the body (`render_inputs`).
    render_inputs: str


def body_version(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(uid, resourceVersion), or None when the body lacks either."""
    meta = body.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not version:
        return None
    return (str(uid), str(version))


def render_inputs(body: Mapping[str, Any]) -> str:
    """A digest of everything `build_children` reads from the body: the pool's identity,
    labels, annotations and spec (the rest of its inputs are the sync's: see
    `reconcile.render_signature`)."""
    meta = body.get("metadata") or {}
    inputs = [
        {k: meta.get(k) for k in ("name", "namespace", "uid", "generation", "labels")},
        meta.get("annotations"),
        body.get("spec"),
    ]
    encoded = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def parse_pool(body: Mapping[str, Any]) -> ParsedPool:
    raw = body.get("status")
    public = {key: value for key, value in (raw or {}).items() if key not in FOREIGN_FIELDS}
    return ParsedPool(
        version=body_version(body),
        checked=validate_pool(body),
        status=parse_status(raw),
        public_status=parse_status(public),
        render_inputs=render_inputs(body),
    )


class ParsedPools:
    """The last `ParsedPool` of each pool, reused while its body's version is the same."""

    def __init__(self) -> None:
        self._parsed: dict[PoolKey, ParsedPool] = {}

    def parse(self, key: PoolKey, body: Mapping[str, Any]) -> ParsedPool:
        version = body_version(body)
        known = self._parsed.get(key)
        if known is not None and version is not None and known.version == version:
            return known
        parsed = parse_pool(body)
        if version is None:
            self._parsed.pop(key, None)
        else:
            self._parsed[key] = parsed
        return parsed

    def forget(self, key: PoolKey) -> None:
        self._parsed.pop(key, None)
