"""The resume journal and the in-order hasher, on real files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

from warmpool.prefetch.hashing import BufferBudget, FileHasher
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


async def _hash_out_of_order(tmp_path: Path, budget_limit: int, on_disk: int) -> str:
    data = random.Random(1).randbytes(10_000)
    target = tmp_path / "f"
    target.write_bytes(data)  # the pieces are "already written", as the downloader does
    fd = os.open(target, os.O_RDONLY)
    try:
        hasher = FileHasher(
            fd, len(data), [(0, on_disk)] if on_disk else [], BufferBudget(budget_limit)
        )
        pieces = [(s, min(s + 700, len(data))) for s in range(on_disk, len(data), 700)]
        random.Random(2).shuffle(pieces)
        for start, end in pieces:
            await hasher.add(start, end, data[start:end])
            await asyncio.sleep(0)
        await hasher.drain()
        assert hasher.complete
        return hasher.hexdigest()
    finally:
        os.close(fd)


async def test_hasher_gives_the_file_sha256_whatever_the_order(tmp_path: Path) -> None:
    want = hashlib.sha256(random.Random(1).randbytes(10_000)).hexdigest()
    assert await _hash_out_of_order(tmp_path, budget_limit=10**9, on_disk=0) == want
    # a tiny memory budget: early pieces are read back from the file instead of kept
    assert await _hash_out_of_order(tmp_path, budget_limit=1000, on_disk=0) == want
    # a resumed file: its first 3000 bytes were on disk before this run
    assert await _hash_out_of_order(tmp_path, budget_limit=10**9, on_disk=3000) == want
