"""sha256 of each file computed while it downloads, although its pieces arrive out of order.

A whole-file sha256 must consume the bytes in file order, but parallel ranged GETs finish
pieces in any order. ``OrderedHasher`` hashes the contiguous prefix as it grows:

- the piece that lands exactly at the hashed frontier is hashed at once, by the thread that
  has just written it, while it is still in the CPU cache ("hot");
- a piece that lands ahead of the frontier is only noted (its bytes are NOT kept: holding
  hundreds of MiB of early pieces meant touching that much fresh memory, and on this kind of
  VM a fresh page costs a host fault; measured: about a third of the system time); when the
  frontier reaches it, a drain job reads it back from the staged file, which the page cache
  still holds, into one reusable buffer.

Ranges already on disk from a killed run are read back the same way: sha256 state cannot be
saved across a crash, so a resume re-reads what it kept, and nothing else is read twice.
Everything here runs in worker threads (hashlib and ``pread`` release the GIL); one lock per
file keeps exactly one thread at a time advancing its frontier.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Executor

from typing_extensions import Buffer

from warmpool.prefetch.ranges import Range

READ_BACK_CHUNK = 1024 * 1024
"""Bytes read back and hashed at a time: small enough to stay in the CPU cache between the
``pread`` and the hash."""


class ReadBackBuffers:
    """One reusable read-back buffer per thread (no fresh memory per piece)."""

    def __init__(self, size: int = READ_BACK_CHUNK) -> None:
        self._size = size
        self._local = threading.local()

    def get(self) -> bytearray:
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = bytearray(self._size)
            self._local.buffer = buffer
        return buffer


def hash_from_disk(sha: hashlib._Hash, fd: int, start: int, end: int, buffer: bytearray) -> None:
    """Feed bytes ``[start, end)`` of ``fd`` to ``sha`` through ``buffer``."""
    view = memoryview(buffer)
    offset = start
    while offset < end:
        want = min(len(view), end - offset)
        got = os.preadv(fd, [view[:want]], offset)
        if got <= 0:
            raise OSError(f"staged file ended at {offset}, expected {end} bytes")
        sha.update(view[:got])
        offset += got


class OrderedHasher:
    """In-order sha256 of one staged file whose pieces are written in any order.

    Thread-safe: ``written`` is called by the writer threads right after each ``pwrite``.
    """

    def __init__(
        self,
        fd: int,
        size: int,
        on_disk: list[Range],
        drain_pool: Executor,
        buffers: ReadBackBuffers,
    ) -> None:
        self._fd = fd
        self._size = size
        self._sha = hashlib.sha256()
        self._offset = 0
        self._ready: dict[int, int] = {start: end for start, end in on_disk if end > start}
        """Pieces on disk ahead of the frontier, start -> end."""
        self._busy = False
        """A thread is advancing the frontier (hot hash or drain job); no other may."""
        self._error: BaseException | None = None
        self._lock = threading.Condition()
        self._pool = drain_pool
        self._buffers = buffers
        self.hot_bytes = 0
        """Bytes hashed straight after their write (the rest were read back)."""

    @property
    def complete(self) -> bool:
        return self._offset >= self._size

    def hexdigest(self) -> str:
        if not self.complete:
            raise RuntimeError("file not fully hashed yet")
        return self._sha.hexdigest()

    def written(self, start: int, end: int, data: Buffer) -> None:
        """Piece ``[start, end)`` is in the staged file; ``data`` holds the same bytes.

        Hashes it now when it is next in order and no other thread is hashing this file;
        otherwise only notes it. Never blocks on another thread's hashing.
        """
        with self._lock:
            self._raise_failure()
            if self._busy or start != self._offset:
                self._ready[start] = end
                if not self._busy and self._offset in self._ready:
                    self._start_drain()
                return
            self._busy = True
        try:
            self._sha.update(data)  # hot: it was written a moment ago from the same buffer
        except BaseException as error:
            self._fail(error)
            raise
        with self._lock:
            self.hot_bytes += end - start
            self._offset = end
            if self._offset in self._ready:
                self._start_drain()  # stays busy: the drain job takes over
            else:
                self._busy = False
                self._lock.notify_all()

    def finish(self) -> None:
        """Block until every piece noted so far is hashed (call when all are written)."""
        with self._lock:
            while self._busy and self._error is None:
                self._lock.wait()
            self._raise_failure()
            self._busy = True
        self._drain()
        with self._lock:
            self._raise_failure()

    def abort(self) -> None:
        """The download failed: wake a ``finish`` waiting on a drain that will never run."""
        with self._lock:
            self._error = self._error or RuntimeError("download aborted")
            self._lock.notify_all()

    def _start_drain(self) -> None:
        # Under the lock. The job owns the frontier until it finds the next piece missing.
        self._busy = True
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    start = self._offset
                    end = self._ready.pop(start, None)
                    if end is None or self._error is not None:  # caught up, or aborted
                        self._busy = False
                        self._lock.notify_all()
                        return
                hash_from_disk(self._sha, self._fd, start, end, self._buffers.get())
                with self._lock:
                    self._offset = end
        except BaseException as error:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self._error = self._error or error
            self._busy = False
            self._lock.notify_all()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise OSError(f"hashing the staged file failed: {self._error}") from self._error
