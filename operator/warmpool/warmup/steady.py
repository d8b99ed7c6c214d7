"""Steady-state detection for warm-up latencies (pure: no I/O, no clock).

The rule, precisely. Let ``L_1 .. L_n`` be the latencies of the warm-up requests in the order
they COMPLETED, ``k`` the window, ``t`` the relative tolerance and ``h`` the history (in
windows). For ``j >= k`` let ``M_j = median(L_{j-k+1} .. L_j)`` (the median of the ``k`` most
recent latencies after request ``j``) and let ``B_n = min(M_{n-k}, M_{n-2k}, .., M_{n-hk})``
over those indices that are ``>= k``: the best median of the (up to ``h``) disjoint windows
before the last one. After request ``n`` latency is **steady** when all of:

1. ``n >= max(min_requests, 2k)``: enough requests, and two full disjoint windows exist;
2. ``M_n <= (1 + t) * B_n``: recent latency is within ``t`` of the best recent window (catches
   drift up over the last ``(h + 1) * k`` requests: a server getting slower is not steady);
3. ``|M_n - M_{n-k}| <= t * M_{n-k}``: the last window agrees with the window before it
   (catches a curve still falling: while latency keeps improving, ``M_n`` IS the best, so rule 2
   alone would stop at the first improving window).

If the rule does not hold by ``n = max_requests`` the verdict is **not steady**.

Why medians, and why a bounded history: medians make the rule robust to single outliers (a GC
pause, a noisy neighbour). Comparing with the best of ALL windows ever seen would compare with
an extreme value that gets lower the longer warm-up runs and that a quiet moment of a shared
machine set -- measured on a loaded 2-core box, it never converged at ``t = 0.1`` in 500
requests. ``h`` disjoint windows keep the comparison robust yet catch drift. Drift slower than
``t`` per window shows only once ``h`` earlier windows exist: to always require them, set
``min_requests >= (h + 1) * k``. The rule never
uses wall time, so the caller bounds it with a timeout separately.
"""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """What the detector says after each latency."""

    CONTINUE = "continue"
    STEADY = "steady"
    NOT_STEADY = "not-steady"


@dataclass(frozen=True)
class SteadyRule:
    """Parameters of the rule in the module docstring."""

    window: int = 5
    """``k``: latencies per window median."""
    tolerance: float = 0.1
    """``t``: relative tolerance, e.g. 0.1 = 10 %."""
    min_requests: int = 10
    """No verdict of steady before this many latencies (and never before ``2 * window``)."""
    max_requests: int = 500
    """Not steady if the rule has not held by this many latencies."""
    history: int = 4
    """``h``: earlier disjoint windows the last one is compared with (rule 2)."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be >= 1")
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")
        if self.history < 1:
            raise ValueError("history must be >= 1")
        if self.min_requests < 1:
            raise ValueError("min_requests must be >= 1")
        if self.max_requests < max(self.min_requests, 2 * self.window):
            raise ValueError("max_requests must be >= max(min_requests, 2 * window)")


@dataclass
class SteadyStateDetector:
    """Feed latencies (seconds) with :meth:`add`; it answers with a :class:`Verdict`."""

    rule: SteadyRule
    latencies: list[float] = field(default_factory=list)
    window_medians: list[float] = field(default_factory=list)
    """``M_k .. M_n``: ``window_medians[i]`` is ``M_{k+i}``."""
    verdict: Verdict = Verdict.CONTINUE

    def add(self, latency: float) -> Verdict:
        """Record one completed request's latency and return the verdict after it.

        Once the verdict is final (steady or not steady) further latencies are ignored.
        """
        if self.verdict is not Verdict.CONTINUE:
            return self.verdict
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.latencies.append(latency)
        k = self.rule.window
        if len(self.latencies) >= k:
            self.window_medians.append(statistics.median(self.latencies[-k:]))
        if self._steady():
            self.verdict = Verdict.STEADY
        elif len(self.latencies) >= self.rule.max_requests:
            self.verdict = Verdict.NOT_STEADY
        return self.verdict

    def _steady(self) -> bool:
        n, k, t = len(self.latencies), self.rule.window, self.rule.tolerance
        if n < max(self.rule.min_requests, 2 * k):
            return False
        # window_medians[i] is M_{k+i}; M_{n-jk} is window_medians[-1 - j*k] while it exists.
        medians = self.window_medians
        earlier = [
            medians[-1 - j * k] for j in range(1, self.rule.history + 1) if j * k < len(medians)
        ]
        current, previous = medians[-1], earlier[0]
        return current <= (1 + t) * min(earlier) and abs(current - previous) <= t * previous

    @property
    def count(self) -> int:
        """How many latencies were recorded."""
        return len(self.latencies)

    @property
    def first(self) -> float | None:
        """The first request's latency (the cold one)."""
        return self.latencies[0] if self.latencies else None

    @property
    def current_median(self) -> float | None:
        """``M_n``: the median of the last window (the steady p50 once steady)."""
        return self.window_medians[-1] if self.window_medians else None

    @property
    def best_median(self) -> float | None:
        """The best window median seen so far (over all windows; for reports)."""
        return min(self.window_medians) if self.window_medians else None


@dataclass
class StreamSteadyDetector:
    """The rule above applied to a streaming model: to its time to first token (TTFT) AND to
    its inter-token latency (ITL, each answer's median gap between tokens), separately.

    Steady once both are steady (each latches when its rule first holds); not steady as soon
    as either is not. Answers of a single token carry no ITL: only their TTFT is recorded.
    """

    rule: SteadyRule
    ttft: SteadyStateDetector = field(init=False)
    itl: SteadyStateDetector = field(init=False)
    answers: int = 0
    """Answers recorded (each detector stops counting once it latched)."""

    def __post_init__(self) -> None:
        self.ttft = SteadyStateDetector(self.rule)
        self.itl = SteadyStateDetector(self.rule)

    def add(self, ttft: float, itl: float | None) -> Verdict:
        """Record one answer's TTFT and median ITL (seconds) and return the verdict after it."""
        self.answers += 1
        self.ttft.add(ttft)
        if itl is not None:
            self.itl.add(itl)
        return self.verdict

    @property
    def verdict(self) -> Verdict:
        verdicts = (self.ttft.verdict, self.itl.verdict)
        if Verdict.NOT_STEADY in verdicts:
            return Verdict.NOT_STEADY
        if verdicts == (Verdict.STEADY, Verdict.STEADY):
            return Verdict.STEADY
        if self.answers >= self.rule.max_requests:
            # E.g. every answer had one token: no ITL could be judged.
            return Verdict.NOT_STEADY
        return Verdict.CONTINUE
