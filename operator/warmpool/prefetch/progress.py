"""Progress lines for ``kubectl logs``: bytes, rate, ETA, every few seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from warmpool.prefetch.units import human_bytes, human_seconds

log = logging.getLogger("warmpool.prefetch")


@dataclass
class Progress:
    """Counters the download updates; the reporter reads them."""

    total_bytes: int
    total_files: int
    resumed_bytes: int = 0
    fetched_bytes: int = 0
    files_done: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done_bytes(self) -> int:
        return self.resumed_bytes + self.fetched_bytes

    def line(self, rate: float) -> str:
        """One log line, e.g. ``1.20 GiB / 4.00 GiB (30.0%) 412.30 MiB/s ETA 7s files 3/12``."""
        percent = 100.0 * self.done_bytes / self.total_bytes if self.total_bytes else 100.0
        remaining = self.total_bytes - self.done_bytes
        eta = human_seconds(remaining / rate) if rate > 0 else "?"
        return (
            f"progress {human_bytes(self.done_bytes)} / {human_bytes(self.total_bytes)} "
            f"({percent:.1f}%) {human_bytes(rate)}/s ETA {eta} "
            f"files {self.files_done}/{self.total_files}"
        )

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        resumed = f", {human_bytes(self.resumed_bytes)} resumed" if self.resumed_bytes else ""
        return (
            f"fetched {human_bytes(self.fetched_bytes)} in {elapsed:.1f}s "
            f"({human_bytes(self.fetched_bytes / elapsed)}/s){resumed}, "
            f"{self.total_files} files"
        )


async def report_every(progress: Progress, interval: float) -> None:
    """Log a progress line every ``interval`` seconds until cancelled."""
    last_bytes, last_time = progress.fetched_bytes, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        rate = (progress.fetched_bytes - last_bytes) / max(now - last_time, 1e-9)
        last_bytes, last_time = progress.fetched_bytes, now
        log.info("%s", progress.line(rate))
