"""The prefetch as a Python API: the init container and the pre-pull DaemonSet both call it.

``prefetch(config)`` returns when the model is verified in the node cache (and linked at
``config.dest`` when one is given), or raises a PrefetchError whose ``line()`` is the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from warmpool.prefetch.cache import (
    CacheLayout,
    cache_key,
    key_lock,
    make_room,
    mark_in_use,
    remove_tree,
    touch_last_use,
    verify_hit,
)
from warmpool.prefetch.checksums import parse_sha256sum_file
from warmpool.prefetch.download import download
from warmpool.prefetch.errors import NotFound, PrefetchError
from warmpool.prefetch.fsutil import allocated_bytes, check_space, disk_full, is_disk_full
from warmpool.prefetch.journal import Journal
from warmpool.prefetch.model import Manifest, PrefetchConfig, RemoteFile
from warmpool.prefetch.progress import Progress, report_every
from warmpool.prefetch.publish import build_manifest, link_dest, publish, seal_staged
from warmpool.prefetch.sources import Source, open_source
from warmpool.prefetch.sources.base import read_all
from warmpool.prefetch.units import human_bytes
from warmpool.prefetch.uris import redact

log = logging.getLogger("warmpool.prefetch")


@dataclass(frozen=True)
class PrefetchResult:
    """What a successful prefetch did."""

    key: str
    """Cache key (directory name under models/)."""
    model_dir: Path
    """The verified, published model directory."""
    cache_hit: bool
    """True when the model was already cached and verified from its manifest."""
    files: int
    total_bytes: int
    fetched_bytes: int
    """Bytes downloaded by this run (0 on a hit; less than total on a resume)."""
    seconds: float

    def as_json_dict(self) -> dict[str, object]:
        return {
            "cacheKey": self.key,
            "modelDir": str(self.model_dir),
            "cacheHit": self.cache_hit,
            "files": self.files,
            "totalBytes": self.total_bytes,
            "fetchedBytes": self.fetched_bytes,
            "seconds": round(self.seconds, 3),
        }


def select(files: list[RemoteFile], include: tuple[str, ...]) -> list[RemoteFile]:
    """The files matching any ``include`` glob (all files when there is none)."""
    if not include:
        return files
    return [f for f in files if any(fnmatch.fnmatchcase(f.path, p) for p in include)]


def _matches(path: str, include: tuple[str, ...]) -> bool:
    return not include or any(fnmatch.fnmatchcase(path, p) for p in include)


async def _expected_digests(
    config: PrefetchConfig, source: Source, listed: list[RemoteFile], files: list[RemoteFile]
) -> dict[str, str]:
    """Expected sha256 by path: ``--sha256`` over ``--sha256-file`` (the hub's LFS is per file)."""
    expected: dict[str, str] = {}
    if config.sha256_file:
        by_path = {f.path: f for f in listed}
        sums = by_path.get(config.sha256_file)
        if sums is None:
            raise NotFound(f"checksum file {config.sha256_file} not found at {source.description}")
        text = (await read_all(source, sums.path, sums.size)).decode("utf-8", "replace")
        expected.update(
            {p: d for p, d in parse_sha256sum_file(text).items() if _matches(p, config.include)}
        )
    expected.update(config.sha256)
    present = {f.path for f in files}
    absent = sorted(set(expected) - present)
    if absent:
        raise NotFound(f"{absent[0]} has a checksum but is not at {source.description}")
    unverified = [f.path for f in files if f.path not in expected and f.sha256 is None]
    if unverified and (config.sha256_file or config.sha256):
        log.warning("no expected sha256 for %d file(s), e.g. %s", len(unverified), unverified[0])
    return expected


async def _fill(
    config: PrefetchConfig, layout: CacheLayout, key: str
) -> tuple[Manifest, Path, int]:
    """Download, verify and publish ``key``; returns (manifest, model dir, bytes fetched)."""
    staging = layout.staging_dir(key)
    data_dir = staging / "data"
    source = open_source(config)
    try:
        listed = await source.list_files()
        files = select(listed, config.include)
        if not files:
            raise NotFound(f"no file at {source.description} matches {list(config.include)}")
        expected = await _expected_digests(config, source, listed, files)
        total = sum(f.size for f in files)
        log.info(
            "fetching %d files, %s, from %s", len(files), human_bytes(total), source.description
        )
        if config.size_limit is not None:
            await asyncio.to_thread(
                make_room, layout, total, config.size_limit, key, config.in_use_ttl
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        journal, resumed = Journal.open(staging / "journal", files)
        if not resumed and any(data_dir.iterdir()):
            # A partial download of another version of the listing: start it over.
            journal.close()
            shutil.rmtree(data_dir)
            data_dir.mkdir()
            journal, resumed = Journal.open(staging / "journal", files)
        try:
            staged_bytes = allocated_bytes(data_dir)
            await asyncio.to_thread(check_space, layout.root, total, staged_bytes)
        except PrefetchError:
            journal.close()
            raise
        progress = Progress(total_bytes=total, total_files=len(files))
        reporter = asyncio.create_task(report_every(progress, config.progress_interval))
        try:
            digests = await download(
                source,
                files,
                data_dir,
                journal,
                expected,
                progress,
                concurrency=config.concurrency,
                part_size=config.part_size,
                checkpoint_interval=config.checkpoint_interval,
            )
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            journal.close()
        if progress.resumed_bytes:
            log.info(
                "resumed a killed download: %s were already on disk",
                human_bytes(progress.resumed_bytes),
            )
        log.info("%s", progress.summary())
        entries = await asyncio.to_thread(seal_staged, data_dir, digests)
        manifest = build_manifest(config, key, entries)
        model_dir = await asyncio.to_thread(publish, layout, manifest, data_dir)
        await asyncio.to_thread(remove_tree, layout, staging)
        return manifest, model_dir, progress.fetched_bytes
    except OSError as error:
        if is_disk_full(error):
            await asyncio.to_thread(remove_tree, layout, staging)
            raise disk_full(error, layout.root) from error
        raise
    except PrefetchError as error:
        if not error.keep_staging:
            await asyncio.to_thread(remove_tree, layout, staging)
        raise
    finally:
        await source.close()


async def prefetch_async(config: PrefetchConfig) -> PrefetchResult:
    """Make the model of ``config`` present and verified in the node cache (see module doc)."""
    started = time.monotonic()
    layout = CacheLayout(config.cache_dir)
    try:
        await asyncio.to_thread(layout.ensure)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(error, config.cache_dir) from error
        raise
    key = cache_key(config.uri, config.revision, config.include, config.s3_endpoint)
    log.info("model %s revision %s -> cache key %s", redact(config.uri), config.revision, key)
    async with key_lock(layout, key):
        manifest, why_not = await asyncio.to_thread(verify_hit, layout, key, config.rehash)
        fetched = 0
        hit = manifest is not None
        if manifest is not None:
            model_dir = layout.model_dir(key)
            log.info(
                "cache hit: %d files, %s verified from the manifest%s",
                len(manifest.files),
                human_bytes(manifest.total_bytes),
                " by full re-hash" if config.rehash else " (sizes + mtimes)",
            )
        else:
            if why_not != "no manifest":
                log.warning("cached copy of %s not usable (%s); fetching again", key, why_not)
            manifest, model_dir, fetched = await _fill(config, layout, key)
        touch_last_use(layout, key)
        if config.dest is not None or config.ref_dir is not None:
            await asyncio.to_thread(_link_for_pod, layout, key, config, model_dir)
    return PrefetchResult(
        key=key,
        model_dir=model_dir,
        cache_hit=hit,
        files=len(manifest.files),
        total_bytes=manifest.total_bytes,
        fetched_bytes=fetched,
        seconds=time.monotonic() - started,
    )


def _link_for_pod(layout: CacheLayout, key: str, config: PrefetchConfig, model_dir: Path) -> None:
    """Record the pod's use of the model (under the key lock), then point ``dest`` at it."""
    dest = Path(os.path.abspath(config.dest)) if config.dest is not None else None
    ref_dir = config.ref_dir or (dest.parent if dest is not None else None)
    if ref_dir is not None:
        ref_dir.mkdir(parents=True, exist_ok=True)
        mark_in_use(layout, key, ref_dir, config.holder or "")
    if dest is not None:
        link_dest(dest, model_dir)
        log.info("published %s -> %s", dest, model_dir)


def prefetch(config: PrefetchConfig) -> PrefetchResult:
    """Synchronous wrapper of :func:`prefetch_async` for callers without an event loop."""
    return asyncio.run(prefetch_async(config))
