"""Server-side apply of a pool's children that writes only when something would change.

Every rendered child carries the annotation `warmpool.dev/spec-hash`: a hash of everything the
operator writes into it. An apply is needed when the live object lacks that hash or, for a
Deployment, when its replicas drifted (someone scaled it by hand). Comparing a hash rather than
the live object field by field is deliberate: the apiserver defaults and normalises fields
(quantities, int-or-string ports, added defaults), so a field-by-field comparison would see a
difference forever and an idle resync would write on every pass.

The `Applier` remembers the hash it last saw per child, so a converged pool costs no request at
all; after a restart it reads each child once (a GET, never a write) to learn the hashes.
Deployments come from the watch cache, so they are compared without a read.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from warmpool.controller.cache import is_newer
from warmpool.controller.client import ApiError, KubeClient, ObjectRef
from warmpool.render.labels import SPEC_HASH_ANNOTATION, content_hash

logger = logging.getLogger(__name__)

Obj = dict[str, Any]


def with_spec_hash(manifest: Mapping[str, Any]) -> Obj:
    """`manifest` carrying its spec-hash annotation: as it is when render set one (the usual
    case; copying every child on every pass was most of an idle sync's time), else a copy
    with the hash computed here."""
    if spec_hash(manifest):
        return dict(manifest)
    result = copy.deepcopy(dict(manifest))
    meta = result.setdefault("metadata", {})
    annotations = meta.setdefault("annotations", {})
    if not annotations.get(SPEC_HASH_ANNOTATION):
        annotations[SPEC_HASH_ANNOTATION] = content_hash(result)
    return result


def spec_hash(manifest: Mapping[str, Any]) -> str | None:
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(SPEC_HASH_ANNOTATION)
    return str(value) if value else None


def drift(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """Why `desired` must be applied over `live` (None: it need not be).

    `desired` carries its spec-hash. Only fields the operator owns are looked at: the hash it
    wrote, and a Deployment's replicas (the one field others are known to change by hand).
    """
    if live is None:
        return "missing"
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return None  # being deleted (garbage collection); applying would fight it
    if spec_hash(live) != spec_hash(desired):
        return "changed"
    if desired.get("kind") == "Deployment":
        want = (desired.get("spec") or {}).get("replicas")
        have = (live.get("spec") or {}).get("replicas")
        if want is not None and want != have:
            return f"replicas {have} -> {want}"
    return None


def _key(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace or "", ref.name)


class Applier:
    """Applies children through one client, skipping those already as desired."""

    def __init__(self, client: KubeClient, *, recheck_seconds: float = 300.0) -> None:
        self._client = client
        # Children not in a watch cache are re-read (never re-written) this often, so one
        # deleted or edited by hand is restored without a watch on every kind.
        self._recheck_seconds = recheck_seconds
        self._checked_at: dict[tuple[str, str, str], float] = {}
        # What the live object held when last seen: its spec-hash and (Deployments) replicas,
        # or None for "known absent". Only this process writes these fields (force apply).
        self._seen: dict[tuple[str, str, str], Obj | None] = {}

    def forget(self, namespace: str, pool: str) -> None:
        """Drop what is remembered of a deleted pool's children."""
        mine = [
            k
            for k in self._seen
            if k[1] == namespace and (k[2] == pool or k[2].startswith(f"{pool}-"))
        ]
        for key in mine:
            del self._seen[key]
            self._checked_at.pop(key, None)

    async def apply(
        self,
        manifest: Mapping[str, Any],
        live: Mapping[str, Any] | None = None,
        *,
        live_known: bool = False,
    ) -> bool:
        """Apply `manifest` when it differs from the live object; True when a write was made.

        `live_known`: the caller passes the live object from a watch cache (None = absent), so
        no read is needed; what this applier itself wrote last wins over an older cached copy.
        """
        desired = with_spec_hash(manifest)
        ref = ObjectRef.of(desired)
        key = _key(ref)
        remembered = self._seen.get(key)
        if live_known:
            if remembered is not None and (live is None or not is_newer(live, remembered)):
                live = remembered
        elif key in self._seen and not self._stale(key):
            live = remembered
        else:
            live = await self._client.get(ref)
            self._checked_at[key] = time.monotonic()
        reason = drift(desired, live)
        if reason is None:
            self._seen[key] = _summary(live)
            return False
        logger.info("applying %s (%s)", ref, reason)
        result = await self._client.apply(desired)
        self._seen[key] = _summary(result)
        self._checked_at[key] = time.monotonic()
        return True

    def _stale(self, key: tuple[str, str, str]) -> bool:
        return time.monotonic() - self._checked_at.get(key, 0.0) >= self._recheck_seconds

    async def delete(self, ref: ObjectRef, *, owner_uid: str) -> bool:
        """Delete a child of the pool `owner_uid` that must no longer exist; True when a delete
        was sent. Objects the pool does not own are left alone."""
        key = _key(ref)
        if key not in self._seen or self._stale(key):
            self._checked_at[key] = time.monotonic()
            # Read first: a DELETE of an absent object is still a write request.
            live = await self._client.get(ref)
            self._seen[key] = (
                _summary(live) if live is not None and _owned(live, owner_uid) else None
            )
        if self._seen[key] is None:
            return False
        try:
            deleted = await self._client.delete(ref)
        except ApiError:
            self._seen.pop(key, None)
            raise
        self._seen[key] = None
        return deleted


def _owned(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in refs)


def _summary(obj: Mapping[str, Any] | None) -> Obj | None:
    """The parts of a live object `drift` compares (kept instead of whole objects)."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    summary: Obj = {
        "kind": obj.get("kind"),
        "metadata": {
            "annotations": {SPEC_HASH_ANNOTATION: spec_hash(obj)},
            "resourceVersion": meta.get("resourceVersion"),
        },
    }
    if obj.get("kind") == "Deployment":
        summary["spec"] = {"replicas": (obj.get("spec") or {}).get("replicas")}
    return summary
