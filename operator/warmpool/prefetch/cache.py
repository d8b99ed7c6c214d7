"""The node-local cache: layout, keys, locks, hit verification, use tracking and eviction.

Layout under the cache root (a hostPath shared by every pod on the node)::

    models/<key>/          published models, read-only, what servers read (via --dest)
    meta/<key>.json        the manifest recorded at download time; its mtime = last use (LRU)
    staging/<key>/         a download in progress: data/ + journal (kept for resume)
    locks/<key>.lock       flock: one filler per key on the node; eviction takes it too
    refs/<key>             use count: one hard link per pod using the model (see mark_in_use)
    inuse/<key>/<holder>   fallback use marker when a hard link cannot be made
    trash/                 models being deleted (renamed here first: never half-deleted in models/)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from warmpool.prefetch.fsutil import fsync_dir
from warmpool.prefetch.model import Manifest
from warmpool.prefetch.uris import redact

log = logging.getLogger("warmpool.prefetch")

_HASH_CHUNK = 8 * 1024 * 1024


def cache_key(
    uri: str,
    revision: str | None,
    include: tuple[str, ...] | list[str] = (),
    endpoint: str | None = None,
) -> str:
    """The cache directory name of a model: a hash of (source URI, revision, include patterns,
    endpoint). The endpoint is part of it because `s3://bucket/prefix` on two different
    S3-compatible stores are two different models.

    Credentials and query strings are dropped from the URI first, so a rotated token keeps the
    key. The include patterns are part of it because they change what the directory holds.
    """
    identity = {
        "uri": redact(uri).rstrip("/"),
        "revision": revision or "",
        "include": sorted(include),
    }
    if endpoint:
        identity["endpoint"] = redact(endpoint).rstrip("/")
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheLayout:
    """Paths inside one cache root."""

    root: Path

    def ensure(self) -> None:
        for sub in ("models", "meta", "staging", "locks", "refs", "inuse", "trash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def model_dir(self, key: str) -> Path:
        return self.root / "models" / key

    def meta_path(self, key: str) -> Path:
        return self.root / "meta" / f"{key}.json"

    def staging_dir(self, key: str) -> Path:
        return self.root / "staging" / key

    def lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def ref_path(self, key: str) -> Path:
        return self.root / "refs" / key

    def markers_dir(self, key: str) -> Path:
        return self.root / "inuse" / key


@contextlib.asynccontextmanager
async def key_lock(layout: CacheLayout, key: str) -> AsyncIterator[None]:
    """Hold the node-wide exclusive lock of ``key`` (a second prefetcher waits here)."""
    fd = os.open(layout.lock_path(key), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another prefetcher on this node is filling %s; waiting for it", key)
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def read_manifest(layout: CacheLayout, key: str) -> Manifest | None:
    try:
        return Manifest.model_validate_json(layout.meta_path(key).read_bytes())
    except (OSError, ValidationError):
        return None


def _sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def verify_hit(layout: CacheLayout, key: str, rehash: bool) -> tuple[Manifest | None, str]:
    """Check a published model against its manifest; returns (manifest or None, why not).

    The fast check compares each file's size and mtime (ns) with those recorded right after the
    download was verified: files are read-only and nothing rewrites them in place, so a change
    shows in the mtime. ``rehash`` re-reads every byte instead.
    """
    manifest = read_manifest(layout, key)
    model_dir = layout.model_dir(key)
    if manifest is None:
        return None, "no manifest"
    if not model_dir.is_dir():
        return None, "manifest without a published directory"
    for entry in manifest.files:
        path = model_dir / entry.path
        try:
            stat = path.stat()
        except OSError:
            return None, f"{entry.path} is missing"
        if stat.st_size != entry.size or stat.st_mtime_ns != entry.mtime_ns:
            return None, f"{entry.path} changed since it was verified (size or mtime)"
        if rehash and _sha256_of(path) != entry.sha256:
            return None, f"{entry.path} no longer has sha256 {entry.sha256[:12]}.."
    return manifest, ""


def touch_last_use(layout: CacheLayout, key: str) -> None:
    """Mark ``key`` as just used (its manifest's mtime orders the LRU eviction)."""
    with contextlib.suppress(OSError):
        os.utime(layout.meta_path(key))


def mark_in_use(layout: CacheLayout, key: str, pod_dir: Path, holder: str) -> Path:
    """Record that a pod uses ``key``; returns the marker made.

    The marker is a hard link to ``refs/<key>`` placed in the pod's own volume (next to
    ``--dest``): when the pod goes away the kubelet deletes that volume and the link count of
    ``refs/<key>`` drops by itself, with no daemon, lease or clean-up hook, and a crashed pod
    cannot leak a reference forever. That needs the pod volume and the cache on one filesystem
    (the default node layout, /var/lib/kubelet and /var/cache on the root fs); where a hard link
    cannot be made, a marker file under inuse/<key>/ protects the model for ``in_use_ttl``.
    """
    ref = layout.ref_path(key)
    ref.touch(exist_ok=True)
    link = pod_dir / f".warmpool-ref-{key}"
    try:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.link(ref, link)
        return link
    except OSError as error:
        log.info("cannot hard-link a use reference into %s (%s); using a marker", pod_dir, error)
        markers = layout.markers_dir(key)
        markers.mkdir(parents=True, exist_ok=True)
        marker = markers / (holder or f"{os.uname().nodename}-{os.getpid()}")
        marker.touch()
        os.utime(marker)
        return marker


def in_use(layout: CacheLayout, key: str, in_use_ttl: float, now: float | None = None) -> bool:
    """Whether any pod still uses ``key`` (a live hard link or a fresh marker)."""
    with contextlib.suppress(FileNotFoundError):
        if layout.ref_path(key).stat().st_nlink > 1:
            return True
    now = time.time() if now is None else now
    markers = layout.markers_dir(key)
    if markers.is_dir():
        for marker in markers.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - marker.stat().st_mtime < in_use_ttl:
                    return True
    return False


def remove_tree(layout: CacheLayout, path: Path) -> None:
    """Delete a directory by first renaming it into trash/ (atomic), then removing it."""
    if not path.exists():
        return
    doomed = layout.root / "trash" / f"{path.name}.{uuid.uuid4().hex[:8]}"
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def evict(layout: CacheLayout, key: str) -> None:
    """Remove a published model: manifest first (no more hits), then the directory."""
    with contextlib.suppress(FileNotFoundError):
        layout.meta_path(key).unlink()
    fsync_dir(layout.root / "meta")
    remove_tree(layout, layout.model_dir(key))
    # The lock file stays: a waiter may hold it open, and a new inode would split the lock.
    with contextlib.suppress(FileNotFoundError):
        layout.ref_path(key).unlink()
    shutil.rmtree(layout.markers_dir(key), ignore_errors=True)


def _try_lock(layout: CacheLayout, key: str) -> int | None:
    fd = os.open(layout.lock_path(key), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True)
class CachedModel:
    key: str
    size: int
    last_use: float


def cached_models(layout: CacheLayout) -> list[CachedModel]:
    models = []
    for meta in (layout.root / "meta").glob("*.json"):
        manifest = read_manifest(layout, meta.stem)
        with contextlib.suppress(FileNotFoundError):
            last_use = meta.stat().st_mtime
            size = manifest.total_bytes if manifest else 0
            models.append(CachedModel(key=meta.stem, size=size, last_use=last_use))
    return models


def make_room(
    layout: CacheLayout, need: int, size_limit: int, keep: str, in_use_ttl: float
) -> list[str]:
    """Evict least recently used models no pod uses until ``need`` more bytes fit the budget.

    Returns the evicted keys. Models in use, the one being filled (``keep``) and models another
    prefetcher holds locked are never evicted; if that is not enough, the budget is exceeded
    (logged) rather than breaking a running pod.
    """
    models = cached_models(layout)
    used = sum(model.size for model in models)
    evicted: list[str] = []
    for model in sorted(models, key=lambda model: model.last_use):
        if used + need <= size_limit:
            break
        if model.key == keep or in_use(layout, model.key, in_use_ttl):
            continue
        fd = _try_lock(layout, model.key)
        if fd is None:
            continue
        try:
            evict(layout, model.key)
        finally:
            os.close(fd)
        used -= model.size
        evicted.append(model.key)
        log.info(
            "evicted %s (%d bytes, unused) to stay within the cache budget", model.key, model.size
        )
    if used + need > size_limit:
        log.warning(
            "cache budget %d bytes exceeded: %d in use + %d needed; nothing else can be evicted",
            size_limit,
            used,
            need,
        )
    return evicted
