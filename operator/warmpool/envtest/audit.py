"""Reading the apiserver's audit log (JSON lines, one event per request)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def parse_audit_log(text: str) -> list[dict[str, Any]]:
    """The events of an audit log's text; a torn last line (being written) is skipped."""
    events = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def select_writes(
    events: Iterable[dict[str, Any]],
    *,
    resource: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    user: str | None = None,
) -> list[dict[str, Any]]:
    """The events of write verbs, filtered by resource / namespace / name / username."""
    wanted = {"resource": resource, "namespace": namespace, "name": name}
    writes = []
    for event in events:
        if event.get("verb") not in WRITE_VERBS:
            continue
        ref = event.get("objectRef") or {}
        if any(value is not None and ref.get(key) != value for key, value in wanted.items()):
            continue
        if user is not None and (event.get("user") or {}).get("username") != user:
            continue
        writes.append(event)
    return writes
