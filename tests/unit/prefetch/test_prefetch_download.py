"""The download engine with an in-memory source that fails mid-range (a network blip).

The source here is a stand-in for the network only; every file, the journal and the hashing
are real. Real servers are exercised in tests/integration/prefetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from warmpool.prefetch import download as download_module
from warmpool.prefetch.download import download
from warmpool.prefetch.errors import (
    ChecksumMismatch,
    Forbidden,
    SourceError,
    TransientSourceError,
)
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
        self.lock = threading.Lock()

    async def list_files(self) -> list[RemoteFile]:
        return [RemoteFile(path, len(data)) for path, data in self.blobs.items()]

    def _pieces(self, path: str, start: int, end: int) -> Iterator[bytes]:
        with self.lock:  # part threads call it concurrently
            self.streams += 1
            breaks = self.streams in {3, 7}
        for count, offset in enumerate(range(start, end, PIECE)):
            if breaks and count == 2:
                raise TransientSourceError(f"{path}: connection reset")
            piece = self.blobs[path][offset : min(offset + PIECE, end)]
            with self.lock:
                self.served += len(piece)
            yield piece

    async def stream(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        for piece in self._pieces(path, start, end):
            yield piece

    async def close(self) -> None:
        return None


class BlockingFlakySource(FlakySource):
    """The same, also offering the blocking API: parts then run in their own threads."""

    def blocking_stream(self, path: str, start: int, end: int) -> Iterator[bytes]:
        return self._pieces(path, start, end)


async def _run(
    tmp_path: Path, source: FlakySource, expected: dict[str, str], part_size: int = 256 * 1024
) -> dict[str, str]:
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
            part_size=part_size,
            checkpoint_interval=0.05,
        )
    finally:
        journal.close()


@pytest.mark.parametrize("kind", [FlakySource, BlockingFlakySource])
async def test_blips_are_retried_from_where_the_range_stopped(
    tmp_path: Path, kind: type[FlakySource]
) -> None:
    rng = random.Random(5)
    blobs = {"big.bin": rng.randbytes(3_000_000), "small/x.json": b"{}", "empty": b""}
    source = kind(blobs)
    want = {path: hashlib.sha256(data).hexdigest() for path, data in blobs.items()}
    digests = await _run(tmp_path, source, expected=want)
    assert digests == want
    for path, data in blobs.items():
        assert (tmp_path / "data" / path).read_bytes() == data
    assert source.served == sum(len(d) for d in blobs.values())  # no byte fetched twice


class ShortSource(FlakySource):
    """Every stream of ``cut.bin`` ends one piece early, without an error."""

    starts: list[int]

    def _pieces(self, path: str, start: int, end: int) -> Iterator[bytes]:
        self.starts = [*getattr(self, "starts", []), start]
        pieces = list(super()._pieces(path, start, end))
        return iter(pieces[:-1] if path == "cut.bin" else pieces)


class BlockingShortSource(ShortSource):
    def blocking_stream(self, path: str, start: int, end: int) -> Iterator[bytes]:
        return self._pieces(path, start, end)


@pytest.mark.parametrize("kind", [ShortSource, BlockingShortSource])
async def test_a_range_that_keeps_ending_early_fails_after_the_last_attempt(
    tmp_path: Path, kind: type[FlakySource], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download_module, "_FIRST_DELAY", 0.001)
    blobs = {"cut.bin": random.Random(3).randbytes(5 * PIECE)}
    source = kind(blobs)
    with pytest.raises(SourceError, match=r"cut.bin: range ended early \(after 5 attempts\)"):
        await _run(tmp_path, source, expected={}, part_size=8 * PIECE)
    assert source.starts == [0] + [4 * PIECE] * 4  # the first try, then four of the rest only


@pytest.mark.parametrize("kind", [FlakySource, BlockingFlakySource])
async def test_a_wrong_digest_is_an_error_not_a_warning(
    tmp_path: Path, kind: type[FlakySource]
) -> None:
    source = kind({"w.bin": b"x" * 300_000})
    with pytest.raises(ChecksumMismatch, match=r"^w.bin expected 000000000000.. got "):
        await _run(tmp_path, source, expected={"w.bin": "0" * 64})


class OneForbiddenSource(BlockingFlakySource):
    """``bad.bin`` is refused at once; ``slow.bin`` trickles until told to stop."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        super().__init__(blobs)
        self.trickling = threading.Event()
        self.release = threading.Event()

    def blocking_stream(self, path: str, start: int, end: int) -> Iterator[bytes]:
        if path == "bad.bin":
            self.trickling.wait(30)  # fail only once the slow part is mid-way
            raise Forbidden(f"{path}: HTTP 403")
        for offset in range(start, end, PIECE):
            self.trickling.set()
            self.release.wait(0.01)  # a slow network: one small piece at a time
            with self.lock:
                self.served += PIECE
            yield self.blobs[path][offset : min(offset + PIECE, end)]


async def test_a_fatal_error_stops_the_other_part_threads(tmp_path: Path) -> None:
    part = 64 * PIECE
    source = OneForbiddenSource({"bad.bin": b"b" * 1000, "slow.bin": b"s" * (3 * part)})
    with pytest.raises(Forbidden, match=r"bad\.bin: HTTP 403"):
        await asyncio.wait_for(_run(tmp_path, source, {}, part_size=part), timeout=60)
    # The slow parts' threads gave up at their next piece (the stop flag, or the aborted
    # hasher refusing the piece) instead of finishing their parts.
    assert source.served < part
