"""Small durable-filesystem helpers."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from typing_extensions import Buffer

from warmpool.prefetch.errors import DiskFull


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: Buffer, offset: int) -> None:
    """``pwrite`` until every byte is written (a short write is legal)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def disk_full(error: OSError, where: Path) -> DiskFull:
    """A one-line DiskFull for an ENOSPC/EDQUOT, naming the filesystem and its free space."""
    try:
        stat = os.statvfs(where)
        free = f"{stat.f_bavail * stat.f_frsize} bytes free"
    except OSError:
        free = "free space unknown"
    return DiskFull(f"no space left on the cache filesystem at {where} ({free}): {error.strerror}")


def is_disk_full(error: OSError) -> bool:
    return error.errno in {errno.ENOSPC, errno.EDQUOT}


def free_bytes(where: Path) -> int:
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize


def allocated_bytes(root: Path) -> int:
    """Bytes the files under ``root`` already occupy (a resumed download needs less)."""
    total = 0
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            total += os.stat(os.path.join(directory, name)).st_blocks * 512
    return total


def check_space(where: Path, need: int, have_staged: int) -> None:
    """Fail early, before any download, when the model cannot fit on the cache filesystem."""
    missing = need - have_staged
    free = free_bytes(where)
    if missing > free:
        raise DiskFull(
            f"no space left on the cache filesystem at {where}: the model needs {missing} more "
            f"bytes, {free} bytes free"
        )
