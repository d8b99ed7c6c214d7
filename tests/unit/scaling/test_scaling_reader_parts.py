"""Pure parts of the Prometheus reader: query templates and answer parsing."""

from __future__ import annotations

import pytest

from warmpool.scaling.prometheus import (
    DEFAULT_QUERIES,
    MetricsUnavailable,
    PrometheusReader,
    parse_range_result,
    render_query,
)


def test_default_queries_select_the_pool_and_include_held_requests() -> None:
    for target, template in DEFAULT_QUERIES.items():
        query = render_query(template, "ml", "llama", "30s")
        assert 'namespace="ml",pool="llama"' in query, target
        assert "warmpool_activator_held_requests" in query
        assert "{" + "pool}" not in query
        # Gauges (queue depth, KV-cache use) are read as they are; the rest over the window.
        assert ("[30s]" in query) == (target not in {"QueueDepth", "KVCacheUtilization"})
    assert "nv_inference_request_duration_us" in DEFAULT_QUERIES["Concurrency"]
    assert "nv_inference_request_success" in DEFAULT_QUERIES["RequestsPerSecond"]


def test_placeholders_are_escaped_and_promql_braces_kept() -> None:
    query = render_query('up{pool="{pool}"}[{window}]', "ns", 'a"b', "1m")
    assert query == 'up{pool="a\\"b"}[1m]'


def test_reader_prefers_pool_override_then_operator_default() -> None:
    reader = PrometheusReader("http://127.0.0.1:1", default_query='x{p="{pool}"}')
    assert reader.query_for("ns", "p1", "Concurrency", None) == 'x{p="p1"}'
    assert reader.query_for("ns", "p1", "Concurrency", 'y{n="{namespace}"}') == 'y{n="ns"}'


def test_parse_sums_series_per_timestamp_and_marks_nan_unknown() -> None:
    result = [
        {"metric": {"pod": "a"}, "values": [[100, "1.5"], [110, "2"], [120, "NaN"]]},
        {"metric": {"pod": "b"}, "values": [[100, "0.5"], [110, "1"]]},
    ]
    samples = parse_range_result(result)
    assert [(s.at, s.value) for s in samples] == [(100.0, 2.0), (110.0, 3.0), (120.0, None)]
    assert parse_range_result([]) == []
    with pytest.raises(ValueError):
        parse_range_result({"not": "a list"})


async def test_no_url_is_unavailable_not_an_error() -> None:
    from datetime import UTC, datetime

    result = await PrometheusReader(None).read("ml", "llama", now=datetime.now(UTC))
    assert isinstance(result, MetricsUnavailable) and "no Prometheus URL" in result.reason


async def test_refused_connection_is_unavailable() -> None:
    from datetime import UTC, datetime

    from support.prometheus import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = await PrometheusReader(url, timeout_seconds=2).read("ml", "p", now=datetime.now(UTC))
    assert isinstance(result, MetricsUnavailable) and "failed" in result.reason
