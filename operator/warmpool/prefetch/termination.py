"""The pod's termination message: one line the operator shows in the WeightsCached condition."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("warmpool.prefetch")


def write_termination_message(path: Path | None, line: str) -> None:
    """Write ``line`` (made one line) to the termination log; never fail the program for it."""
    if path is None:
        return
    text = " ".join(line.split())[:4096]  # kubelet keeps at most 4096 bytes
    try:
        path.write_text(text + "\n")
    except OSError as error:
        log.debug("cannot write the termination log %s: %s", path, error)
