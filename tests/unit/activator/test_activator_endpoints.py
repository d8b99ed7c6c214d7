"""EndpointSlice parsing, the endpoint table and the endpoint picker."""

from __future__ import annotations

from typing import Any

from warmpool.activator.endpoints import (
    Endpoint,
    EndpointTable,
    LeastOutstandingPicker,
    parse_endpoint_slice,
)
from warmpool.activator.routing import PoolKey

POOL = PoolKey("ml", "llama")


def pods_slice(name: str, endpoints: list[dict[str, Any]], pool: str = "llama") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {
                "warmpool.dev/pool": pool,
                "warmpool.dev/service-role": "pods",
                "kubernetes.io/service-name": f"{pool}-pods",
            },
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8000, "protocol": "TCP"},
            {"name": "grpc", "port": 8001, "protocol": "TCP"},
            {"name": "metrics", "port": 8002, "protocol": "TCP"},
        ],
        "endpoints": endpoints,
    }


def test_only_ready_endpoints_are_kept() -> None:
    state = parse_endpoint_slice(
        pods_slice(
            "llama-pods-abc",
            [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False, "terminating": True}},
                {"addresses": ["10.0.0.1"], "conditions": {}},  # unset means ready (API)
            ],
        )
    )
    assert state is not None
    assert state.pool == POOL
    assert state.endpoints == (Endpoint("10.0.0.1", 8000, 8001), Endpoint("10.0.0.2", 8000, 8001))


def test_slices_without_the_pod_role_are_ignored() -> None:
    obj = pods_slice("llama-activator", [{"addresses": ["10.0.0.9"]}])
    obj["metadata"]["labels"] = {"kubernetes.io/service-name": "llama"}
    assert parse_endpoint_slice(obj) is None


def test_empty_slice_makes_the_pool_known_at_zero() -> None:
    table = EndpointTable()
    state = parse_endpoint_slice(pods_slice("llama-pods-abc", []))
    assert state is not None
    table.upsert(state)
    assert list(table.pools()) == [POOL]
    assert table.endpoints(POOL) == ()


def test_table_merges_slices_and_notifies() -> None:
    table = EndpointTable()
    seen: list[tuple[PoolKey, int]] = []
    table.add_listener(lambda pool, eps: seen.append((pool, len(eps))))
    for name, ip in (("a", "10.0.0.1"), ("b", "10.0.0.2")):
        state = parse_endpoint_slice(pods_slice(name, [{"addresses": [ip]}]))
        assert state is not None
        table.upsert(state)
    assert len(table.endpoints(POOL)) == 2
    table.delete(POOL, "a")
    assert table.endpoints(POOL) == (Endpoint("10.0.0.2", 8000, 8001),)
    table.delete(POOL, "b")
    assert list(table.pools()) == []
    assert seen == [(POOL, 1), (POOL, 2), (POOL, 1), (POOL, 0)]


def test_replace_all_notifies_only_changed_pools() -> None:
    table = EndpointTable()
    other = PoolKey("ml", "bert")
    table.set_pool(POOL, [Endpoint("10.0.0.1", 8000, 8001)])
    table.set_pool(other, [])
    seen: list[PoolKey] = []
    table.add_listener(lambda pool, _eps: seen.append(pool))
    a = parse_endpoint_slice(pods_slice("", [{"addresses": ["10.0.0.1"]}]))
    b = parse_endpoint_slice(pods_slice("", [{"addresses": ["10.0.0.5"]}], pool="bert"))
    assert a is not None and b is not None
    table.replace_all([a, b])
    assert seen == [other]


def test_picker_prefers_least_outstanding_then_rotates() -> None:
    picker = LeastOutstandingPicker()
    a, b, c = (Endpoint(f"10.0.0.{i}", 8000, 8001) for i in (1, 2, 3))
    first = picker.pick((a, b))
    assert first is not None
    picker.started(first)
    second = picker.pick((a, b))
    assert second is not None and second != first
    picker.started(second)
    picker.started(a)
    # a has 2 outstanding, b 1, c 0: c first.
    assert picker.pick((a, b, c)) == c
    picker.finished(a)
    picker.finished(a)
    assert picker.pick(()) is None
