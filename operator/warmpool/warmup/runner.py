"""The warm-up cycle: wait for readiness, drive requests until steady, open or close the gate.

I/O goes through two seams: a :class:`~warmpool.warmup.triton.TritonDriver` (the model server)
and a :class:`~warmpool.warmup.condition.ConditionSink` (the pod condition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tritonclient.utils import InferenceServerException

from warmpool.contract import SERVER_READY_AT, WARM_AT
from warmpool.warmup import report
from warmpool.warmup.condition import ConditionSink, ConditionStatus
from warmpool.warmup.inputs import Tensor, WarmupRequest, generate_request, specs_from_metadata
from warmpool.warmup.llm import (
    DEFAULT_PROMPTS,
    StreamRequest,
    declared_inputs,
    is_decoupled,
    stream_tensors,
)
from warmpool.warmup.settings import WarmupSettings
from warmpool.warmup.steady import (
    SteadyRule,
    SteadyStateDetector,
    StreamSteadyDetector,
    Verdict,
)
from warmpool.warmup.triton import InferenceFailed, TritonDriver

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_ERRORS = 3
"""Inference errors in a row before the warm-up gives up (``InferenceFailed``)."""
WRITE_ATTEMPTS = 5
"""Tries to write the condition before the program exits (and the sidecar restarts)."""


@dataclass
class Outcome:
    """How one warm-up ended; renders the condition."""

    reason: str
    server_ready_at: datetime | None = None
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    requests: int = 0
    first_s: float | None = None
    p50_s: float | None = None
    best_p50_s: float | None = None
    itl_p50_s: float | None = None
    """Streaming models: the last window's median inter-token latency."""
    mode: str = ""
    """``stream`` for a streaming warm-up (latencies are then times to first token)."""
    detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.reason == report.REASON_SUCCEEDED

    @property
    def status(self) -> ConditionStatus:
        return "True" if self.succeeded else "False"

    def message(self) -> str:
        """The condition message in :mod:`warmpool.warmup.report`'s format."""
        duration = None
        if self.server_ready_at is not None:
            duration = (self.finished_at - self.server_ready_at).total_seconds()
        if self.succeeded:
            pairs: dict[str, str | int | float | datetime | None] = {
                SERVER_READY_AT: self.server_ready_at,
                WARM_AT: self.finished_at,
                "requests": self.requests,
                "firstMs": _ms(self.first_s),
                "steadyP50Ms": _ms(self.p50_s),
                "steadyItlMs": _ms(self.itl_p50_s),
                "durationS": duration,
                "mode": self.mode or None,
            }
        else:
            pairs = {
                SERVER_READY_AT: self.server_ready_at,
                "failedAt": self.finished_at,
                "requests": self.requests,
                "firstMs": _ms(self.first_s),
                "lastP50Ms": _ms(self.p50_s),
                "bestP50Ms": _ms(self.best_p50_s),
                "lastItlMs": _ms(self.itl_p50_s),
                "durationS": duration,
                "mode": self.mode or None,
            }
        return report.format_message(pairs, self.detail)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


@dataclass
class GateState:
    """What the health endpoint reports; updated by the runner."""

    phase: str = "starting"
    """starting | waiting | warming | warm | failed | server-not-ready"""
    outcome: Outcome | None = None

    @property
    def warm(self) -> bool:
        return self.phase == "warm"


@dataclass
class _Ready:
    at: datetime | None
    reason: str = ""
    detail: str = ""


async def wait_until_ready(driver: TritonDriver, deadline: float) -> _Ready:
    """Poll until the server is ready and the model is ready, or ``deadline`` (loop time).

    Returns the moment readiness was first seen, or a failure: ``ModelNotReady`` when the
    model failed to load (at once) or was still not ready at the deadline while the server was
    live, ``Timeout`` when the server never answered.
    """
    loop = asyncio.get_running_loop()
    live_seen = False
    last = ""
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                if await driver.server_live():
                    live_seen = True
                    status = await driver.model_status()
                    last = status.state.value
                    if status.failed:
                        return _Ready(
                            None,
                            report.REASON_MODEL_NOT_READY,
                            f"model {driver.model} failed to load: {status.reason}",
                        )
                    if await driver.model_ready() and await driver.server_ready():
                        return _Ready(datetime.now(UTC))
                await asyncio.sleep(min(report.READY_POLL_SECONDS, max(deadline - loop.time(), 0)))
    except TimeoutError:
        pass
    if live_seen:
        return _Ready(
            None,
            report.REASON_MODEL_NOT_READY,
            f"server live but model {driver.model} not ready in time (last state {last})",
        )
    return _Ready(None, report.REASON_TIMEOUT, "server never became live")


async def _drive_until_steady(
    verdict: Callable[[], Verdict],
    send: Callable[[int], Awaitable[None]],
    max_requests: int,
    concurrency: int,
    deadline: float,
    *,
    sent_label: str,
    unsteady: str,
) -> tuple[int, str, str]:
    """The loop :func:`drive` and :func:`drive_stream` share: ``concurrency`` workers call
    ``send(n)`` (which sends request n and feeds the detector) until ``verdict()`` decides,
    ``max_requests`` are sent, ``deadline`` passes or too many consecutive requests fail.

    Returns the number of requests answered successfully and, on failure, a reason and detail
    (``sent_label`` and ``unsteady``, formatted with the count sent, word them).
    """
    sent = 0
    completed = 0
    errors = 0
    failure = ""

    async def worker() -> None:
        nonlocal sent, completed, errors, failure
        while verdict() is Verdict.CONTINUE and sent < max_requests and not failure:
            index = sent
            sent += 1
            try:
                await send(index)
            except InferenceFailed as error:
                errors += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    failure = str(error)
                continue
            errors = 0
            completed += 1

    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    except TimeoutError:
        return (
            completed,
            report.REASON_TIMEOUT,
            f"not steady before the timeout ({sent} {sent_label})",
        )
    if failure:
        return completed, report.REASON_INFERENCE_FAILED, f"inference failed: {failure}"
    if verdict() is Verdict.STEADY:
        return completed, "", ""
    return completed, report.REASON_NOT_STEADY, unsteady.format(sent=sent)


async def drive(
    driver: TritonDriver,
    requests: list[WarmupRequest],
    rule: SteadyRule,
    concurrency: int,
    deadline: float,
) -> tuple[SteadyStateDetector, int, str, str]:
    """Send warm-up requests until the detector decides, ``max_requests`` or ``deadline``.

    Returns the detector, the number of requests answered successfully (with concurrency > 1
    some complete after the verdict: they count here, not in the detector), and on failure a
    reason and detail (empty strings when steady).
    """
    detector = SteadyStateDetector(rule)

    async def send(index: int) -> None:
        started = time.perf_counter()
        await driver.infer(requests[index % len(requests)])
        detector.add(time.perf_counter() - started)

    completed, reason, detail = await _drive_until_steady(
        lambda: detector.verdict,
        send,
        rule.max_requests,
        concurrency,
        deadline,
        sent_label="sent",
        unsteady="latency not steady after {sent} requests",
    )
    return detector, completed, reason, detail


async def drive_stream(
    driver: TritonDriver,
    requests: list[list[Tensor]],
    rule: SteadyRule,
    concurrency: int,
    deadline: float,
) -> tuple[StreamSteadyDetector, int, str, str]:
    """:func:`drive` for a decoupled model: each request is a streamed answer, judged on its
    time to first token and its inter-token latency (:class:`StreamSteadyDetector`)."""
    detector = StreamSteadyDetector(rule)

    async def send(index: int) -> None:
        timing = await driver.stream(requests[index % len(requests)])
        detector.add(timing.ttft, timing.itl)

    completed, reason, detail = await _drive_until_steady(
        lambda: detector.verdict,
        send,
        rule.max_requests,
        concurrency,
        deadline,
        sent_label="streams sent",
        unsteady="time to first token / inter-token latency not steady after {sent} streams",
    )
    return detector, completed, reason, detail


async def _streaming(driver: TritonDriver, mode: str) -> bool:
    """Whether to warm up with streams: the mode, or (``auto``) the model's config.

    A config that cannot be read in ``auto`` mode means unary, as before streaming existed
    (a decoupled model then fails its unary requests with Triton's own message).
    """
    if mode != "auto":
        return mode == "stream"
    try:
        return is_decoupled(await driver.config())
    except Exception as error:  # server error, connection error, odd JSON: all mean "unknown"
        log.warning(
            "model config of %s unreadable (%s): warming up with unary requests",
            driver.model,
            error,
        )
        return False


async def warm_up_stream(
    driver: TritonDriver,
    prompts: list[StreamRequest],
    settings: WarmupSettings,
    ready_at: datetime,
    deadline: float,
) -> Outcome:
    """Warm a decoupled model with streamed prompts until TTFT and ITL are steady."""
    try:
        declared = declared_inputs(await driver.metadata())
        requests = [stream_tensors(prompt, declared) for prompt in prompts]
    except (InferenceServerException, ValueError, KeyError) as error:
        return Outcome(
            report.REASON_INFERENCE_FAILED,
            server_ready_at=ready_at,
            mode="stream",
            detail=f"no streaming warm-up requests: {error}",
        )
    log.info("streaming warm-up of %s with %d prompts", driver.model, len(prompts))
    detector, completed, reason, detail = await drive_stream(
        driver, requests, settings.rule(), settings.concurrency, deadline
    )
    return Outcome(
        reason or report.REASON_SUCCEEDED,
        server_ready_at=ready_at,
        requests=completed,
        first_s=detector.ttft.first,
        p50_s=detector.ttft.current_median,
        best_p50_s=detector.ttft.best_median,
        itl_p50_s=detector.itl.current_median,
        mode="stream",
        detail=detail,
    )


async def warm_up(
    driver: TritonDriver,
    requests: list[WarmupRequest],
    settings: WarmupSettings,
    state: GateState,
    prompts: list[StreamRequest] | None = None,
) -> Outcome:
    """One bounded warm-up: readiness, then requests (or streams) until steady."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.timeout
    state.phase = "waiting"
    ready = await wait_until_ready(driver, deadline)
    if ready.at is None:
        return Outcome(ready.reason, detail=ready.detail)
    log.info("server and model %s ready; warming up", driver.model)
    if await _streaming(driver, settings.mode):
        state.phase = "warming"
        prompts = prompts or [StreamRequest(p, settings.max_tokens) for p in DEFAULT_PROMPTS]
        return await warm_up_stream(driver, prompts, settings, ready.at, deadline)
    if not requests:
        try:
            specs = specs_from_metadata(await driver.metadata())
        except (InferenceServerException, ValueError, KeyError) as error:
            return Outcome(
                report.REASON_INFERENCE_FAILED,
                server_ready_at=ready.at,
                detail=f"no warm-up inputs: model metadata unusable: {error}",
            )
        log.info("warm-up inputs from the model's metadata: %s", [s.name for s in specs])
        requests = [generate_request(specs)]
    state.phase = "warming"
    detector, completed, reason, detail = await drive(
        driver, requests, settings.rule(), settings.concurrency, deadline
    )
    return Outcome(
        reason or report.REASON_SUCCEEDED,
        server_ready_at=ready.at,
        requests=completed,
        first_s=detector.first,
        p50_s=detector.current_median,
        best_p50_s=detector.best_median,
        detail=detail,
    )


async def watch(driver: TritonDriver, interval: float, failures: int) -> str:
    """Return (with a detail) once the server or model failed ``failures`` checks in a row."""
    missed = 0
    while True:
        await asyncio.sleep(interval)
        if await driver.server_ready() and await driver.model_ready():
            missed = 0
            continue
        missed += 1
        if missed >= failures:
            return f"server or model {driver.model} not ready in {missed} checks {interval}s apart"


async def write(sink: ConditionSink, status: ConditionStatus, reason: str, message: str) -> bool:
    """Write the condition, retrying with backoff; False when every attempt failed."""
    delay = 0.5
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            await sink.set(status, reason, message)
            return True
        except Exception as error:  # API errors, connection errors: retry, then give up
            log.warning("writing the condition failed (attempt %d): %s", attempt, error)
            if attempt < WRITE_ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
    return False


async def run(
    settings: WarmupSettings,
    driver: TritonDriver,
    sink: ConditionSink,
    requests: list[WarmupRequest],
    state: GateState,
    prompts: list[StreamRequest] | None = None,
) -> int:
    """Warm up, open the gate, then watch; exit code 0 only with ``--once`` after success.

    After the gate opened, a server that stops being ready closes it (``ServerNotReady``) and
    the cycle starts again: a restarted server is cold again.
    """
    while True:
        outcome = await warm_up(driver, requests, settings, state, prompts)
        state.outcome = outcome
        state.phase = "warm" if outcome.succeeded else "failed"
        log.info("warm-up: %s %s", outcome.reason, outcome.message())
        if not await write(sink, outcome.status, outcome.reason, outcome.message()):
            return 2
        if not outcome.succeeded:
            return 1
        if settings.once:
            return 0
        detail = await watch(driver, settings.watch_interval, settings.watch_failures)
        state.phase = "server-not-ready"
        log.warning("%s: closing the gate", detail)
        message = report.format_message({"failedAt": datetime.now(UTC)}, detail)
        if not await write(sink, "False", report.REASON_SERVER_NOT_READY, message):
            return 2
