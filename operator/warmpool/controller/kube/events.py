"""Kubernetes Events about pools, through the events.k8s.io/v1 API.

Events are posted on transitions only (phase changes, scale decisions, cold starts, Degraded),
never on an idle pass, so they carry news and cost no writes while nothing happens. A failure to
post is logged and swallowed: an Event is a courtesy, not part of the reconciliation.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from warmpool.contract import API_VERSION, KIND, format_micro_time
from warmpool.controller.kube.client import ApiError, KubeClient

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
REPORTING_CONTROLLER = "warmpool.dev/operator"
MAX_NOTE = 1024


def build_event(
    pool: Mapping[str, Any],
    *,
    type: EventType,
    reason: str,
    action: str,
    note: str,
    now: datetime,
    instance: str,
    suffix: str,
) -> dict[str, Any]:
    """An events.k8s.io/v1 Event regarding `pool` (pure)."""
    meta = pool.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{suffix}", "namespace": namespace},
        "eventTime": format_micro_time(now),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": action,
        "reason": reason,
        "type": type,
        "note": note[:MAX_NOTE],
        "regarding": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
    }


class EventRecorder:
    """Posts Events regarding pools."""

    def __init__(self, client: KubeClient, instance: str | None = None) -> None:
        self._client = client
        self._instance = instance or socket.gethostname()

    async def post(
        self, pool: Mapping[str, Any], *, type: EventType, reason: str, action: str, note: str
    ) -> None:
        event = build_event(
            pool,
            type=type,
            reason=reason,
            action=action,
            note=note,
            now=datetime.now(UTC),
            instance=self._instance,
            suffix=secrets.token_hex(8),
        )
        try:
            await self._client.create(event)
        except ApiError as error:
            logger.warning("could not post event %s %s: %s", reason, note, error)
