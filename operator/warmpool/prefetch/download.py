"""Parallel ranged download into the staging directory, hashed on the fly, resumable.

Every file is cut into parts of ``part_size``; ``concurrency`` workers take parts in file order
(so big files are fetched in parallel and small files fill the gaps) and stream each part in
pieces of about 1 MiB. Each piece is written with ``pwrite`` at its offset and handed to the
file's in-order hasher, which hashes it right away when it is next in order (see hashing.py).
For sources with a blocking API (obstore: s3, gs, file) a whole part runs in its own thread
(partthreads.py); for the others (aiohttp: https, hub) the loop streams the part and one
worker-thread call writes and hashes each piece. Every second the parts written are made
durable and journaled. A killed run leaves data + journal; the next run fetches only what is
missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from typing_extensions import Buffer

from warmpool.prefetch.checksums import short
from warmpool.prefetch.errors import (
    ChecksumMismatch,
    PrefetchError,
    SourceError,
    TransientSourceError,
)
from warmpool.prefetch.fsutil import disk_full, is_disk_full, pwrite_all
from warmpool.prefetch.hashing import OrderedHasher, ReadBackBuffers
from warmpool.prefetch.journal import Journal
from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.partthreads import PartThreads
from warmpool.prefetch.progress import Progress
from warmpool.prefetch.ranges import merge, missing, split
from warmpool.prefetch.sources.base import BlockingSource, Source

log = logging.getLogger("warmpool.prefetch")

_ATTEMPTS = 5
_FIRST_DELAY = 0.5
"""Seconds before the first retry of a part's rest; doubled for each further one."""
_STOP_WAIT = 10.0
"""Seconds a failed download waits for its part threads to notice and stop."""

WRITE_SLICE = 2 * 1024 * 1024
"""Most bytes per ``pwrite`` + hash step. Sources hand over pieces of 1 MiB or a little more,
written whole; anything larger is cut so that the hash reads what the write has just pulled
into the (2 MiB) L2 cache (measured on the 2-core box: 1 MiB steps beat 2-16 MiB ones)."""


@dataclass(frozen=True)
class Part:
    file: RemoteFile
    start: int
    end: int


@dataclass
class _Staged:
    file: RemoteFile
    fd: int
    hasher: OrderedHasher
    remaining_parts: int

    def write(self, data: Buffer, start: int, end: int) -> None:
        """In a worker thread: write one piece to the staged file and hand it to the hasher.

        In slices of WRITE_SLICE, each hashed (when next in order) right after it is written,
        while it is still in the CPU cache.
        """
        view = memoryview(data).cast("B")
        for offset in range(0, end - start, WRITE_SLICE):
            piece = view[offset : offset + WRITE_SLICE]
            pwrite_all(self.fd, piece, start + offset)
            self.hasher.written(start + offset, start + offset + len(piece), piece)


class _Stopped(Exception):
    """A part thread gave up because the download failed elsewhere."""


class _Retries:
    """How one part retries the rest of its range after a blip: up to _ATTEMPTS tries in all,
    waiting _FIRST_DELAY, then twice as long each time (the part threads and the loop each do
    the wait their own way)."""

    def __init__(self) -> None:
        self._attempt = 0
        self._delay = _FIRST_DELAY

    def delay_after(self, error: TransientSourceError) -> float:
        """Seconds to wait before the next try; SourceError once the tries are used up."""
        self._attempt += 1
        if self._attempt >= _ATTEMPTS:
            raise SourceError(f"{error} (after {_ATTEMPTS} attempts)") from error
        delay, self._delay = self._delay, self._delay * 2
        log.warning("%s; retrying the rest of the range in %.1fs", error, delay)
        return delay


def _check_complete(part: Part, position: int) -> None:
    if position < part.end:
        raise TransientSourceError(f"{part.file.path}: range ended early")


def _check_overrun(part: Part, position: int, length: int) -> None:
    if position + length > part.end:
        raise SourceError(
            f"{part.file.path}: more bytes than the range "
            f"{part.start}-{part.end}; the object changed at the source?"
        )


def _fetch_blocking(
    source: BlockingSource,
    part: Part,
    state: _Staged,
    stop: threading.Event,
    count: Callable[[int], None],
) -> None:
    """In a part thread: stream one part to disk and to the hasher; retry the rest on a blip."""
    position, retries = part.start, _Retries()
    while position < part.end:
        try:
            for chunk in source.blocking_stream(part.file.path, position, part.end):
                if stop.is_set():
                    raise _Stopped
                length = len(memoryview(chunk))
                _check_overrun(part, position, length)
                state.write(chunk, position, position + length)
                count(length)
                position += length
            _check_complete(part, position)
        except TransientSourceError as error:
            if stop.wait(retries.delay_after(error)):
                raise _Stopped from error


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
    staged: dict[str, _Staged] = {}
    queue: deque[Part] = deque()
    # Own pools: writes blocked by dirty-page throttling must not starve the read-back hashing
    # (and the default executor has only cpu+4 threads).
    io_pool = ThreadPoolExecutor(max_workers=concurrency + 1, thread_name_prefix="prefetch-io")
    # One file's sha256 is sequential (one core); the files of a sharded model hash in
    # parallel, up to the cores there are.
    hash_workers = min(max(os.cpu_count() or 2, 2), 8)
    hash_pool = ThreadPoolExecutor(max_workers=hash_workers, thread_name_prefix="prefetch-hash")
    buffers = ReadBackBuffers()
    threads = PartThreads()
    counted = threading.Lock()

    def count(length: int) -> None:
        with counted:  # part threads add concurrently
            progress.fetched_bytes += length

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
            hasher = OrderedHasher(fd, file.size, on_disk, hash_pool, buffers)
            staged[file.path] = _Staged(file, fd, hasher, len(parts))
            queue.extend(Part(file, start, end) for start, end in parts)
            if not parts:
                await _finish_file(staged[file.path], expected, progress, io_pool)

        async def fetch(part: Part, state: _Staged) -> None:
            """Stream one part to disk and to the hasher; retry the rest of it on a blip."""
            if isinstance(source, BlockingSource):
                job = functools.partial(_fetch_blocking, source, part, state, threads.stop, count)
                try:
                    await threads.run(job)
                except OSError as error:
                    if is_disk_full(error):
                        raise disk_full(error, data_dir) from error
                    raise
                return
            position, retries = part.start, _Retries()
            while position < part.end:
                try:
                    async for chunk in source.stream(part.file.path, position, part.end):
                        length = len(memoryview(chunk))
                        _check_overrun(part, position, length)
                        try:
                            await loop.run_in_executor(
                                io_pool, state.write, chunk, position, position + length
                            )
                        except OSError as error:
                            if is_disk_full(error):
                                raise disk_full(error, data_dir) from error
                            raise
                        count(length)
                        position += length
                    _check_complete(part, position)
                except TransientSourceError as error:
                    await asyncio.sleep(retries.delay_after(error))

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
            state.hasher.abort()
        # A cancelled worker's write or drain may still be running in its thread: let it end
        # (one piece, milliseconds) before its fd is closed and the number can be reused.
        stopped = threads.stop_and_wait(timeout=_STOP_WAIT)
        io_pool.shutdown(wait=True, cancel_futures=True)
        hash_pool.shutdown(wait=True, cancel_futures=True)
        if stopped:
            for state in staged.values():
                os.close(state.fd)
        else:  # still blocked on the network: never let it write into a reused fd number
            log.warning("a part download is still blocked on the network; leaving files open")


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
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(pool, state.hasher.finish)
    digest = state.hasher.hexdigest()
    path = state.file.path
    want = expected.get(path) or state.file.sha256
    if want is not None and want.lower() != digest:
        raise ChecksumMismatch(f"{path} expected {short(want.lower())} got {short(digest)}")
    await loop.run_in_executor(pool, os.fsync, state.fd)
    progress.files_done += 1
    log.debug(
        "verified %s sha256 %s (%d%% hashed as written, the rest read back)",
        path,
        digest,
        100 * state.hasher.hot_bytes // max(state.file.size, 1),
    )
