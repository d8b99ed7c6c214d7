"""Atomic publication: a reader sees the whole verified model or nothing.

The model is staged under staging/<key>/data on the cache filesystem, every file and directory
is fsync-ed, the manifest is written (tmp + fsync + rename), then one ``rename`` moves the
directory to models/<key>. The pod's ``--dest`` is then switched with a symlink ``rename``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from warmpool.prefetch.cache import CacheLayout, remove_tree
from warmpool.prefetch.fsutil import fsync_dir
from warmpool.prefetch.model import Manifest, ManifestFile, PrefetchConfig
from warmpool.prefetch.uris import redact


def seal_staged(data_dir: Path, digests: dict[str, str]) -> list[ManifestFile]:
    """Make staged files read-only and durable; return their manifest entries.

    The mtimes recorded here are what a cache hit compares against.
    """
    entries = []
    for path, digest in sorted(digests.items()):
        file_path = data_dir / path
        os.chmod(file_path, 0o444)
        stat = file_path.stat()
        entries.append(
            ManifestFile(path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest)
        )
    # Directories bottom-up, so every entry and every file's name is on disk.
    for directory, _subdirs, _files in sorted(os.walk(data_dir), key=lambda w: -len(w[0])):
        fsync_dir(Path(directory))
    return entries


def write_manifest(layout: CacheLayout, manifest: Manifest) -> None:
    path = layout.meta_path(manifest.key)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, manifest.model_dump_json(indent=1).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def build_manifest(config: PrefetchConfig, key: str, files: list[ManifestFile]) -> Manifest:
    return Manifest(
        key=key,
        uri=redact(config.uri),
        revision=config.revision,
        include=list(config.include),
        files=files,
        total_bytes=sum(entry.size for entry in files),
        created_unix=time.time(),
    )


def publish(layout: CacheLayout, manifest: Manifest, data_dir: Path) -> Path:
    """Move a sealed staged model into models/<key>; returns its path.

    The manifest goes first: a crash between the two leaves a manifest without a directory,
    which is a cache miss (and the staged data, still in place, is resumed), never a hit on a
    partial directory.
    """
    target = layout.model_dir(manifest.key)
    write_manifest(layout, manifest)
    remove_tree(layout, target)  # an unverifiable leftover of an earlier fill
    os.rename(data_dir, target)
    fsync_dir(target.parent)
    return target


def link_dest(dest: Path, target: Path) -> None:
    """Point ``dest`` at ``target`` with an atomic symlink swap."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not dest.is_symlink():
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()  # an empty mount point left by an earlier layout
        else:
            raise FileExistsError(f"--dest {dest} exists and is not a symlink; refusing to replace")
    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
