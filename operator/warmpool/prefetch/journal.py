"""A durable record of the byte ranges already downloaded, so a killed prefetch resumes.

One JSON object per line, appended with ``O_APPEND``: the first line names the files as the
source listed them (a changed listing discards the partial download); every later line is one
finished range. A range is written here only after its bytes were written (and, by default,
``fdatasync``-ed), so a line never claims bytes that a crash could lose. A torn last line from
a crash is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.ranges import Range


def _identity(files: list[RemoteFile]) -> list[list[object]]:
    return [[f.path, f.size, f.etag] for f in sorted(files, key=lambda f: f.path)]


class Journal:
    """Completed ranges of one staged download; append-only."""

    def __init__(self, path: Path, fd: int, done: dict[str, list[Range]]) -> None:
        self.path = path
        self._fd = fd
        self.done = done
        """Ranges already on disk when the journal was opened, by file path."""

    @classmethod
    def open(cls, path: Path, files: list[RemoteFile]) -> tuple[Journal, bool]:
        """Open (or start) the journal for ``files``; the bool says whether it was resumed."""
        identity = _identity(files)
        done: dict[str, list[Range]] = {}
        resumed = False
        if path.exists():
            lines = path.read_bytes().split(b"\n")
            try:
                header = json.loads(lines[0])
            except ValueError:
                header = None
            if isinstance(header, dict) and header.get("files") == identity:
                resumed = True
                for raw in lines[1:]:
                    try:
                        entry = json.loads(raw)
                        done.setdefault(str(entry["f"]), []).append(
                            (int(entry["s"]), int(entry["e"]))
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # the torn last line of a killed run
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if not resumed:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"files": identity}).encode() + b"\n")
            os.fsync(fd)
        return cls(path, fd, done), resumed

    def record(self, path: str, start: int, end: int) -> None:
        """Note ``[start, end)`` of ``path`` as safely on disk (one small atomic append)."""
        os.write(self._fd, json.dumps({"f": path, "s": start, "e": end}).encode() + b"\n")

    def close(self) -> None:
        os.close(self._fd)
