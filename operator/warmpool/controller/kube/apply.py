"""Server-side apply of a pool's children that writes only when something would change.

Every rendered child carries the annotation `warmpool.dev/spec-hash`: a hash of everything the
operator writes into it. An apply is needed when the live object lacks that hash or, for a
Deployment, when its replicas drifted (someone scaled it by hand). Comparing a hash rather than
the live object field by field is deliberate: the apiserver defaults and normalises fields
(quantities, int-or-string ports, added defaults), so a field-by-field comparison would see a
difference forever and an idle resync would write on every pass.

The `Applier` remembers the hash it last saw per child, so a converged pool costs no request at
all. Deployments come from the watch cache, so they are compared without a read. The other kinds
are learnt from one metadata-only LIST per kind (`prime`, at startup and every `recheck_seconds`):
with 1,000 pools, reading each child with a GET made 7 reads per pool on every start and every
recheck (7,000 GETs); a primed kind answers "absent" for a child it did not list, so a new pool's
children are applied without a read. Without a fresh prime (the LIST failed) a child is read
once with a GET, as before.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from warmpool.contract import Obj
from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef
from warmpool.controller.kube.watch import (
    TEMPLATE_EDITORS,
    is_newer,
    resource_version,
    template_editors,
)
from warmpool.render.children import CHILD_KINDS
from warmpool.render.labels import MANAGED_BY_LABEL, SPEC_HASH_ANNOTATION, content_hash

logger = logging.getLogger(__name__)

#: Kinds of children learnt by LIST: all but Deployments, which come from the watch cache.
PRIMED_KINDS = tuple((version, kind) for version, kind in CHILD_KINDS if kind != "Deployment")
CHILDREN_SELECTOR = f"{MANAGED_BY_LABEL}=warmpool"
#: Children are re-listed after this fraction of recheck_seconds, before the prime lapses.
REPRIME_FRACTION = 0.8


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
        # When each kind was last listed, per namespace ("" = every namespace): a child of a
        # kind listed less than recheck_seconds ago needs no GET.
        self._primed_at: dict[tuple[str, str], float] = {}
        # Children of deleted pools: their names may come back (a pool re-created under the
        # same name) while the old objects are still being garbage-collected; read them.
        self._must_read: set[tuple[str, str, str]] = set()
        # The resourceVersion of each child this applier deleted, until a watch cache shows it
        # gone: an older cached copy must not cause a second DELETE.
        self._deleted: dict[tuple[str, str, str], Obj] = {}
        # Per Deployment: the generation this applier left it at after reverting a hand edit of
        # its pod template. Fields another manager added (the operator never set them) survive
        # a forced apply; at this generation they are known and reported, not re-applied, so
        # an idle resync writes nothing.
        self._edits_seen: dict[tuple[str, str, str], int] = {}
        #: Hand edits this applier reverted since the caller last took them: (ref, editors,
        #: editors still owning template fields after the revert).
        self.reverted: list[tuple[ObjectRef, list[str], list[str]]] = []

    def prime(
        self, kind: str, namespace: str | None, items: list[Obj], list_version: str | None
    ) -> None:
        """Learn every child of `kind` from one LIST (metadata suffices: the spec-hash is an
        annotation). Not for Deployments, whose replicas come from the watch cache.

        `list_version`: the LIST's resourceVersion. What this applier learnt later (its own
        writes' responses) wins; a remembered child missing from the LIST is known absent
        (deleted by hand) unless it was written after the LIST was taken.
        """
        scope = namespace or ""
        listed: dict[tuple[str, str, str], Obj] = {}
        for item in items:
            meta = item.get("metadata") or {}
            key = (kind, str(meta.get("namespace") or ""), str(meta.get("name")))
            listed[key] = {**item, "kind": kind}
        for key, item in listed.items():
            remembered = self._seen.get(key)
            if remembered is None or is_newer(item, remembered):
                self._seen[key] = _summary(item)
            self._must_read.discard(key)
        version = {"metadata": {"resourceVersion": list_version}}
        for key in [k for k in self._seen if k[0] == kind and k not in listed]:
            if scope and key[1] != scope:
                continue
            remembered = self._seen[key]
            if remembered is not None and not is_newer(version, remembered):
                continue  # written after the LIST was taken
            self._seen[key] = None
        # Children of deleted pools that this LIST no longer holds are gone: known absent.
        self._must_read -= {
            k for k in self._must_read if k[0] == kind and (not scope or k[1] == scope)
        } - listed.keys()
        self._primed_at[(kind, scope)] = time.monotonic()

    async def prime_all(self, namespaces: Sequence[str]) -> None:
        """LIST (metadata only) every primed kind of child, in `namespaces` (empty: all)."""
        for api_version, kind in PRIMED_KINDS:
            scopes: list[str | None] = list(namespaces) or [None]
            for namespace in scopes:
                items, version = await self._client.list_metadata(
                    api_version, kind, namespace, CHILDREN_SELECTOR
                )
                self.prime(kind, namespace, items, version)

    async def keep_primed(self, namespaces: Sequence[str]) -> None:
        """Re-LIST before each prime lapses, so that a child deleted or edited by hand is
        noticed (and restored by the next sync) without a GET per child; when a LIST fails,
        the children are read one by one as they come up."""
        while True:
            await asyncio.sleep(self._recheck_seconds * REPRIME_FRACTION)
            try:
                await self.prime_all(namespaces)
            except ApiError as error:
                logger.warning("listing the pools' children failed (read one by one): %s", error)

    def _primed(self, key: tuple[str, str, str]) -> bool:
        """Whether a fresh LIST covers `key` (its kind, in its namespace or everywhere)."""
        if key in self._must_read:
            return False
        now = time.monotonic()
        return any(
            now - self._primed_at.get((key[0], scope), -math.inf) < self._recheck_seconds
            for scope in (key[1], "")
        )

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
            self._must_read.add(key)

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
        elif key not in self._seen and self._primed(key):
            live = None  # a fresh LIST of its kind did not hold it
        else:
            live = await self._client.get(ref)
            self._checked_at[key] = time.monotonic()
            self._must_read.discard(key)
        reason = drift(desired, live)
        editors = self.template_edit(live, key)
        if reason is None and editors:
            reason = f"pod template edited by {', '.join(editors)}"
        if reason is None:
            self._seen[key] = _summary(live)
            return False
        logger.info("applying %s (%s)", ref, reason)
        result = await self._client.apply(desired)
        self._seen[key] = _summary(result)
        self._checked_at[key] = time.monotonic()
        if editors:
            left = template_editors(result)
            self._edits_seen[key] = int((result.get("metadata") or {}).get("generation") or 0)
            self.reverted.append((ref, editors, left))
        return True

    def template_edit(
        self, live: Mapping[str, Any] | None, key: tuple[str, str, str] | None = None
    ) -> list[str]:
        """The managers that edited a live Deployment's pod template and are not yet answered
        (an apply that reverted what the operator owns); [] when there is nothing to do."""
        if live is None:
            return []
        editors = list(live.get(TEMPLATE_EDITORS) or [])
        if not editors:
            return []
        meta = live.get("metadata") or {}
        if key is None:
            key = ("Deployment", str(meta.get("namespace") or ""), str(meta.get("name")))
        if self._edits_seen.get(key) == meta.get("generation"):
            return []
        return editors

    def is_current(self, kind: str, namespace: str, name: str, wanted: str | None) -> bool:
        """Whether the child was last seen (recently enough) with spec-hash `wanted`."""
        key = (kind, namespace, name)
        if key not in self._seen or self._stale(key):
            return False
        seen = self._seen[key]
        return seen is not None and spec_hash(seen) == wanted

    def _stale(self, key: tuple[str, str, str]) -> bool:
        if self._primed(key):
            return False
        return time.monotonic() - self._checked_at.get(key, 0.0) >= self._recheck_seconds

    async def delete(
        self,
        ref: ObjectRef,
        *,
        owner_uid: str,
        live: Mapping[str, Any] | None = None,
        live_known: bool = False,
    ) -> bool:
        """Delete a child of the pool `owner_uid` that must no longer exist; True when a delete
        was sent. Objects the pool does not own are left alone. `live_known`: `live` comes
        from a watch cache (None = absent), so no read is needed."""
        key = _key(ref)
        if live_known:
            gone = self._deleted.get(key)
            if live is None:
                self._deleted.pop(key, None)  # the cache has seen the delete
            elif gone is not None and (resource_version(live) or 0) <= (
                resource_version(gone) or 0
            ):
                live = None  # the cache has not yet seen this applier's delete
            elif (live.get("metadata") or {}).get("deletionTimestamp"):
                live = None  # already being deleted
            self._seen[key] = (
                _summary(live) if live is not None and _owned(live, owner_uid) else None
            )
        elif key not in self._seen and self._primed(key):
            self._seen[key] = None
        elif key not in self._seen or self._stale(key):
            self._checked_at[key] = time.monotonic()
            self._must_read.discard(key)
            # Read first: a DELETE of an absent object is still a write request.
            found = await self._client.get(ref)
            self._seen[key] = (
                _summary(found) if found is not None and _owned(found, owner_uid) else None
            )
        seen = self._seen[key]
        if seen is None or not _owned(seen, owner_uid):
            return False
        try:
            deleted = await self._client.delete(ref)
        except ApiError:
            self._seen.pop(key, None)
            raise
        self._deleted[key] = {"metadata": {"resourceVersion": seen["metadata"]["resourceVersion"]}}
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
    owners = [ref for ref in meta.get("ownerReferences") or [] if ref.get("uid")]
    if owners:
        summary["metadata"]["ownerReferences"] = [{"uid": ref["uid"]} for ref in owners]
    if obj.get("kind") == "Deployment":
        summary["spec"] = {"replicas": (obj.get("spec") or {}).get("replicas")}
    return summary
