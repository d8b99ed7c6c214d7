"""Parallel ranged download into the staging directory, hashed on the fly, resumable.

Every file is cut into parts of ``part_size``; ``concurrency`` workers take parts in file order
(so big files are fetched in parallel and small files fill the gaps), write each with
``pwrite`` at its offset and feed it to the file's in-order hasher; every second the parts
written are made durable and journaled. A killed run leaves data + journal; the next run
fetches only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from warmpool.prefetch.checksums import short
from warmpool.prefetch.errors import (
    ChecksumMismatch,
    PrefetchError,
    SourceError,
    TransientSourceError,
)
from warmpool.prefetch.fsutil import disk_full, is_disk_full, pwrite_all
from warmpool.prefetch.hashing import BufferBudget, FileHasher
from warmpool.prefetch.journal import Journal
from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.progress import Progress
from warmpool.prefetch.ranges import merge, missing, split
from warmpool.prefetch.sources.base import Source

log = logging.getLogger("warmpool.prefetch")

_ATTEMPTS = 5


@dataclass(frozen=True)
class Part:
    file: RemoteFile
    start: int
    end: int


@dataclass
class _Staged:
    file: RemoteFile
    fd: int
    hasher: FileHasher
    remaining_parts: int


def _safe_relative(path: str) -> str:
    """Refuse paths that would escape the staging directory (``..``, absolute)."""
    parts = [p for p in path.split("/") if p not in {"", "."}]
    if not parts or any(p == ".." for p in parts):
        raise SourceError(f"refusing unsafe file name from the source: {path[:200]!r}")
    return "/".join(parts)


class _Checkpoints:
    """Make finished parts durable in batches, then journal them.

    One ``fdatasync`` per part would serialise the download on the disk; instead, every
    ``interval`` seconds the files written since the last checkpoint are synced and only then
    their ranges are journaled. A crash loses at most one interval of progress, and a journal
    line never claims bytes that are not on disk.
    """

    def __init__(self, journal: Journal, interval: float, pool: ThreadPoolExecutor) -> None:
        self._journal = journal
        self._interval = interval
        self._pool = pool
        self._pending: list[tuple[int, Part]] = []

    def add(self, fd: int, part: Part) -> None:
        self._pending.append((fd, part))

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        loop = asyncio.get_running_loop()
        for fd in {fd for fd, _part in batch}:
            await loop.run_in_executor(self._pool, os.fdatasync, fd)
        for _fd, part in batch:
            self._journal.record(part.file.path, part.start, part.end)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()


async def download(
    source: Source,
    files: list[RemoteFile],
    data_dir: Path,
    journal: Journal,
    expected: dict[str, str],
    progress: Progress,
    *,
    concurrency: int,
    part_size: int,
    checkpoint_interval: float,
) -> dict[str, str]:
    """Fetch ``files`` into ``data_dir``; return each file's verified sha256 by path.

    Raises ChecksumMismatch when a file's sha256 differs from ``expected`` (or the source's
    own), DiskFull on ENOSPC, and the source's errors as they come.
    """
    budget = BufferBudget(limit=2 * concurrency * part_size)
    staged: dict[str, _Staged] = {}
    queue: deque[Part] = deque()
    # Own pools: writes blocked by dirty-page throttling must not starve the hashing (and the
    # default executor has only cpu+4 threads).
    io_pool = ThreadPoolExecutor(max_workers=concurrency + 1, thread_name_prefix="prefetch-io")
    hash_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prefetch-hash")
    checkpoints = _Checkpoints(journal, checkpoint_interval, io_pool)
    loop = asyncio.get_running_loop()
    try:
        for file in files:
            target = data_dir / _safe_relative(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
            done = merge(journal.done.get(file.path, []))
            gaps = missing(file.size, done)
            if gaps:
                # Sparse, full-size file: parts land at their offsets. Not posix_fallocate: on
                # this kind of host it made later writes much slower (measured), and the
                # free-space check before the download already fails early on a full disk.
                os.ftruncate(fd, file.size)
            on_disk = missing(file.size, gaps)  # the complement: what the journal holds
            progress.resumed_bytes += sum(end - start for start, end in on_disk)
            parts = split(gaps, part_size if file.ranged else max(file.size, 1))
            hasher = FileHasher(fd, file.size, on_disk, budget, hash_pool)
            staged[file.path] = _Staged(file, fd, hasher, len(parts))
            queue.extend(Part(file, start, end) for start, end in parts)
            if not parts:
                await _finish_file(staged[file.path], expected, progress, io_pool)

        async def fetch(part: Part, state: _Staged) -> None:
            """Stream one part to disk and to the hasher; retry the rest of it on a blip."""
            position, attempt, delay = part.start, 0, 0.5
            while position < part.end:
                try:
                    async for chunk in source.stream(part.file.path, position, part.end):
                        length = len(memoryview(chunk))
                        if position + length > part.end:
                            raise SourceError(
                                f"{part.file.path}: more bytes than the range "
                                f"{part.start}-{part.end}; the object changed at the source?"
                            )
                        try:
                            await loop.run_in_executor(
                                io_pool, pwrite_all, state.fd, chunk, position
                            )
                        except OSError as error:
                            if is_disk_full(error):
                                raise disk_full(error, data_dir) from error
                            raise
                        await state.hasher.add(position, position + length, chunk)
                        progress.fetched_bytes += length
                        position += length
                    if position < part.end:
                        raise TransientSourceError(f"{part.file.path}: range ended early")
                except TransientSourceError as error:
                    attempt += 1
                    if attempt >= _ATTEMPTS:
                        raise SourceError(f"{error} (after {_ATTEMPTS} attempts)") from error
                    log.warning("%s; retrying the rest of the range in %.1fs", error, delay)
                    await asyncio.sleep(delay)
                    delay *= 2

        async def worker() -> None:
            while queue:
                part = queue.popleft()
                state = staged[part.file.path]
                await fetch(part, state)
                checkpoints.add(state.fd, part)
                state.remaining_parts -= 1
                if state.remaining_parts == 0:
                    await _finish_file(state, expected, progress, io_pool)

        try:
            async with asyncio.TaskGroup() as group:
                checkpointer = group.create_task(checkpoints.run())
                workers = [
                    group.create_task(worker()) for _ in range(min(concurrency, max(len(queue), 1)))
                ]
                await asyncio.gather(*workers)
                checkpointer.cancel()
        except ExceptionGroup as group_error:
            # One worker's failure cancels the rest; report the first real reason.
            first = _first_error(group_error)
            raise first from group_error
        finally:
            with contextlib.suppress(OSError):
                await checkpoints.flush()  # keep what is on disk for a resume
        return {path: state.hasher.hexdigest() for path, state in staged.items()}
    finally:
        for state in staged.values():
            state.hasher.cancel()
            os.close(state.fd)
        io_pool.shutdown(wait=False, cancel_futures=True)
        hash_pool.shutdown(wait=False, cancel_futures=True)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    for leaf in leaves:
        if isinstance(leaf, PrefetchError):
            return leaf
    return leaves[0]


async def _finish_file(
    state: _Staged, expected: dict[str, str], progress: Progress, pool: ThreadPoolExecutor
) -> None:
    """Hash what is left, check the digest, make the file durable."""
    await state.hasher.drain()
    digest = state.hasher.hexdigest()
    path = state.file.path
    want = expected.get(path) or state.file.sha256
    if want is not None and want.lower() != digest:
        raise ChecksumMismatch(f"{path} expected {short(want.lower())} got {short(digest)}")
    await asyncio.get_running_loop().run_in_executor(pool, os.fsync, state.fd)
    progress.files_done += 1
    log.debug("verified %s sha256 %s", path, digest)
