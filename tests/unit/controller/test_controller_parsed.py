"""A pool's body is validated and parsed once per (uid, resourceVersion), and again whenever
either changes."""

from __future__ import annotations

import copy
from typing import Any

from controller_builders import make_pool

from warmpool.api.resource import InferencePool
from warmpool.contract import PoolKey
from warmpool.controller.pool.parsed import ParsedPools, parse_pool
from warmpool.controller.pool.status import parse_status
from warmpool.controller.pool.validate import Invalid, validate_pool

KEY = PoolKey("ml", "llama")


def versioned(version: str, **spec: Any) -> dict[str, Any]:
    body = make_pool(**spec)
    body["metadata"]["resourceVersion"] = version
    return body


def test_the_same_version_is_parsed_once() -> None:
    parsed = ParsedPools()
    first = parsed.parse(KEY, versioned("10"))
    assert parsed.parse(KEY, versioned("10")) is first
    assert isinstance(first.checked, InferencePool)


def test_a_new_resource_version_is_parsed_again() -> None:
    parsed = ParsedPools()
    before = parsed.parse(KEY, versioned("10", scaling={"warmFloor": 1, "maxReplicas": 4}))
    after = parsed.parse(KEY, versioned("11", scaling={"warmFloor": 2, "maxReplicas": 4}))
    assert isinstance(before.checked, InferencePool) and isinstance(after.checked, InferencePool)
    assert after.checked.spec.scaling.warm_floor == 2
    assert after.render_inputs != before.render_inputs


def test_a_status_write_is_seen_in_the_parsed_status() -> None:
    parsed = ParsedPools()
    body = versioned("10")
    assert parsed.parse(KEY, body).status.desired_replicas == 0
    written = copy.deepcopy(body)
    written["metadata"]["resourceVersion"] = "11"
    written["status"] = {"desiredReplicas": 3, "cachedNodes": 2}
    again = parsed.parse(KEY, written)
    assert again.status.desired_replicas == 3
    assert again.status.cached_nodes == 2
    assert again.public_status.cached_nodes == 0  # another writer's field: not compared
    # status is no render input
    assert again.render_inputs == parsed.parse(KEY, versioned("12")).render_inputs


def test_a_pool_recreated_under_its_name_is_parsed_again() -> None:
    """Another object (new uid) may come back with a version number seen before."""
    parsed = ParsedPools()
    parsed.parse(KEY, versioned("10"))
    recreated = versioned("10", scaling={"warmFloor": 5, "maxReplicas": 2})  # unservable
    recreated["metadata"]["uid"] = "u-2"
    assert isinstance(parsed.parse(KEY, recreated).checked, Invalid)


def test_bodies_without_a_version_are_never_reused() -> None:
    parsed = ParsedPools()
    body = make_pool()
    first = parsed.parse(KEY, body)
    assert parsed.parse(KEY, body) is not first
    # nor is an earlier version's result kept for it
    parsed.parse(KEY, versioned("10"))
    invalid = make_pool(scaling={"warmFloor": 5, "maxReplicas": 2})
    assert isinstance(parsed.parse(KEY, invalid).checked, Invalid)


def test_forget_drops_the_pool() -> None:
    parsed = ParsedPools()
    first = parsed.parse(KEY, versioned("10"))
    parsed.forget(KEY)
    assert parsed.parse(KEY, versioned("10")) is not first


def test_parse_pool_is_what_the_sync_read_before() -> None:
    """The cached parts equal the functions they stand for."""
    body = versioned("10")
    body["status"] = {"desiredReplicas": 1, "kopf": {"progress": {}}, "cachedNodes": 1}
    parsed = parse_pool(body)
    assert parsed.checked == validate_pool(body)
    assert parsed.status == parse_status(body["status"])
    assert parsed.public_status == parse_status({"desiredReplicas": 1})
