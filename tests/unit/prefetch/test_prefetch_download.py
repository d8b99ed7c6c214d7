"""The download engine with an in-memory source that fails mid-range (a network blip).

The source here is a stand-in for the network only; every file, the journal and the hashing
are real. Real servers are exercised in tests/integration/prefetch.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from warmpool.prefetch.download import download
from warmpool.prefetch.errors import ChecksumMismatch, TransientSourceError
from warmpool.prefetch.journal import Journal
from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.progress import Progress

PIECE = 64 * 1024


class FlakySource:
    """Serves bytes from memory; the 3rd and 7th streams break after two pieces."""

    description = "memory://flaky"

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.streams = 0
        self.served = 0

    async def list_files(self) -> list[RemoteFile]:
        return [RemoteFile(path, len(data)) for path, data in self.blobs.items()]

    async def stream(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        self.streams += 1
        breaks = self.streams in {3, 7}
        for count, offset in enumerate(range(start, end, PIECE)):
            if breaks and count == 2:
                raise TransientSourceError(f"{path}: connection reset")
            piece = self.blobs[path][offset : min(offset + PIECE, end)]
            self.served += len(piece)
            yield piece

    async def close(self) -> None:
        return None


async def _run(tmp_path: Path, source: FlakySource, expected: dict[str, str]) -> dict[str, str]:
    files = await source.list_files()
    journal, _ = Journal.open(tmp_path / "journal", files)
    try:
        return await download(
            source,
            files,
            tmp_path / "data",
            journal,
            expected,
            Progress(total_bytes=sum(f.size for f in files), total_files=len(files)),
            concurrency=4,
            part_size=256 * 1024,
            checkpoint_interval=0.05,
        )
    finally:
        journal.close()


async def test_blips_are_retried_from_where_the_range_stopped(tmp_path: Path) -> None:
    rng = random.Random(5)
    blobs = {"big.bin": rng.randbytes(3_000_000), "small/x.json": b"{}", "empty": b""}
    source = FlakySource(blobs)
    want = {path: hashlib.sha256(data).hexdigest() for path, data in blobs.items()}
    digests = await _run(tmp_path, source, expected=want)
    assert digests == want
    for path, data in blobs.items():
        assert (tmp_path / "data" / path).read_bytes() == data
    assert source.served == sum(len(d) for d in blobs.values())  # no byte fetched twice


async def test_a_wrong_digest_is_an_error_not_a_warning(tmp_path: Path) -> None:
    source = FlakySource({"w.bin": b"x" * 300_000})
    with pytest.raises(ChecksumMismatch, match=r"^w.bin expected 000000000000.. got "):
        await _run(tmp_path, source, expected={"w.bin": "0" * 64})
