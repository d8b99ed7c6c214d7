"""Autoscaling benchmark: replay request traces through warmpool's policy, the baselines and
an offline oracle.

Not a test. An event-driven simulator replays a trace (CSV: `timestamp_s`, optional
`duration_ms`) against each autoscaler and reports, per policy: requests that waited on a cold
start, p50/p99 added latency, GPU-seconds.

    python benchmarks/autoscale.py --trace benchmarks/traces/sparse-periodic.csv
    python benchmarks/autoscale.py --all     # every generated trace -> results/autoscale.md + PNG

warmpool runs THE SAME `warmpool.scaling.policy.decide` the operator runs, on what the operator
would read: the range query's answer from a simulated Prometheus (`promsim.py`: per-replica
Triton counters that move when requests complete, 5 s scrapes visible 1 s later, Prometheus's
own `rate()` extrapolation, 30 s window, 10 s step, 120 s lookback), parsed by the operator's
own `parse_range_result`; the activator's wake reaches the operator `WAKE_DELAY_S` after the
first held request. Baselines are modelled from their code (`Knative`, `Keda`, `Hpa` below cite
the functions they follow). The results file states every choice and its source.

Model (the same for every policy):
- A replica is a GPU held from the moment it is requested until it is stopped; a new replica
  serves requests only after the cold start (node provisioning + prefetch + load + warm-up).
- A replica serves `--slots` requests at once (the target concurrency); a request is bound at
  arrival to the replica slot that frees first (FIFO per slot) and runs for its `duration_ms`.
- A request "waited on a cold start" when the replica that serves it was not warm at arrival.
  Added latency = start of service - arrival (cold-start waits and queueing).
- Requests that arrive at zero replicas are held (activator / interceptor) until a replica is
  warm.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import math
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "operator"))

from promsim import PromConfig, Series, SimulatedPrometheus  # noqa: E402
from traces.generate import GENERATORS  # noqa: E402
from warmpool.api.spec import PredictiveSpec, ScalingSpec, TrafficTarget  # noqa: E402
from warmpool.scaling.policy import (  # noqa: E402
    DEFAULT_COLD_START_COST_SECONDS,
    Observation,
    Sample,
    decide,
)
from warmpool.scaling.prometheus import parse_range_result  # noqa: E402
from warmpool.scaling.state import PolicyState  # noqa: E402

#: Simulated wall clock of t=0 (a Monday, so time of day and week mean something).
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
INF = math.inf
#: The policies of the last output line, in order.
POLICIES = ("warmpool", "knative", "keda", "hpa", "keepalive", "alwayson", "oracle")
#: warmpool's knob, swept: GPU-seconds one request waiting on a cold start is worth.
LAMBDAS = (0.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
#: Each baseline's own knob, swept for its Pareto curve.
KNATIVE_STABLE_WINDOWS = (6.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
KEDA_COOLDOWNS = (30.0, 60.0, 150.0, 300.0, 900.0, 3600.0)
KEEPALIVES = (60.0, 300.0, 600.0, 1800.0, 3600.0)
#: Traces with a fixed period or a daily schedule: the ">= 5x fewer cold hits than Knative at
#: no more GPU-seconds" target applies to them.
PERIODIC_TRACES = (
    "sparse-periodic",
    "daily-schedule",
    "periodic-strays",
    "daily-strays",
    "office-hours",
)
#: From the first held request to the operator's replica request: the activator's merge patch
#: (operator/warmpool/activator/wake.py), the watch event, the kopf handler and the Deployment
#: write (about a second on a loaded API server; the same for every activator-like path).
WAKE_DELAY_S = 1.0


@dataclass(frozen=True)
class ColdStartModel:
    """Seconds from a replica's request to warm; defaults: a 30 s cold start, no node cache."""

    provision_s: float = 0.0  # a free GPU node exists (headroom); add node boot time if not
    prefetch_s: float = 18.0  # weights from object storage (0 with a verified node cache)
    load_s: float = 8.0  # server start + load into GPU memory
    warmup_s: float = 4.0  # warm-up until latency is steady

    @property
    def total(self) -> float:
        return self.provision_s + self.prefetch_s + self.load_s + self.warmup_s


@dataclass(frozen=True)
class Request:
    arrival: float
    duration: float  # seconds


@dataclass
class Replica:
    started: float
    ready: float
    slots: list[float]  # heap of times each slot frees
    series: Series
    stopped: float | None = None


@dataclass
class Outcome:
    policy: str
    cold_hits: int
    requests: int
    p50_added_s: float
    p99_added_s: float
    gpu_seconds: float
    max_replicas: int
    elapsed_s: float
    label: str = ""


class Cluster:
    """Replicas, request placement, the concurrency record and the simulated Prometheus."""

    def __init__(self, cold_start: float, slots: int, horizon: float) -> None:
        self.cold_start = cold_start
        self.slots = slots
        self.live: list[Replica] = []
        self.gone: list[Replica] = []
        # In-system concurrency integral per second (held, queued, executing): what Knative's
        # queue-proxy and activator report (they count every request they hold or proxy).
        self.busy = array("d", bytes(8 * (int(horizon) + 4000)))
        self.in_system_until = 0.0
        self.peak = 0
        self.prom = SimulatedPrometheus(PromConfig(), horizon)

    def start(self, at: float, count: int = 1) -> None:
        for _ in range(count):
            ready = at + self.cold_start
            series = self.prom.new_series(ready)
            self.live.append(Replica(at, ready, [ready] * self.slots, series))
        self.peak = max(self.peak, len(self.live))

    def scale_to(self, desired: int, at: float) -> None:
        if desired > len(self.live):
            self.start(at, desired - len(self.live))
            return
        while len(self.live) > desired:
            # Kubernetes removes not-ready pods first, then the least busy.
            victim = max(
                self.live, key=lambda r: (r.ready > at, -max(r.slots) if r.ready <= at else r.ready)
            )
            self.live.remove(victim)
            victim.stopped = max(at, max(victim.slots)) if victim.ready <= at else at
            victim.series.died = victim.stopped
            self.gone.append(victim)

    def ready_count(self, at: float) -> int:
        return sum(1 for r in self.live if r.ready <= at)

    def place(self, request: Request) -> tuple[float, bool]:
        """Bind a request to the slot that frees first; (start of service, waited on cold)."""
        best: Replica | None = None
        best_start = INF
        for replica in self.live:
            start = max(request.arrival, replica.slots[0])
            if start < best_start or (start == best_start and best and replica.ready < best.ready):
                best, best_start = replica, start
        assert best is not None
        end = best_start + request.duration
        heapq.heapreplace(best.slots, end)
        self._record(request.arrival, end)
        self.prom.record(best.series, request.arrival, best.ready, best_start, end)
        return best_start - request.arrival, best.ready > request.arrival

    def _record(self, begin: float, end: float) -> None:
        self.in_system_until = max(self.in_system_until, end)
        second = int(begin)
        while begin < end and second < len(self.busy):
            upto = min(end, second + 1.0)
            self.busy[second] += upto - begin
            begin, second = upto, second + 1

    def concurrency(self, begin: float, end: float) -> float:
        """Mean in-system concurrency over [begin, end) (whole seconds)."""
        a, b = max(int(begin), 0), min(int(end), len(self.busy))
        if b <= a:
            return 0.0
        return sum(self.busy[a:b]) / (b - a)

    def gpu_seconds(self, end: float) -> float:
        total = 0.0
        for replica in self.gone:
            total += min(replica.stopped or end, end) - replica.started
        for replica in self.live:
            total += end - replica.started
        return total


class Autoscaler(Protocol):
    """A policy under test, driven by the simulator."""

    interval: float

    def initial(self) -> int: ...

    def tick(self, now: float, cluster: Cluster) -> int: ...

    def wake(self, arrival: float) -> float | None:
        """At zero replicas: when a replica starts for a request arriving now (None: never)."""
        ...

    def quiet_until(self, now: float) -> float:
        """At zero with nothing in the system: the next tick that could change anything."""
        ...


class Warmpool:
    """warmpool's own policy (`warmpool.scaling.policy.decide`), evaluated every `interval`
    on the simulated Prometheus's answer to the operator's range query."""

    def __init__(self, spec: ScalingSpec, cold_start: float, interval: float = 10.0) -> None:
        self.spec, self.cold_start, self.interval = spec, cold_start, interval
        self.state = PolicyState()
        self.wake_at: float | None = None
        self.next_change: float | None = None
        self.last_tick: float | None = None

    def initial(self) -> int:
        return self.spec.warm_floor

    def tick(self, now: float, cluster: Cluster) -> int:
        skipped = self.last_tick is not None and now - self.last_tick > self.interval + 1e-6
        # After a quiet skip (at zero, nothing in flight: every skipped evaluation would have
        # read zeros and answered 0) the range reaches back to the last evaluation, so the
        # policy sees the same samples as if it had evaluated every interval.
        since = self.last_tick if skipped else None
        answer = cluster.prom.range_query(now, since)
        samples = [Sample(_epoch(s.at), s.value) for s in parse_range_result(answer)]
        self.last_tick = now
        observation = Observation(
            samples=samples,
            current_replicas=len(cluster.live),
            ready_replicas=cluster.ready_count(now),
            wake_at=_epoch(self.wake_at) if self.wake_at is not None else None,
            cold_start_seconds=self.cold_start,
            interval_seconds=self.interval,
        )
        decision = decide(self.spec, observation, EPOCH + timedelta(seconds=now), self.state)
        self.state = decision.state
        self.next_change = (
            decision.next_change_at - EPOCH.timestamp() if decision.next_change_at else None
        )
        return decision.desired

    def wake(self, arrival: float) -> float:
        self.wake_at = arrival
        return arrival + WAKE_DELAY_S

    def quiet_until(self, now: float) -> float:
        return self.next_change if self.next_change is not None else INF


class Knative:
    """Knative Serving's KPA (knative/serving, pkg/autoscaler/scaling/autoscaler.go
    `autoscaler.Scale`; pkg/reconciler/autoscaling/kpa/scaler.go `handleScaleToZero`; defaults
    from config/core/configmaps/autoscaler.yaml).

    - 2 s tick; stable window 60 s, panic window 10 % of it; the metric is the mean in-system
      concurrency over each window (queue-proxy / activator stats, one-second buckets).
    - Target per pod = containerConcurrency x container-concurrency-target-percentage (70 %).
    - desired = ceil(stable / target), at least floor(ready / max-scale-down-rate 2), at most
      ceil(1000 x ready); panic when ceil(panic / target) / ready >= 200 %: then the desired
      count is the panic one and never decreases until a stable window after the last panic.
    - Scale to zero (`handleScaleToZero`): a desired 0 while the PA has been Active for less
      than the stable window keeps one pod; after that the PA is marked Inactive (re-enqueued
      3 s later); an Inactive PA goes to zero once it has been Inactive for the grace period
      (30 s) OR the activator has been in the data path for the grace period. With the default
      target-burst-capacity (211) and containerConcurrency 4 the activator never leaves the
      path (excess burst capacity = ready x 4 - 211 - panic < 0 below 53 pods), so the PA drops
      to zero about 3-4 s after going Inactive: ~60 s after the last request. With
      `activator_in_path=False` (target-burst-capacity 0) the SKS switches to proxy only when
      the PA goes Inactive, and the grace runs from there: ~90 s.
    """

    interval = 2.0

    def __init__(
        self,
        container_concurrency: float,
        max_replicas: int,
        *,
        utilization: float = 0.7,
        stable_window: float = 60.0,
        grace: float = 30.0,
        activator_in_path: bool = True,
    ) -> None:
        self.target = container_concurrency * utilization
        self.max_replicas = max_replicas
        self.stable_window = stable_window
        self.panic_window = max(stable_window * 0.1, 1.0)
        self.grace = grace
        self.activator_in_path = activator_in_path
        self.panic_time: float | None = None
        self.max_panic = 0
        self.active_since: float | None = None
        self.inactive_since: float | None = None

    def initial(self) -> int:
        return 0

    def tick(self, now: float, cluster: Cluster) -> int:
        current = len(cluster.live)
        if current == 0:
            self.active_since = self.inactive_since = None
            self.panic_time, self.max_panic = None, 0
            return 0
        ready = cluster.ready_count(now)
        ready_f = max(1.0, float(ready))
        stable = cluster.concurrency(now - self.stable_window, now)
        panic = cluster.concurrency(now - self.panic_window, now)
        dspc = math.ceil(stable / self.target - 1e-9)
        dppc = math.ceil(panic / self.target - 1e-9)
        max_down = math.floor(ready_f / 2.0)
        max_up = math.ceil(1000.0 * ready_f)
        desired_stable = min(max(dspc, max_down), max_up)
        desired_panic = min(max(dppc, max_down), max_up)
        over = dppc / ready_f >= 2.0
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + self.stable_window < now:
            self.panic_time, self.max_panic = None, 0
        desired = desired_stable
        if self.panic_time is not None:
            desired = max(desired, desired_panic)
            self.max_panic = max(self.max_panic, desired)
            desired = self.max_panic
        if ready > 0 and self.active_since is None and self.inactive_since is None:
            self.active_since = now  # Activating -> Active when a pod is ready
        return min(self._scale_to_zero(now, desired, current), self.max_replicas)

    def _scale_to_zero(self, now: float, desired: int, current: int) -> int:
        if desired != 0:
            if self.inactive_since is not None:
                self.inactive_since, self.active_since = None, now  # reactivated
            return desired
        if self.active_since is None and self.inactive_since is None:
            return current  # Activating: no change
        if self.inactive_since is None:
            assert self.active_since is not None
            if now - self.active_since >= self.stable_window:
                self.inactive_since, self.active_since = now, None
                return current  # marked Inactive; the scale is not applied this round
            return 1
        inactive_for = now - self.inactive_since
        if inactive_for < 3.0:
            return current  # re-enqueued 3 s after marking Inactive
        proxy_for = INF if self.activator_in_path else inactive_for
        if inactive_for >= self.grace or proxy_for >= self.grace:
            return 0
        return current

    def wake(self, arrival: float) -> float:
        return arrival + WAKE_DELAY_S

    def quiet_until(self, now: float) -> float:
        return INF


class Keda:
    """KEDA (kedacore/keda) driving an HPA, two ways of seeing traffic:

    - Prometheus scaler (`interceptor=False`): KEDA polls every pollingInterval (30 s) an
      instant query through the same simulated Prometheus as warmpool (so the activator's
      held requests show after a scrape); activation above 0. Requests at zero are held (by an
      activator or a client retrying) until that poll.
    - HTTP add-on (`interceptor=True`, kedacore/http-add-on): the interceptor holds requests
      and the external-push scaler streams activity every 200 ms (scaler/config.go
      KEDA_HTTP_SCALER_STREAM_INTERVAL_MS) from queue counts polled every 500 ms
      (KEDA_HTTP_QUEUE_TICK_DURATION): a pool at zero wakes ~0.7 s after the first request;
      the metric is the interceptor's in-flight count.

    Scale to zero: pkg/scaling/executor/scale_scaledobjects.go `scaleToZeroOrIdle`, once
    LastActiveTime + cooldownPeriod (300 s) has passed, checked every polling interval. Above
    one replica the HPA (`_hpa_step`) follows the metric.
    """

    interval = 15.0

    def __init__(
        self,
        target: float,
        max_replicas: int,
        *,
        cooldown: float = 300.0,
        polling: float = 30.0,
        interceptor: bool = False,
    ) -> None:
        self.target, self.max_replicas = target, max_replicas
        self.cooldown, self.polling, self.interceptor = cooldown, polling, interceptor
        self.last_active = -INF
        self.recommendations: list[tuple[float, int]] = []
        self.prom: SimulatedPrometheus | None = None

    def initial(self) -> int:
        return 0

    def tick(self, now: float, cluster: Cluster) -> int:
        self.prom = cluster.prom
        current = len(cluster.live)
        if self.interceptor:
            value = cluster.concurrency(now - 1, now)
            if cluster.in_system_until > now - self.interval:
                self.last_active = max(self.last_active, min(now, cluster.in_system_until))
        else:
            value = cluster.prom.value_at(now, now)
            if now % self.polling == 0 and value > 0:
                self.last_active = now
        if current == 0:
            return 0
        if now % self.polling == 0 and now - self.last_active >= self.cooldown:
            self.recommendations.clear()
            return 0
        return _hpa_step(self, now, value, current, minimum=1)

    def wake(self, arrival: float) -> float:
        if self.interceptor:
            return arrival + 0.7 + WAKE_DELAY_S
        # The held request shows at the next scrape, visible a second later; the next poll
        # after that activates.
        scrape = PromConfig().scrape_interval
        seen = math.floor(arrival / scrape) * scrape + scrape + PromConfig().ingest_lag
        poll = math.ceil(seen / self.polling) * self.polling
        self.last_active = poll
        return poll

    def quiet_until(self, now: float) -> float:
        return INF


class Hpa:
    """Kubernetes HPA defaults: 15 s sync, 10 % tolerance, scale-up max(100 %, 4 pods) per
    period, 300 s scale-down stabilization, minReplicas 1 (no scale to zero)."""

    interval = 15.0

    def __init__(self, target: float, max_replicas: int) -> None:
        self.target, self.max_replicas = target, max_replicas
        self.recommendations: list[tuple[float, int]] = []

    def initial(self) -> int:
        return 1

    def tick(self, now: float, cluster: Cluster) -> int:
        value = cluster.concurrency(now - 60, now)
        return _hpa_step(self, now, value, len(cluster.live), minimum=1)

    def wake(self, arrival: float) -> None:
        return None

    def quiet_until(self, now: float) -> float:
        return now


def _hpa_step(scaler: Keda | Hpa, now: float, value: float, current: int, minimum: int) -> int:
    ratio = value / (scaler.target * max(current, 1))
    recommendation = current if abs(ratio - 1) <= 0.1 else math.ceil(ratio * current - 1e-9)
    recommendation = min(max(recommendation, minimum), scaler.max_replicas)
    recommendation = min(recommendation, max(2 * current, current + 4))
    scaler.recommendations = [(t, r) for t, r in scaler.recommendations if t > now - 300]
    scaler.recommendations.append((now, recommendation))
    if recommendation >= current:
        return recommendation
    return min(current, max(r for _, r in scaler.recommendations))


class KeepAlive:
    """Fixed keep-alive (10 minutes: the policy "Serverless in the Wild" compares against):
    one replica stays `keep` seconds after the last request; more follow demand every 10 s."""

    interval = 10.0

    def __init__(self, target: float, max_replicas: int, keep: float = 600.0) -> None:
        self.target, self.max_replicas, self.keep = target, max_replicas, keep
        self.last_request = -INF

    def initial(self) -> int:
        return 0

    def tick(self, now: float, cluster: Cluster) -> int:
        value = cluster.concurrency(now - self.interval, now)
        if value > 0:
            self.last_request = now
        desired = math.ceil(value / self.target - 1e-9)
        if now - self.last_request < self.keep:
            desired = max(desired, 1)
        return min(desired, self.max_replicas)

    def wake(self, arrival: float) -> float:
        self.last_request = max(self.last_request, arrival)
        return arrival + WAKE_DELAY_S

    def quiet_until(self, now: float) -> float:
        return INF


class AlwaysOn:
    """Fixed replicas sized for the trace's peak concurrency; never cold, never scaled."""

    interval = INF

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def initial(self) -> int:
        return self.replicas

    def tick(self, now: float, cluster: Cluster) -> int:
        return self.replicas

    def wake(self, arrival: float) -> None:
        return None

    def quiet_until(self, now: float) -> float:
        return INF


class Oracle:
    """The offline bound: knows the whole trace. Every second it holds the replicas the next
    `cold start + 2 ticks` seconds need (zero-wait concurrency / slots): a replica is started
    exactly one cold start before the traffic that needs it and kept through any pause shorter
    than a cold start (releasing and starting again would cost at least as much).

    Why it does not depend on λ: with GPU time counted from the replica's request, a cold start
    costs the same C GPU-seconds as the pre-warm that avoids it, so avoiding it is worth it for
    every λ >= 0; the oracle's answer is one point (no cold starts, least GPU-seconds)."""

    interval = 2.0

    def __init__(self, requests: Sequence[Request], slots: int, cold_start: float) -> None:
        horizon = int((requests[-1].arrival + requests[-1].duration if requests else 0) + 2)
        events = sorted(
            [(r.arrival, 1) for r in requests] + [(r.arrival + r.duration, -1) for r in requests]
        )
        need = array("i", bytes(4 * (horizon + 1)))
        level, second = 0, 0
        for at, delta in events:
            while second < int(at):
                second += 1
                need[second] = max(need[second], math.ceil(level / slots))
            level += delta
            need[int(at)] = max(need[int(at)], math.ceil(level / slots))
        ahead = math.ceil(cold_start + 2 * self.interval)
        # want[t] = max(need[t .. t + ahead]): sliding maximum, right to left.
        self.want = array("i", bytes(4 * (horizon + 1)))
        window: list[tuple[int, int]] = []  # (value, index), decreasing values
        for t in range(horizon, -1, -1):
            while window and window[-1][0] <= need[t]:
                window.pop()
            window.append((need[t], t))
            while window[0][1] > t + ahead:
                window.pop(0)
            self.want[t] = window[0][0]
        self.starts = [
            t for t in range(horizon + 1) if self.want[t] and (t == 0 or not self.want[t - 1])
        ]

    def initial(self) -> int:
        return self.want[0] if self.want else 0

    def tick(self, now: float, cluster: Cluster) -> int:
        index = int(now)
        return self.want[index] if index < len(self.want) else 0

    def wake(self, arrival: float) -> float:
        return arrival

    def quiet_until(self, now: float) -> float:
        index = _bisect_right(self.starts, int(now))
        return float(self.starts[index]) if index < len(self.starts) else INF


def _bisect_right(values: Sequence[int], x: int) -> int:
    low, high = 0, len(values)
    while low < high:
        middle = (low + high) // 2
        if values[middle] <= x:
            low = middle + 1
        else:
            high = middle
    return low


def _epoch(t: float) -> float:
    return EPOCH.timestamp() + t


def simulate(
    requests: Sequence[Request],
    scaler: Autoscaler,
    name: str,
    cold_start: float,
    slots: int,
    tail: float = 3600.0,
) -> Outcome:
    """Replay `requests` against `scaler`; events are arrivals and the scaler's ticks."""
    began = time.perf_counter()
    end = (requests[-1].arrival if requests else 0.0) + tail
    cluster = Cluster(cold_start, slots, end)
    if scaler.initial():
        cluster.start(-cold_start, scaler.initial())  # warm at t=0
    added: list[float] = []
    cold = 0
    step = scaler.interval
    next_tick = step if step < INF else INF
    index = 0
    while True:
        arrival = requests[index].arrival if index < len(requests) else INF
        if next_tick <= arrival and next_tick <= end:
            cluster.scale_to(scaler.tick(next_tick, cluster), next_tick)
            after = next_tick + step
            if not cluster.live and cluster.in_system_until <= next_tick:
                # Quiet at zero: jump to the policy's next possible change or the next arrival.
                wake_up = min(scaler.quiet_until(next_tick), arrival)
                after = INF if wake_up == INF else max(after, math.ceil(wake_up / step) * step)
            next_tick = after
            continue
        if arrival == INF or arrival > end:
            break
        request = requests[index]
        index += 1
        if not cluster.live:
            start = scaler.wake(request.arrival)
            if start is None:
                raise RuntimeError(f"{name} has no replica and no way to wake")
            cluster.start(start)
        wait, was_cold = cluster.place(request)
        added.append(wait)
        cold += was_cold
    added.sort()
    return Outcome(
        policy=name,
        cold_hits=cold,
        requests=len(requests),
        p50_added_s=_percentile(added, 0.50),
        p99_added_s=_percentile(added, 0.99),
        gpu_seconds=cluster.gpu_seconds(end),
        max_replicas=cluster.peak,
        elapsed_s=time.perf_counter() - began,
    )


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_replicas(requests: Sequence[Request], slots: int) -> int:
    """Replicas always-on needs: peak concurrent requests (no queueing) / slots."""
    events = sorted(
        [(r.arrival, 1) for r in requests] + [(r.arrival + r.duration, -1) for r in requests]
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return max(1, math.ceil(peak / slots))


@dataclass
class Settings:
    cold: ColdStartModel = field(default_factory=ColdStartModel)
    slots: int = 4
    max_replicas: int = 16
    scale_to_zero_after: int = 30
    scale_down_delay: int = 300
    interval: float = 10.0
    default_duration_ms: float = 500.0

    def warmpool_spec(
        self, cold_start_cost: float = DEFAULT_COLD_START_COST_SECONDS
    ) -> ScalingSpec:
        return ScalingSpec(
            warm_floor=0,
            max_replicas=self.max_replicas,
            scale_to_zero_after_seconds=self.scale_to_zero_after,
            scale_down_delay_seconds=self.scale_down_delay,
            target=TrafficTarget(type="Concurrency", value=self.slots),
            predictive=PredictiveSpec(enabled=True, cold_start_cost_seconds=cold_start_cost),
        )


Factory = Callable[[], Autoscaler]


def default_scalers(settings: Settings, requests: Sequence[Request]) -> dict[str, Factory]:
    """Every policy with its default settings (the first seven are the output line's), plus
    the model variants reported beside them."""
    c, t, m = settings.cold.total, float(settings.slots), settings.max_replicas
    peak = min(peak_replicas(requests, settings.slots), m)
    return {
        "warmpool": lambda: Warmpool(settings.warmpool_spec(), c, settings.interval),
        "knative": lambda: Knative(t, m),
        "keda": lambda: Keda(t, m),
        "hpa": lambda: Hpa(t, m),
        "keepalive": lambda: KeepAlive(t, m),
        "alwayson": lambda: AlwaysOn(peak),
        "oracle": lambda: Oracle(requests, settings.slots, c),
        "knative tbc=0": lambda: Knative(t, m, activator_in_path=False),
        "knative util=100%": lambda: Knative(t, m, utilization=1.0),
        "keda http": lambda: Keda(t, m, interceptor=True),
    }


def knob_sweeps(settings: Settings) -> dict[str, list[tuple[str, Factory]]]:
    """Each policy's own knob, swept (the Pareto curves)."""
    t, m = float(settings.slots), settings.max_replicas
    return {
        "warmpool": [(f"λ={lam:g}", _warmpool_factory(settings, lam)) for lam in LAMBDAS],
        "knative": [
            (f"window={w:g}s", _factory(Knative, t, m, stable_window=w))
            for w in KNATIVE_STABLE_WINDOWS
        ],
        "keda": [(f"cooldown={cd:g}s", _factory(Keda, t, m, cooldown=cd)) for cd in KEDA_COOLDOWNS],
        "keepalive": [(f"keep={k:g}s", _factory(KeepAlive, t, m, keep=k)) for k in KEEPALIVES],
    }


def _warmpool_factory(settings: Settings, lam: float) -> Factory:
    return lambda: Warmpool(settings.warmpool_spec(lam), settings.cold.total, settings.interval)


def _factory(kind: Callable[..., Autoscaler], *args: object, **kwargs: object) -> Factory:
    return lambda: kind(*args, **kwargs)


@dataclass
class TraceResult:
    name: str
    defaults: list[Outcome]
    curves: dict[str, list[Outcome]]


def run_trace(
    name: str, requests: Sequence[Request], settings: Settings, sweep: bool
) -> TraceResult:
    """Every policy once with defaults, and each knob swept when `sweep`."""
    c = settings.cold.total
    defaults = [
        simulate(requests, factory(), policy, c, settings.slots)
        for policy, factory in default_scalers(settings, requests).items()
    ]
    curves: dict[str, list[Outcome]] = {}
    if sweep:
        for policy, points in knob_sweeps(settings).items():
            curves[policy] = []
            for label, factory in points:
                outcome = simulate(requests, factory(), policy, c, settings.slots)
                outcome.label = label
                curves[policy].append(outcome)
    return TraceResult(name, defaults, curves)


def _run_job(job: tuple[str, list[Request], Settings, bool]) -> TraceResult:
    return run_trace(*job)


def load_trace(path: Path, default_duration_ms: float) -> list[Request]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "timestamp_s" not in reader.fieldnames:
            raise SystemExit(f"{path}: a header with a timestamp_s column is required")
        rows = [
            Request(
                float(row["timestamp_s"]),
                float(row.get("duration_ms") or default_duration_ms) / 1000.0,
            )
            for row in reader
        ]
    rows.sort(key=lambda r: r.arrival)
    if rows and rows[0].arrival < 0:
        raise SystemExit(f"{path}: negative timestamps")
    return rows


def dominated_by(outcomes: Sequence[Outcome], curves: dict[str, list[Outcome]]) -> list[str]:
    """Baseline points (defaults and swept knobs) at least as good as warmpool's default on
    both axes and better on one (the oracle is a bound, not a baseline)."""
    ours = next(o for o in outcomes if o.policy == "warmpool")
    points = [o for o in outcomes if o.policy not in ("warmpool", "oracle")]
    points += [o for policy, curve in curves.items() if policy != "warmpool" for o in curve]
    return [
        f"{o.policy}{' ' + o.label if o.label else ''}"
        for o in points
        if o.cold_hits <= ours.cold_hits
        and o.gpu_seconds <= ours.gpu_seconds
        and (o.cold_hits < ours.cold_hits or o.gpu_seconds < ours.gpu_seconds)
    ]


def format_table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| policy | cold-start hits | % of requests | p50 added s | p99 added s | GPU-seconds"
        " | GPU-hours | peak replicas |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.policy}{' ' + o.label if o.label else ''} | {o.cold_hits} | "
            f"{100 * o.cold_hits / max(o.requests, 1):.2f} | {o.p50_added_s:.2f} | "
            f"{o.p99_added_s:.2f} | {o.gpu_seconds:.0f} | {o.gpu_seconds / 3600:.2f} | "
            f"{o.max_replicas} |"
        )
    return "\n".join(lines)


def summary_line(outcomes: Sequence[Outcome]) -> str:
    by_name = {o.policy: o for o in outcomes}
    return " ".join(
        f"{p}_cold_hits={by_name[p].cold_hits} {p}_gpu_s={by_name[p].gpu_seconds:.0f}"
        for p in POLICIES
    )


@dataclass(frozen=True)
class Verdict:
    dominated: list[str]
    knative_ratio: float  # Knative cold hits / warmpool cold hits
    gpu_vs_knative: float  # warmpool GPU-s / Knative GPU-s
    five_x: str  # met / MISSED / n/a
    near_always_on: bool  # warmpool GPU-s within 10 % of always-on's
    oracle_gap: float  # warmpool GPU-s / oracle GPU-s


def verdict(result: TraceResult) -> Verdict:
    by = {o.policy: o for o in result.defaults}
    ours, kn, on, best = by["warmpool"], by["knative"], by["alwayson"], by["oracle"]
    ratio = kn.cold_hits / ours.cold_hits if ours.cold_hits else INF
    gpu_ratio = ours.gpu_seconds / max(kn.gpu_seconds, 1e-9)
    five = "n/a"
    if result.name.split("@")[0] in PERIODIC_TRACES:
        five = "met" if ratio >= 5 and gpu_ratio <= 1 else "MISSED"
    return Verdict(
        dominated=dominated_by(result.defaults, result.curves),
        knative_ratio=ratio,
        gpu_vs_knative=gpu_ratio,
        five_x=five,
        near_always_on=ours.gpu_seconds >= 0.9 * on.gpu_seconds,
        oracle_gap=ours.gpu_seconds / max(best.gpu_seconds, 1e-9),
    )


def _ratio(value: float) -> str:
    return "inf (warmpool 0)" if value == INF else f"{value:.1f}x"


def verdict_row(result: TraceResult) -> str:
    v = verdict(result)
    by = {o.policy: o for o in result.defaults}
    ours, best = by["warmpool"], by["oracle"]
    return (
        f"| {result.name} | {'no' if not v.dominated else 'YES: ' + ', '.join(v.dominated)} | "
        f"{ours.cold_hits} / {ours.gpu_seconds:.0f} | {by['knative'].cold_hits} / "
        f"{by['knative'].gpu_seconds:.0f} | {_ratio(v.knative_ratio)} | {v.gpu_vs_knative:.2f} | "
        f"{v.five_x} | {'YES' if v.near_always_on else 'no'} | {best.cold_hits} / "
        f"{best.gpu_seconds:.0f} | {v.oracle_gap:.2f} |"
    )


VERDICT_HEADER = [
    "| trace | warmpool dominated? | warmpool hits / GPU-s | Knative hits / GPU-s"
    " | Knative/warmpool hits | warmpool/Knative GPU-s | 5x target | within 10 % of always-on?"
    " | oracle hits / GPU-s | warmpool/oracle GPU-s |",
    "|---|---|---:|---:|---:|---:|---|---|---:|---:|",
]


STYLES = {
    "warmpool": ("o", "tab:green"),
    "knative": ("s", "tab:blue"),
    "keda": ("^", "tab:orange"),
    "keepalive": ("D", "tab:red"),
    "hpa": ("v", "tab:purple"),
    "alwayson": ("P", "tab:gray"),
    "oracle": ("*", "black"),
}


def plot(results: Sequence[TraceResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.ticker import FuncFormatter, LogLocator

    columns = 4
    rows = math.ceil(len(results) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 4.2 * rows), squeeze=False)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    handles: dict[str, Artist] = {}
    for ax, result in zip(axes.flat, results, strict=False):
        for policy, curve in result.curves.items():
            marker, color = STYLES[policy]
            (line,) = ax.plot(
                [o.gpu_seconds / 3600 for o in curve],
                [o.cold_hits for o in curve],
                "-" + marker,
                color=color,
                markersize=3.5,
                alpha=0.8,
                zorder=3 if policy == "warmpool" else 2,
            )
            knob = {
                "warmpool": "λ",
                "knative": "stable window",
                "keda": "cooldown",
                "keepalive": "keep",
            }
            handles[f"{policy} ({knob[policy]} swept)"] = line
        for o in result.defaults:
            if o.policy not in STYLES:
                continue
            marker, color = STYLES[o.policy]
            default = o.policy in ("warmpool", "oracle")
            (point,) = ax.plot(
                o.gpu_seconds / 3600,
                o.cold_hits,
                "*" if o.policy == "warmpool" else marker,
                color="darkgreen" if o.policy == "warmpool" else color,
                markersize=15 if default else 8,
                markeredgecolor="black",
                zorder=4,
                linestyle="none",
            )
            handles[f"{o.policy} default"] = point
        everything = result.defaults + [o for c in result.curves.values() for o in c]
        top = max([o.cold_hits for o in everything] + [1])
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(-0.3, top * 3)
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        ax.yaxis.set_major_formatter(plain)
        ax.set_title(f"{result.name} ({result.defaults[0].requests} requests)", fontsize=10)
        ax.set_xlabel("GPU-hours (log)")
        ax.set_ylabel("requests that waited on a cold start")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(results) :]:
        ax.axis("off")
    figure.legend(
        list(handles.values()),
        list(handles),
        loc="lower right",
        bbox_to_anchor=(0.98, 0.04),
        fontsize=9,
        title="lower-left is better",
    )
    figure.suptitle(
        "Cold-start hits vs GPU time (simulated, 30 s cold start): each policy's knob swept,"
        " defaults marked, the oracle is the bound"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


#: Where the targets are missed, and why (read against the tables below; the numbers are
#: in the verdict rows).
GAPS = [
    "**Where the targets are missed, and why.**",
    "",
    "- *Stray and night traffic (daily-strays, office-hours): the 5x target is out of reach"
    " for any policy that does not know the future.* Their misses are mostly single requests"
    " arriving at random (Poisson) hours apart; Knative misses them too, and they alone are"
    " more than a fifth of Knative's cold hits (daily-strays: ~8 strays a day against ~20"
    " burst requests; office-hours: ~15 night requests a weeknight). Holding a replica for"
    " them costs far more than λ per request; the policy releases, as it should, and"
    " pre-warms the predictable bursts. On daily-strays warmpool also spends more GPU time"
    " than Knative: the burst's +-15 min jitter makes the pre-warm window about 35 minutes a"
    " day, which the default λ (300 GPU-s x ~16 held requests) judges worth it; the λ sweep"
    " shows the cheaper points.",
    "- *Multi-replica bursts after silence (bursty, burst-onsets, flash-crowd): dominated by"
    " a long keep-alive, HPA or a short Knative window on some traces and seeds.* The"
    " requests a burst puts at risk (the held count) are many more than one pre-warmed or"
    " held replica can save (the rest wait for the replicas started for the burst), so the"
    " plan holds a replica through memoryless gaps that a fixed long keep-alive holds more"
    " cheaply, and the backlog of each cold start scales the pool to many replicas that the"
    " stabilization window keeps. Capping the weight at one replica's share was tried and"
    " made these traces worse (more cold hits at about the same GPU time); not landed.",
    "- *Diurnal:* the λ curve and the Knative/keep-alive curves touch; at the default λ a"
    " swept baseline point is marginally better on both axes on some seeds (tenths of a"
    " percent of GPU-seconds).",
    "- *Oracle gap:* 1.2-1.6x on traces with a learnable rhythm (diurnal, office-hours,"
    " daily-schedule), 2-3x on periodic ones (the idle detection through a 30 s rate"
    " window and the pre-warm window around the jitter), 5-8x on memoryless bursts, where"
    " nothing can be learned that the oracle knows, and on the drifting period, whose"
    " history always lags the drift.",
]


MODEL_CHOICES = [
    "- **warmpool** sees what the operator sees: `decide()` every 10 s on the answer to the"
    " operator's range query (`warmpool.scaling.prometheus`: default Concurrency query,"
    " `rate(nv_inference_request_duration_us[30s])/1e6` + pending + the activator's held"
    " requests, step 10 s, lookback 120 s, as `controller/scaler.py` builds the reader) from a"
    " simulated Prometheus (`benchmarks/promsim.py`): one counter per replica that moves when a"
    " request completes (Triton's request-duration counter), gauges for Triton's pending count"
    " and the activator's held count (operator/warmpool/activator/hold.py), 5 s scrapes"
    " (docs/scaling.md's scrape config) visible 1 s later, `rate()` with Prometheus's"
    " `extrapolatedRate` (prometheus/prometheus promql/functions.go), parsed by the operator's"
    " own `parse_range_result`. The activator's wake reaches the operator 1 s after the first"
    " held request (merge patch, watch, handler: operator/warmpool/activator/wake.py). Default"
    " settings: warmFloor 0, scaleToZeroAfterSeconds 30, scaleDownDelaySeconds 300,"
    f" predictive.coldStartCostSeconds (λ) {DEFAULT_COLD_START_COST_SECONDS:g}.",
    "- **Knative KPA** (knative/serving): pkg/autoscaler/scaling/autoscaler.go `Scale` (stable"
    " 60 s and panic 6 s windows, desired = ceil(observed / target), bounded by"
    " floor(ready / max-scale-down-rate 2) and ceil(1000 x ready), panic at 200 % of ready"
    " pods holding the highest panic count until a stable window passes);"
    " pkg/reconciler/autoscaling/kpa/scaler.go `handleScaleToZero` (desired 0: one pod until"
    " Active for a stable window, then Inactive, re-enqueued 3 s later, then zero when Inactive"
    " for scale-to-zero-grace-period 30 s OR the activator has been in the path that long);"
    " config/core/configmaps/autoscaler.yaml defaults: container-concurrency-target-percentage"
    " 70 (target 4 x 0.7 = 2.8 per pod), target-burst-capacity 211 (with containerConcurrency 4"
    " the activator stays in the path below 53 pods, so zero comes ~60 s after the last"
    " request, not 90 s). Variants reported: `knative tbc=0` (activator out of the path: the"
    " grace runs from going Inactive, ~90 s), `knative util=100%`. The metric is the exact"
    " in-system concurrency (queue-proxy/activator stats every second). Knob swept: the stable"
    " window (6 s .. 1 h; panic window 10 % of it).",
    "- **KEDA** (kedacore/keda): pkg/scaling/executor/scale_scaledobjects.go `scaleToZeroOrIdle`"
    " (zero once LastActiveTime + cooldownPeriod 300 s passed, checked each pollingInterval"
    " 30 s), an HPA above one replica. `keda` = Prometheus scaler: polls the same simulated"
    " Prometheus every 30 s; requests at zero wait for the poll that sees them held."
    " `keda http` = HTTP add-on (kedacore/http-add-on scaler/config.go: activity streamed every"
    " 200 ms from interceptor queue counts polled every 500 ms; wake ~0.7 s + 1 s; metric = the"
    " interceptor's in-flight count). Knob swept: cooldownPeriod.",
    "- **HPA**: 15 s sync, 10 % tolerance, scale-up max(100 %, 4 pods) per period, 300 s"
    " scale-down stabilization, minReplicas 1 (kubernetes/kubernetes defaults).",
    "- **keepalive**: one replica for 600 s after the last request (the fixed keep-alive of"
    " Shahrad et al., USENIX ATC'20); knob swept: the keep-alive length.",
    "- **alwayson**: fixed replicas for the trace's peak concurrency.",
    "- **oracle**: knows the whole trace; holds exactly the replicas the next cold start + 4 s"
    " need, so every replica is requested one cold start before its traffic and kept through"
    " pauses shorter than a cold start. A cold start costs the same C GPU-seconds as the"
    " pre-warm that avoids it, so the oracle avoids every one for every λ >= 0: it is one point"
    " (normally 0 cold hits), the least GPU time with no cold start.",
]


def write_report(
    results: Sequence[TraceResult],
    settings: Settings,
    path: Path,
    plot_name: str,
    seconds: float,
    sensitivity: Sequence[TraceResult] = (),
) -> None:
    cold = settings.cold
    out = [
        "# Autoscaling benchmark: cold-start hits vs GPU time",
        "",
        "Generated by `python benchmarks/autoscale.py --all --seeds 11,12,13` (simulation, not a"
        " measurement on GPUs); traces from `benchmarks/traces/generate.py` (seeded). Every"
        " policy sees the same trace, cold-start and service-time model and target of"
        f" {settings.slots} concurrent requests per replica. Cold start {cold.total:g} s"
        f" (prefetch {cold.prefetch_s:g} + load {cold.load_s:g} + warm-up {cold.warmup_s:g});"
        " GPU-seconds count every replica from its request to its stop, over the trace plus one"
        " hour; a cold-start hit is a request served by a replica that was not warm at its"
        " arrival.",
        "",
        "## Verdict (default settings of every policy)",
        "",
        "Targets: no baseline point (defaults or any swept knob) better on both axes; on traces"
        " with a fixed period or a daily schedule (" + ", ".join(PERIODIC_TRACES) + ") >= 5x"
        " fewer cold-start hits than Knative at <= its GPU-seconds; never within 10 % of"
        " always-on's GPU-seconds unless the oracle is; the oracle gap (warmpool GPU-s / oracle"
        " GPU-s; the oracle has no cold start, so this is the price of not knowing the future"
        " at warmpool's cold-hit count).",
        "",
        *VERDICT_HEADER,
        *[verdict_row(r) for r in results],
        "",
        *GAPS,
        "",
        f"![Pareto plot]({plot_name})",
        "",
    ]
    if sensitivity:
        out += [
            "## Other seeds (same generators, default settings, no sweeps)",
            "",
            *VERDICT_HEADER,
            *[verdict_row(r) for r in sensitivity],
            "",
        ]
    out += [
        "## Model choices and their sources",
        "",
        *MODEL_CHOICES,
        "",
        "Limits: requests are bound to a replica slot at arrival (a replica that turns warm later"
        " does not take over a queue); node provisioning is 0 s (`--cold-start-s` models it);"
        " one Prometheus counter per replica lifetime; the time-of-day and weekday patterns are"
        " read in UTC; no public request trace could be had from a package registry (the Azure"
        " Functions trace is a download, not a package), so all traces are generated.",
        "",
        f"Wall time of this run: {seconds:.0f} s on the shared 2-core machine.",
        "",
    ]
    for result in results:
        out += [f"## {result.name} ({result.defaults[0].requests} requests)", ""]
        out += [format_table(result.defaults), ""]
        for policy, curve in result.curves.items():
            out += [f"{policy}, knob swept:", "", format_table(curve), ""]
        out += [f"Last line: `{summary_line(result.defaults)}`", ""]
    path.write_text("\n".join(out) + "\n")


def generated(seed: int | None = None) -> dict[str, list[Request]]:
    """Every generated trace (default seeds, or `seed` for all; named `trace@seed`)."""
    out: dict[str, list[Request]] = {}
    for name, generator in GENERATORS.items():
        rows = generator() if seed is None else generator(seed=seed)
        key = name if seed is None else f"{name}@{seed}"
        out[key] = [Request(t, d / 1000.0) for t, d in sorted(rows)]
    return out


def run_many(
    traces: dict[str, list[Request]], settings: Settings, sweep: bool, jobs: int
) -> list[TraceResult]:
    work = [(name, requests, settings, sweep) for name, requests in traces.items()]
    # Longest first so the two workers finish together.
    work.sort(key=lambda job: -len(job[1]) * (job[1][-1].arrival if job[1] else 0) ** 0.5)
    if jobs <= 1:
        done = [_run_job(job) for job in work]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(_run_job, work))
    order = list(traces)
    return sorted(done, key=lambda r: order.index(r.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Replay traces through warmpool and baselines.")
    parser.add_argument("--trace", type=Path, action="append", help="trace CSV (repeatable)")
    parser.add_argument("--all", action="store_true", help="every generated trace, write results")
    parser.add_argument("--sweep", action="store_true", help="also sweep every policy's knob")
    parser.add_argument("--cached", action="store_true", help="node cache: no prefetch time")
    parser.add_argument("--cold-start-s", type=float, help="override the total cold start")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument(
        "--seeds",
        default="",
        help="with --all: also replay every trace generated with these seeds (e.g. 11,12,13),"
        " defaults only, in a table of their own",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.cached:
        settings.cold = ColdStartModel(prefetch_s=0.0)
    if args.cold_start_s is not None:
        settings.cold = ColdStartModel(prefetch_s=0, load_s=args.cold_start_s, warmup_s=0)
    traces: dict[str, list[Request]] = {}
    for path in args.trace or []:
        traces[path.stem] = load_trace(path, settings.default_duration_ms)
    if args.all:
        traces.update(generated())
    if not traces:
        parser.error("give --trace FILE or --all")
    began = time.perf_counter()
    results = run_many(traces, settings, args.sweep or args.all, args.jobs)
    for result in results:
        print(f"\n{result.name}: {result.defaults[0].requests} requests")
        print(format_table(result.defaults))
        for curve in result.curves.values():
            print(format_table(curve))
        v = verdict(result)
        print(
            f"dominated by: {', '.join(v.dominated) or 'none'}; Knative/warmpool hits "
            f"{_ratio(v.knative_ratio)}, warmpool/Knative GPU-s {v.gpu_vs_knative:.2f}, "
            f"5x target {v.five_x}, warmpool/oracle GPU-s {v.oracle_gap:.2f}"
        )
    sensitivity: list[TraceResult] = []
    if args.all and args.seeds:
        extra: dict[str, list[Request]] = {}
        for seed in (int(part) for part in args.seeds.split(",") if part.strip()):
            extra.update(generated(seed))
        sensitivity = run_many(extra, settings, False, args.jobs)
        for result in sensitivity:
            print(verdict_row(result), flush=True)
    seconds = time.perf_counter() - began
    if args.all:
        args.results.mkdir(parents=True, exist_ok=True)
        plot(results, args.results / "autoscale.png")
        write_report(
            results, settings, args.results / "autoscale.md", "autoscale.png", seconds, sensitivity
        )
        print(f"\nwrote {args.results / 'autoscale.md'} and autoscale.png ({seconds:.1f} s)")
    print(summary_line(results[-1].defaults))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
