"""Writing the pod's ``warmpool.dev/warm`` condition through ``pods/status``.

The write is a strategic-merge PATCH of ``status.conditions`` with ONE entry. Pod conditions
merge on their ``type`` key, so the patch replaces (or adds) only that condition and leaves the
kubelet's conditions alone -- the same patch the kubelet sends for its own conditions.

``lastTransitionTime`` changes only when the condition's status changes. To know the current
status without a ``get`` grant, the writer reads the pod from the response of an EMPTY patch
(``{}``): it needs the ``patch`` verb only, which the RBAC and the admission policy already
allow (an empty patch changes nothing, so the policy admits it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from warmpool.contract import parse_time
from warmpool.warmup.report import format_time

log = logging.getLogger(__name__)

ConditionStatus = Literal["True", "False"]
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class Condition:
    """A pod condition as the warm-up writes it."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: datetime

    def to_dict(self) -> dict[str, str]:
        """The condition as it appears in ``status.conditions`` (RFC 3339 seconds)."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            # metav1.Time is second-precision; the message carries milliseconds.
            "lastTransitionTime": format_time(self.last_transition_time)[:19] + "Z",
        }


def build_condition_patch(condition: Condition) -> dict[str, Any]:
    """The strategic-merge patch body that sets exactly this one condition."""
    return {"status": {"conditions": [condition.to_dict()]}}


def find_condition(pod: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    """The condition of ``condition_type`` in a pod (as a dict), if present."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == condition_type:
            found: dict[str, Any] = condition
            return found
    return None


def next_condition(
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    current: dict[str, Any] | None,
    now: datetime,
) -> Condition:
    """The condition to write, keeping ``lastTransitionTime`` when the status is unchanged."""
    transition = now
    if current is not None and current.get("status") == status:
        previous = current.get("lastTransitionTime")
        if isinstance(previous, datetime):
            transition = previous
        elif isinstance(previous, str):
            transition = parse_time(previous) or now
    return Condition(condition_type, status, reason, message, transition)


class ConditionSink(Protocol):
    """Where the warm-up reports its gate. The real one is :class:`PodConditionWriter`."""

    async def set(self, status: ConditionStatus, reason: str, message: str) -> None: ...

    async def close(self) -> None: ...


class LogSink:
    """No pod to write to (``--pod-name`` unset): log the condition only.

    One line per condition, ``condition <type>=<status> reason=<reason> <message>``; the
    integration tests read the program's outcome from it (keep the format).
    """

    def __init__(self, condition_type: str) -> None:
        self.condition_type = condition_type

    async def set(self, status: ConditionStatus, reason: str, message: str) -> None:
        log.info("condition %s=%s reason=%s %s", self.condition_type, status, reason, message)

    async def close(self) -> None:
        return None


class PodConditionWriter:
    """Patches one pod's condition through the Kubernetes API (``kubernetes_asyncio``)."""

    def __init__(self, api_client: Any, pod_name: str, namespace: str, condition_type: str):
        from kubernetes_asyncio import client

        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        self.pod_name = pod_name
        self.namespace = namespace
        self.condition_type = condition_type
        self._current: dict[str, Any] | None = None
        self._known = False

    @classmethod
    async def create(
        cls, pod_name: str, namespace: str, condition_type: str, kubeconfig: str | None
    ) -> PodConditionWriter:
        """Build a writer from a kubeconfig file (tests) or the in-cluster service account."""
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        if kubeconfig:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            # Reads the projected token from its file; kubernetes_asyncio re-reads it when it
            # rotates (bound tokens expire).
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration), pod_name, namespace, condition_type)

    async def _patch(self, body: dict[str, Any]) -> dict[str, Any]:
        # The stubs omit ``_content_type``; the client honours it. Explicit, so a body that is
        # a dict can never be sent as a JSON merge patch (which would replace the list).
        pod = await self._core.patch_namespaced_pod_status(  # type: ignore[call-arg]
            self.pod_name, self.namespace, body, _content_type=STRATEGIC_MERGE_PATCH
        )
        result: dict[str, Any] = self._api_client.sanitize_for_serialization(pod)
        return result

    async def set(self, status: ConditionStatus, reason: str, message: str) -> None:
        if not self._known:
            self._current = find_condition(await self._patch({}), self.condition_type)
            self._known = True
        condition = next_condition(
            self.condition_type, status, reason, message, self._current, datetime.now(UTC)
        )
        pod = await self._patch(build_condition_patch(condition))
        self._current = find_condition(pod, self.condition_type)
        log.info(
            "pod %s/%s: %s=%s (%s)", self.namespace, self.pod_name, condition.type, status, reason
        )

    async def close(self) -> None:
        await self._api_client.close()
