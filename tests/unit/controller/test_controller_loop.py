"""The refresh loop: marks coalesce, ticks cover every pool, a failing pool does not stop it."""

from __future__ import annotations

import asyncio
import contextlib

from warmpool.controller.loop import RefreshLoop

Key = tuple[str, str]


class Recorder:
    """The loop's sync function: records calls, fails for `broken`, signals after `enough`."""

    def __init__(self, enough: int) -> None:
        self.calls: list[tuple[Key, str]] = []
        self.enough = enough
        self.done = asyncio.Event()

    async def __call__(self, key: Key, trigger: str) -> None:
        self.calls.append((key, trigger))
        if len(self.calls) >= self.enough:
            self.done.set()
        if key[1] == "broken":
            raise RuntimeError("boom")


async def run_until_done(loop: RefreshLoop, recorder: Recorder) -> None:
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(recorder.done.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_marks_coalesce_into_one_refresh_per_pool() -> None:
    recorder = Recorder(enough=2)
    loop = RefreshLoop(recorder, lambda: [], interval=3600, debounce=0.05, workers=2)
    for _ in range(5):
        loop.mark(("ns", "a"))
    loop.mark(("ns", "b"))
    await run_until_done(loop, recorder)
    assert sorted(recorder.calls) == [(("ns", "a"), "observe"), (("ns", "b"), "observe")]


async def test_tick_refreshes_every_pool_and_survives_a_failure() -> None:
    recorder = Recorder(enough=4)
    pools = [("ns", "broken"), ("ns", "fine")]
    loop = RefreshLoop(recorder, lambda: pools, interval=0.05, debounce=0.0, workers=1)
    await run_until_done(loop, recorder)
    assert {trigger for _, trigger in recorder.calls} == {"tick"}
    assert [key for key, _ in recorder.calls].count(("ns", "fine")) >= 2
