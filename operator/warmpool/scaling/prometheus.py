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
from typing import Any, Protocol

from warmpool.api.spec import TargetType
from warmpool.scaling.policy import Sample

__all__ = ["DEFAULT_QUERIES", "LLM_SIGNAL_SOURCES", "PrometheusReader", "TargetType"]

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


def _first_of(*expressions: str) -> str:
    """The first expression that has a value (PromQL ``or`` of label-less aggregates): a pool
    runs one backend, so only that backend's series exist."""
    return "(" + " or ".join(f"({e})" for e in expressions) + ")"


def _mean_of_histogram(name: str, scale: str = "") -> str:
    """Mean of a histogram over the window; absent (not NaN) when nothing was observed."""
    mean = (
        f"sum(rate({name}_sum{{{_SELECTOR}}}[{{window}}]))"
        f" / sum(rate({name}_count{{{_SELECTOR}}}[{{window}}])){scale}"
    )
    return f"({mean}) > 0"


#: A held request, for signals that are not counts of requests: a token demand (a thousandth of
#: one unit) that asks for one replica and keeps the pool from looking idle, nothing more.
_WOKEN = (
    f"(clamp_max(sum(warmpool_activator_held_requests{{{_SELECTOR}}}), 1) * 0.001 or vector(0))"
)
#: Replicas exporting Triton metrics now (one `pod` label each).
_REPLICAS = f"count(count by (pod) (nv_inference_count{{{_SELECTOR}}}))"

#: Where each LLM signal comes from, per backend (metric names as exported under Triton):
#: vllm = the vLLM backend (triton-inference-server/vllm_backend, src/utils/metrics.py);
#: tensorrtllm = the TensorRT-LLM backend's `nv_trt_llm_*` families; triton = Triton core.
LLM_SIGNAL_SOURCES: dict[str, dict[str, str]] = {
    "QueueDepth": {
        "vllm": "vllm:num_requests_waiting",
        "tensorrtllm": 'nv_trt_llm_request_metrics{request_type="waiting"}',
        "triton": "nv_inference_pending_request_count",
    },
    "KVCacheUtilization": {
        "vllm": "vllm:gpu_cache_usage_perc (vllm:kv_cache_usage_perc in vLLM V1)",
        "tensorrtllm": 'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}',
    },
    "TokensPerSecond": {
        "vllm": "rate(vllm:generation_tokens_total)",
    },
    "TimeToFirstToken": {
        "vllm": "vllm:time_to_first_token_seconds (histogram: _sum / _count)",
        "triton": "nv_inference_first_response_histogram_ms (--metrics-config "
        "histogram_latencies=true; the first response of a decoupled model)",
    },
}

#: LLM signals. Each query gives the pool's demand in the target's unit, so that
#: `ceil(demand / target)` replicas are wanted, as for the two request signals above:
#: QueueDepth: requests waiting for the engine, plus requests the activator holds;
#: KVCacheUtilization: the sum over replicas of each one's KV-cache use (fraction);
#: TokensPerSecond: generated tokens per second over the window;
#: TimeToFirstToken: the mean TTFT over the window times the replicas serving, so that
#: `ceil(demand / target) = ceil(replicas * ttft / target)`: the HPA's rule for a value metric.
DEFAULT_QUERIES.update(
    {
        "QueueDepth": _first_of(
            f"sum(vllm:num_requests_waiting{{{_SELECTOR}}})",
            f'sum(nv_trt_llm_request_metrics{{{_SELECTOR},request_type="waiting"}})',
            f"sum(nv_inference_pending_request_count{{{_SELECTOR}}})",
            "vector(0)",
        )
        + f" + {_HELD}",
        "KVCacheUtilization": _first_of(
            f"sum(vllm:gpu_cache_usage_perc{{{_SELECTOR}}})",
            f"sum(vllm:kv_cache_usage_perc{{{_SELECTOR}}})",
            f'sum(nv_trt_llm_kv_cache_block_metrics{{{_SELECTOR},kv_cache_block_type="fraction"}})',
            "vector(0)",
        )
        + f" + {_WOKEN}",
        "TokensPerSecond": _first_of(
            f"sum(rate(vllm:generation_tokens_total{{{_SELECTOR}}}[{{window}}]))",
            "vector(0)",
        )
        + f" + {_WOKEN}",
        "TimeToFirstToken": "("
        + _first_of(
            _mean_of_histogram("vllm:time_to_first_token_seconds"),
            _mean_of_histogram("nv_inference_first_response_histogram_ms", " / 1000"),
        )
        + f" * on() {_REPLICAS} or vector(0)) + {_WOKEN}",
    }
)


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
