"""Blocking part downloads in their own threads, awaited from the event loop.

For sources with a blocking API (obstore), a whole part is fetched, written and hashed by one
thread: each ~1 MiB piece then costs no event-loop round trip and no thread hand-off. Measured
on the 2-core box (1 GiB, receive only): 0.57 CPU s/GiB this way against 0.83 s through the
async stream plus an executor call per piece.

The threads are daemons: one stuck on a stalled connection must not hold the process's exit
after the download has already failed. ``stop`` asks them to give up at the next piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class PartThreads:
    """Starts one daemon thread per part and lets the loop await it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        """Set when the download failed: threads stop at their next piece."""
        self._active = 0
        self._idle = threading.Condition()

    async def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` in a new daemon thread; return or raise as it does."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def deliver(error: BaseException | None) -> None:
            if done.done():  # the awaiting task was cancelled
                return
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

        def body() -> None:
            error: BaseException | None = None
            try:
                job()
            except BaseException as caught:  # handed to the awaiting task
                error = caught
            finally:
                with self._idle:
                    self._active -= 1
                    self._idle.notify_all()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits it
                loop.call_soon_threadsafe(deliver, error)

        with self._idle:
            self._active += 1
        threading.Thread(target=body, name="prefetch-part", daemon=True).start()
        await done

    def stop_and_wait(self, timeout: float) -> bool:
        """Ask every thread to stop; True when all have ended within ``timeout`` seconds."""
        self.stop.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)
