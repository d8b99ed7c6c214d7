"""sha256 of each file computed while it downloads, although its parts arrive out of order.

Parts are fed in any order; the hasher consumes them in file order. A part that arrives early
is kept in memory until its turn, up to a shared byte budget; past the budget only its offset is
kept and its bytes are read back from the (page-cached) staged file when their turn comes.
Ranges already on disk from a killed run are read back the same way: sha256 state cannot be
saved across a crash, so a resume re-reads what it kept, and nothing else is read twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

from typing_extensions import Buffer

from warmpool.prefetch.ranges import Range

_READ_BACK_CHUNK = 8 * 1024 * 1024


class BufferBudget:
    """Bytes of early parts all hashers may hold in memory together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0


def _hash_from_disk(sha: hashlib._Hash, fd: int, start: int, end: int) -> None:
    offset = start
    while offset < end:
        chunk = os.pread(fd, min(_READ_BACK_CHUNK, end - offset), offset)
        if not chunk:
            raise OSError(f"staged file ended at {offset}, expected {end} bytes")
        sha.update(chunk)
        offset += len(chunk)


class FileHasher:
    """In-order sha256 of one staged file fed by parts that complete in any order."""

    def __init__(
        self,
        fd: int,
        size: int,
        on_disk: list[Range],
        budget: BufferBudget,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self._fd = fd
        self._size = size
        self._budget = budget
        self._sha = hashlib.sha256()
        self._offset = 0
        self._pending: dict[int, tuple[int, Buffer | None]] = {
            start: (end, None) for start, end in on_disk
        }
        self._task: asyncio.Task[None] | None = None
        self._pool = pool

    @property
    def complete(self) -> bool:
        return self._offset >= self._size

    def hexdigest(self) -> str:
        if not self.complete:
            raise RuntimeError("file not fully hashed yet")
        return self._sha.hexdigest()

    async def add(self, start: int, end: int, data: Buffer) -> None:
        """Record piece ``[start, end)`` (already in the staged file); hash what is in order.

        Never waits for hashing: if a drain is already running for this file it will pick the
        piece up; otherwise a drain task starts. So a worker goes straight back to the network.
        """
        length = end - start
        if self._budget.held + length <= self._budget.limit:
            self._budget.held += length
            self._pending[start] = (end, data)
        else:
            self._pending[start] = (end, None)  # read it back from disk at its turn
        if self._task is not None and self._task.done():
            self._task.result()  # surface a failed drain (a read-back error) now
        idle = self._task is None or self._task.done()
        if idle and self._offset in self._pending:
            self._task = asyncio.create_task(self._drain())

    def cancel(self) -> None:
        """Stop a running drain (the download failed; the file is about to be closed)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def drain(self) -> None:
        """Hash everything that is in order now (waits for a running drain first)."""
        if self._task is not None:
            await self._task
        await self._drain()

    async def _drain(self) -> None:
        # No await between the last membership test and returning: a piece added while this
        # drain was busy is always seen by it.
        loop = asyncio.get_running_loop()
        while self._offset in self._pending:
            end, data = self._pending.pop(self._offset)
            if data is None:
                await loop.run_in_executor(
                    self._pool, _hash_from_disk, self._sha, self._fd, self._offset, end
                )
            else:
                # hashlib drops the GIL on large buffers: the thread truly runs in parallel.
                await loop.run_in_executor(self._pool, self._sha.update, data)
                self._budget.held -= end - self._offset
            self._offset = end
