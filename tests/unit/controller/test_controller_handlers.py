"""The handler table: every id the operator relies on is registered, once, into an explicit
registry (kopf's own bookkeeping, no cluster), and the activator's handlers only with one."""

from __future__ import annotations

import kopf

from warmpool.controller.handlers import register
from warmpool.controller.settings import ActivatorRef, OperatorSettings


def handler_ids(registry: kopf.OperatorRegistry) -> list[str]:
    ids: list[str] = []
    for part in (
        registry._activities,
        registry._indexing,
        registry._watching,
        registry._changing,
    ):
        ids.extend(str(handler.id) for handler in part.get_all_handlers())
    return sorted(ids)


def test_one_table_registers_every_handler_once() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings())
    ids = handler_ids(registry)
    assert ids == sorted(
        [
            "startup",
            "cleanup",
            "login",
            "refresh_loop",
            "pool-primer",
            "pod-primer",
            "deployment-primer",
            "prepull-pod-primer",
            "pool-cache",
            "pod-cache",
            "deployment-cache",
            "prepull-pod",
            "create",
            "update/spec",
            "resume",
            # kopf keeps the changing handlers' progress under these ids (status.kopf): an id
            # that changed would make kopf run the handler again on an upgrade.
            "wake/metadata.annotations.warmpool.dev/wake-requested-at",
        ]
    )
    # One event handler for the pool kind: the cache and both reconcilers hang off it.
    pool_events = [
        handler
        for handler in registry._watching.get_all_handlers()
        if "inferencepools" in str(handler.selector)
    ]
    assert [handler.id for handler in pool_events] == ["pool-cache"]


def test_the_activators_slices_are_watched_only_with_an_activator() -> None:
    registry = kopf.OperatorRegistry()
    register(registry, OperatorSettings(activator=ActivatorRef("warmpool-system", "activator")))
    ids = handler_ids(registry)
    assert {"activator-primer", "activator-cache"} <= set(ids)
    assert len(ids) == len(set(ids)) == 18
