"""What a pool's sync tells people: Events and metrics on transitions, never on an idle pass.

Events are posted for cold starts, scale decisions, Degraded, phase changes and traffic that
became unreadable; the phase gauge is re-counted only when a pool's phase changes.
"""

from __future__ import annotations

from warmpool.api.status import ColdStart, InferencePoolStatus, Phase
from warmpool.contract import Obj, PoolKey, pool_key
from warmpool.controller.kube.events import EventRecorder, EventType
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.coldstart import describe


class Reporter:
    """Posts a pool's Events and keeps the operator's pool metrics."""

    def __init__(self, events: EventRecorder, metrics: OperatorMetrics) -> None:
        self._events = events
        self._metrics = metrics
        self._phases: dict[PoolKey, str] = {}
        self._conditions: dict[PoolKey, dict[str, str]] = {}

    def forget(self, key: PoolKey) -> None:
        """A pool is gone: it no longer counts in the phase gauge, its series go."""
        self._phases.pop(key, None)
        self._conditions.pop(key, None)
        self._metrics.set_pool_phases(self._phases.values())
        self._metrics.forget_pool(key[0], key[1])

    async def drift(self, body: Obj, note: str) -> None:
        """A child was edited by hand and put back (Warning: someone's change was undone)."""
        await self._events.post(
            body, type="Warning", reason="DriftReverted", action="Apply", note=note
        )

    async def note(self, body: Obj, type_: EventType, reason: str, note: str) -> None:
        """A one-off Event another module decided on (the pre-pull gate's release). Notes are
        cut to the API's 1 KiB by `build_event`, for every Event."""
        await self._events.post(body, type=type_, reason=reason, action="RollOut", note=note)

    async def report(
        self,
        body: Obj,
        previous: InferencePoolStatus,
        status: InferencePoolStatus,
        cold_starts: list[ColdStart],
    ) -> None:
        """Events and metrics for what changed between `previous` and `status`."""
        key = pool_key(body)
        if self._phases.get(key) != status.phase.value:
            # Re-counted only on a change: counting every pool on every refresh was O(pools²)
            # per tick.
            self._phases[key] = status.phase.value
            self._metrics.set_pool_phases(self._phases.values())
        conditions: dict[str, str] = {item.type: item.status for item in status.conditions}
        if self._conditions.get(key) != conditions:
            self._conditions[key] = conditions
            self._metrics.set_pool_conditions(key[0], key[1], conditions)
        for cold_start in cold_starts:
            self._metrics.observe_cold_start(key[0], key[1], cold_start)
            await self._events.post(
                body, type="Normal", reason="ColdStart", action="Warm", note=describe(cold_start)
            )
        if status.desired_replicas != previous.desired_replicas and status.phase != Phase.DEGRADED:
            direction = "up" if status.desired_replicas > previous.desired_replicas else "down"
            self._metrics.scale_decisions.labels(direction=direction).inc()
            await self._events.post(
                body,
                type="Normal",
                reason="Scaled",
                action="Scale",
                note=(
                    f"desired replicas {previous.desired_replicas} -> {status.desired_replicas}: "
                    f"{status.scaling.reason} (owner {status.scaling.owner})"
                ),
            )
        # Strategy Auto fell back to replacing in place: warm replicas will dip (once per
        # revision; the fallback stays in status.rollout until the next one).
        rollout = status.rollout
        if rollout is not None and rollout.fallback and not _fell_back(previous, status):
            await self._events.post(
                body,
                type="Warning",
                reason="RolloutFallback",
                action="RollOut",
                note=f"revision {rollout.revision}: {rollout.fallback}",
            )
        degraded = _condition_message(status, "Degraded")
        was_degraded = _condition_message(previous, "Degraded")
        if degraded is not None and degraded != was_degraded:
            await self._events.post(
                body, type="Warning", reason="Degraded", action="Validate", note=degraded
            )
        # A pool's first status is no transition (its "previous" phase is only the default):
        # posting one anyway was 1 of ~9 writes per new pool (benchmarks/scale.py).
        if status.phase != previous.phase and previous.conditions:
            await self._events.post(
                body,
                type="Warning" if status.phase == Phase.DEGRADED else "Normal",
                reason="PhaseChanged",
                action="Observe",
                note=f"phase {previous.phase.value} -> {status.phase.value}",
            )
        # Traffic became unreadable (Prometheus down): the scaler now holds replicas instead of
        # following demand; say so once, on the True -> False edge (a pool that never had
        # metrics, e.g. no --prometheus-url, gets no Event). Found by tests/e2e/test_faults.py.
        if (
            _condition_status(previous, "MetricsAvailable") == "True"
            and _condition_status(status, "MetricsAvailable") == "False"
        ):
            await self._events.post(
                body,
                type="Warning",
                reason="MetricsUnavailable",
                action="Scale",
                note=(
                    f"traffic unreadable, replicas held at {status.desired_replicas}: "
                    f"{status.scaling.reason}"
                ),
            )


def _fell_back(previous: InferencePoolStatus, status: InferencePoolStatus) -> bool:
    """Whether `previous` already recorded the fallback `status` holds (same revision)."""
    before, now = previous.rollout, status.rollout
    return (
        before is not None
        and now is not None
        and before.revision == now.revision
        and bool(before.fallback)
    )


def _condition_status(status: InferencePoolStatus, kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of the condition `kind`, None when absent."""
    return next((item.status for item in status.conditions if item.type == kind), None)


def _condition_message(status: InferencePoolStatus, kind: str) -> str | None:
    """The message of a True condition of `kind`, else None."""
    for item in status.conditions:
        if item.type == kind and item.status == "True":
            return item.message
    return None
