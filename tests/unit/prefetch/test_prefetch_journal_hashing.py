"""The resume journal and the in-order hasher, on real files."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from warmpool.prefetch.hashing import OrderedHasher, ReadBackBuffers
from warmpool.prefetch.journal import Journal
from warmpool.prefetch.model import RemoteFile

FILES = [RemoteFile("a.bin", 100, etag='"1"'), RemoteFile("b/c.bin", 50, etag='"2"')]


def test_journal_resumes_ranges_and_ignores_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal, resumed = Journal.open(path, FILES)
    assert not resumed
    journal.record("a.bin", 0, 40)
    journal.record("b/c.bin", 10, 50)
    journal.close()
    with path.open("ab") as handle:
        handle.write(b'{"f": "a.bin", "s": 40')  # a kill -9 in the middle of a write
    again, resumed = Journal.open(path, FILES)
    again.close()
    assert resumed
    assert again.done == {"a.bin": [(0, 40)], "b/c.bin": [(10, 50)]}


def test_journal_restarts_when_the_source_changed(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal, _ = Journal.open(path, FILES)
    journal.record("a.bin", 0, 40)
    journal.close()
    changed = [RemoteFile("a.bin", 100, etag='"new"'), FILES[1]]
    again, resumed = Journal.open(path, changed)
    again.close()
    assert not resumed and again.done == {}


def _hash_out_of_order(tmp_path: Path, on_disk: int, threads: int) -> str:
    """Write pieces in a shuffled order from ``threads`` threads, as the downloader does."""
    data = random.Random(1).randbytes(100_000)
    target = tmp_path / f"f-{on_disk}-{threads}"
    target.write_bytes(data[:on_disk])
    fd = os.open(target, os.O_RDWR)
    pieces = [(s, min(s + 700, len(data))) for s in range(on_disk, len(data), 700)]
    random.Random(threads).shuffle(pieces)
    try:
        with ThreadPoolExecutor(2) as drains, ThreadPoolExecutor(threads) as writers:
            hasher = OrderedHasher(
                fd, len(data), [(0, on_disk)] if on_disk else [], drains, ReadBackBuffers(512)
            )

            def write(start: int, end: int) -> None:
                piece = data[start:end]
                os.pwrite(fd, piece, start)
                hasher.written(start, end, piece)

            for future in [writers.submit(write, s, e) for s, e in pieces]:
                future.result()
            hasher.finish()
        assert hasher.complete
        return hasher.hexdigest()
    finally:
        os.close(fd)


def test_hasher_gives_the_file_sha256_whatever_the_order(tmp_path: Path) -> None:
    want = hashlib.sha256(random.Random(1).randbytes(100_000)).hexdigest()
    # in order from one thread: every piece is hashed hot, nothing is read back
    assert _hash_out_of_order(tmp_path, on_disk=0, threads=1) == want
    # out of order from many threads: early pieces are read back from the file
    assert _hash_out_of_order(tmp_path, on_disk=0, threads=8) == want
    # a resumed file: its first 30000 bytes were on disk before this run
    assert _hash_out_of_order(tmp_path, on_disk=30_000, threads=4) == want


def test_hasher_reports_a_staged_file_shorter_than_its_pieces(tmp_path: Path) -> None:
    target = tmp_path / "short"
    target.write_bytes(b"x" * 100)
    fd = os.open(target, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(1) as drains:
            # the journal claims 0-200 are on disk, but the file holds only 100 bytes
            hasher = OrderedHasher(fd, 300, [(0, 200)], drains, ReadBackBuffers())
            hasher.written(200, 300, b"y" * 100)
            with pytest.raises(OSError, match="staged file ended at 100"):
                hasher.finish()
    finally:
        os.close(fd)


def test_abort_wakes_a_finish_waiting_on_a_drain_that_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"z" * 300)
    fd = os.open(target, os.O_RDONLY)
    gate = threading.Event()
    try:
        with ThreadPoolExecutor(1) as drains, ThreadPoolExecutor(1) as waiter:
            drains.submit(gate.wait)  # the only drain thread is busy: the drain stays queued
            hasher = OrderedHasher(fd, 300, [(0, 100)], drains, ReadBackBuffers())
            hasher.written(100, 200, b"z" * 100)  # queues a drain of 0-100
            finishing = waiter.submit(hasher.finish)
            hasher.abort()  # the download failed elsewhere
            with pytest.raises(OSError, match="download aborted"):
                finishing.result(timeout=30)
            gate.set()
    finally:
        os.close(fd)
