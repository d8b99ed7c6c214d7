"""Reads a pool's demand from Prometheus (`prometheus-api-client`), safely from asyncio.

The client is synchronous (requests): every query runs in a worker thread with a bounded
timeout, so a slow or dead Prometheus never blocks the operator's event loop. Failures of any
kind (connection refused, timeout, HTTP error, a malformed answer) come back as a typed
`MetricsUnavailable`, never as an exception: the policy then holds replicas and the operator
sets MetricsAvailable=False.

The default query (per target type) reads Triton's metrics of the pool's pods plus the
activator's held requests. It needs the labels `namespace` and `pool` on the scraped series;
docs/scaling.md gives the scrape config (relabel the pod label `warmpool.dev/pool` to `pool`).
A pool may override the query (`spec.scaling.metrics.query`); `{namespace}`, `{pool}` and
`{window}` are substituted (plain token replacement: PromQL's own braces are left alone).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from warmpool.scaling.policy import Sample

TargetType = Literal["Concurrency", "RequestsPerSecond"]

_SELECTOR = 'namespace="{namespace}",pool="{pool}"'
_HELD = f"(sum(warmpool_activator_held_requests{{{_SELECTOR}}}) or vector(0))"

#: Default demand queries. Concurrency: mean requests in Triton (queued + executing, from the
#: cumulative request duration), plus requests queued right now, plus requests the activator
#: holds. RequestsPerSecond: successful request rate plus held requests (each counts as one).
#: Absent series are zero: a pool at zero has no Triton pods, which is the normal idle state;
#: only a failed query is "unknown".
DEFAULT_QUERIES: dict[str, str] = {
    "Concurrency": (
        f"(sum(rate(nv_inference_request_duration_us{{{_SELECTOR}}}[{{window}}])) / 1e6"
        " or vector(0))"
        f" + (sum(nv_inference_pending_request_count{{{_SELECTOR}}}) or vector(0))"
        f" + {_HELD}"
    ),
    "RequestsPerSecond": (
        f"(sum(rate(nv_inference_request_success{{{_SELECTOR}}}[{{window}}])) or vector(0))"
        f" + {_HELD}"
    ),
}


@dataclass(frozen=True)
class DemandWindow:
    """Demand samples over the lookback window (empty when the query matched nothing)."""

    samples: list[Sample]
    query: str


@dataclass(frozen=True)
class MetricsUnavailable:
    """The demand could not be read; `reason` says why (for the pool's condition message)."""

    reason: str
    query: str


ReadResult = DemandWindow | MetricsUnavailable


class TrafficReader(Protocol):
    """What `warmpool.scaling.service.evaluate` needs from a metrics source."""

    async def read(
        self,
        namespace: str,
        pool: str,
        *,
        now: datetime,
        target_type: TargetType = "Concurrency",
        query: str | None = None,
        url: str | None = None,
    ) -> ReadResult: ...


class RangeClient(Protocol):
    """The slice of `prometheus_api_client.PrometheusConnect` the reader uses."""

    def custom_query_range(
        self, query: str, start_time: datetime, end_time: datetime, step: str
    ) -> Any: ...


def render_query(template: str, namespace: str, pool: str, window: str) -> str:
    """Substitute `{namespace}`, `{pool}` and `{window}` (values escaped for PromQL strings)."""
    return (
        template.replace("{namespace}", _escape(namespace))
        .replace("{pool}", _escape(pool))
        .replace("{window}", window)
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_range_result(result: Any) -> list[Sample]:
    """Sum the series of a range-query answer per timestamp; NaN/unparsable -> unknown."""
    if not isinstance(result, list):
        raise ValueError(f"unexpected Prometheus answer: {type(result).__name__}")
    by_time: dict[float, float | None] = {}
    for series in result:
        values = series.get("values", []) if isinstance(series, dict) else []
        for point in values:
            at = float(point[0])
            try:
                value: float | None = float(point[1])
            except (TypeError, ValueError):
                value = None
            if value is not None and not math.isfinite(value):
                value = None
            previous = by_time.get(at, 0.0)
            by_time[at] = None if previous is None or value is None else previous + value
    return [Sample(at, by_time[at]) for at in sorted(by_time)]


def _default_client(url: str, timeout_seconds: float) -> RangeClient:
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    # No retries inside a read: the next evaluation is the retry, and retries with backoff
    # would outlive the bounded timeout in a worker thread nobody waits for.
    client: RangeClient = PrometheusConnect(
        url=url,
        disable_ssl=False,
        timeout=max(1, math.ceil(timeout_seconds)),
        retry=Retry(total=0, raise_on_status=False),
    )
    return client


class PrometheusReader:
    """Range queries of a pool's demand, one client per Prometheus URL."""

    def __init__(
        self,
        url: str | None,
        *,
        default_query: str | None = None,
        window: str = "30s",
        lookback_seconds: float = 120.0,
        step_seconds: float = 10.0,
        timeout_seconds: float = 5.0,
        client_factory: Callable[[str, float], RangeClient] = _default_client,
    ) -> None:
        self.url = url
        self.default_query = default_query
        self.window = window
        self.lookback_seconds = lookback_seconds
        self.step_seconds = step_seconds
        self.timeout_seconds = timeout_seconds
        self._client_factory = client_factory
        self._clients: dict[str, RangeClient] = {}

    def query_for(
        self, namespace: str, pool: str, target_type: TargetType, query: str | None
    ) -> str:
        """The PromQL this reader runs for a pool (override > operator default > built-in)."""
        template = query or self.default_query or DEFAULT_QUERIES[target_type]
        return render_query(template, namespace, pool, self.window)

    async def read(
        self,
        namespace: str,
        pool: str,
        *,
        now: datetime,
        target_type: TargetType = "Concurrency",
        query: str | None = None,
        url: str | None = None,
    ) -> ReadResult:
        """Demand samples over [now - lookback, now]; never raises."""
        promql = self.query_for(namespace, pool, target_type, query)
        base = url or self.url
        if not base:
            return MetricsUnavailable("no Prometheus URL configured", promql)
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._read_sync, base, promql, now),
                timeout=self.timeout_seconds + 1.0,
            )
        except TimeoutError:
            return MetricsUnavailable(
                f"query to {base} timed out after {self.timeout_seconds:g}s", promql
            )
        except Exception as error:  # the loop must survive anything the client throws
            return MetricsUnavailable(f"query to {base} failed: {_describe(error)}", promql)

    def _read_sync(self, base: str, promql: str, now: datetime) -> ReadResult:
        client = self._clients.get(base)
        if client is None:
            client = self._clients[base] = self._client_factory(base, self.timeout_seconds)
        result = client.custom_query_range(
            promql,
            start_time=now - timedelta(seconds=self.lookback_seconds),
            end_time=now,
            step=f"{self.step_seconds:g}s",
        )
        return DemandWindow(parse_range_result(result), promql)


def _describe(error: BaseException) -> str:
    """The innermost cause, short: `requests` wraps urllib3's errors two levels deep."""
    seen: set[int] = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = getattr(error, "reason", None)
        if isinstance(inner, BaseException):
            error = inner
            continue
        if error.args and isinstance(error.args[0], BaseException):
            error = error.args[0]
            continue
        break
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
