"""Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection does it.

Why not kopf's peering: it pauses kopf's handlers on a standby but not the operator's own
refresh loop (controller/loop.py), so two replicas would both write. Here a replica that does not
hold the Lease runs nothing of the operator at all; the leader runs kopf, renews the Lease every
`retry_period`, and exits at once when it cannot renew within `renew_deadline` (crash-only, as
controller-runtime does: no half-leader keeps writing).

Safety does not depend on synchronised clocks: a standby measures a holder's lease from the
moment IT first saw the record change (its own monotonic clock), as client-go does, never from
the `renewTime` another machine wrote. Writes use the Lease's resourceVersion (optimistic
concurrency), so of two candidates that race for an expired Lease only one update succeeds.

The decision (`next_action`, `next_record`, `released`) is pure; `LeaderElector` is the thin
loop that reads and writes through a `LeaseStore`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from warmpool.contract import Obj, format_micro_time, parse_time
from warmpool.controller.kube.client import ApiError

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
WallClock = Callable[[], datetime]

#: Shortest wait between two attempts of a standby (a Lease watch that returns at once, or a
#: lease that is about to run out, must not make it hammer the apiserver).
MIN_WAIT = 0.1
#: A released Lease says 1 s (as client-go writes): anyone may take it at once anyway, since
#: it has no holder.
RELEASED_LEASE_SECONDS = 1


# ---- the record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec: who holds it, for how long, since when."""

    holder: str
    """holderIdentity; "" once released."""
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    """leaseTransitions: how often the holder changed."""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LeaseRecord:
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> Obj:
        spec: Obj = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return spec


@dataclass(frozen=True)
class Observation:
    """The Lease as last read, and when (local monotonic time) its record last changed."""

    record: LeaseRecord | None
    """None: there is no Lease yet."""
    resource_version: str | None
    observed_at: float


def observe(
    previous: Observation | None,
    record: LeaseRecord | None,
    resource_version: str | None,
    now: float,
) -> Observation:
    """The new observation. The clock restarts only when the record changed: a holder that
    renews changes renewTime each time; a dead holder's record stays the same, so its lease
    runs out on our clock."""
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return Observation(record=record, resource_version=resource_version, observed_at=now)


class Action(enum.Enum):
    CREATE = "create"
    """No Lease: create it holding it."""
    TAKE = "take"
    """Released or expired: take it over (a new holder, transitions + 1)."""
    RENEW = "renew"
    """Ours: renew it."""
    WAIT = "wait"
    """Held by a live leader: wait."""


def expires_at(observation: Observation, default_duration: float) -> float:
    """Local monotonic time at which the observed holder's lease runs out."""
    record = observation.record
    duration = default_duration
    if record is not None and record.lease_duration_seconds > 0:
        duration = record.lease_duration_seconds
    return observation.observed_at + duration


def next_action(
    observation: Observation, identity: str, now: float, default_duration: float
) -> Action:
    """May `identity` take or renew the Lease at local time `now`?"""
    record = observation.record
    if record is None:
        return Action.CREATE
    if record.holder == identity:
        return Action.RENEW
    if not record.holder or now >= expires_at(observation, default_duration):
        return Action.TAKE
    return Action.WAIT


def next_record(
    current: LeaseRecord | None, identity: str, wall_now: datetime, lease_duration_seconds: int
) -> LeaseRecord:
    """The record that takes (or renews) the Lease for `identity` at `wall_now`."""
    if current is not None and current.holder == identity:
        return replace(
            current,
            lease_duration_seconds=lease_duration_seconds,
            renew_time=wall_now,
        )
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=lease_duration_seconds,
        acquire_time=wall_now,
        renew_time=wall_now,
        transitions=0 if current is None else current.transitions + 1,
    )


def released(current: LeaseRecord, wall_now: datetime) -> LeaseRecord:
    """The record a leader writes when it steps down: no holder, so a standby takes it at once
    (client-go's ReleaseOnCancel). The transition count is kept; the taker adds one."""
    return replace(
        current,
        holder="",
        lease_duration_seconds=RELEASED_LEASE_SECONDS,
        acquire_time=wall_now,
        renew_time=wall_now,
    )


def next_attempt_in(
    observation: Observation | None, now: float, retry_period: float, default_duration: float
) -> float:
    """Seconds until a standby's next attempt: a retry period, or less when the holder's lease
    runs out sooner (a crashed leader is replaced when its lease expires, not up to a retry
    period later); never less than MIN_WAIT."""
    if observation is None or observation.record is None or not observation.record.holder:
        return retry_period
    left = expires_at(observation, default_duration) - now
    return min(retry_period, max(MIN_WAIT, left))


def renew_deadline_passed(last_renewed_at: float, now: float, renew_deadline: float) -> bool:
    """Whether the leader must give up: no successful renewal within the renew deadline."""
    return now - last_renewed_at >= renew_deadline


# ---- the loop --------------------------------------------------------------------------------


class LeaseConflictError(Exception):
    """Someone else wrote the Lease between our read and our write (HTTP 409)."""


class LeaseStore(Protocol):
    """Reads and writes one Lease object; lease_api.LeaseApi is the real one."""

    async def get(self) -> Obj | None: ...

    async def create(self, spec: Obj) -> Obj: ...

    async def replace(self, spec: Obj, resource_version: str) -> Obj: ...

    async def wait_for_change(self, resource_version: str | None, within: float) -> bool:
        """Return True when the Lease changes after `resource_version`; False when the watch
        ended (at most `within` s) without a change."""
        ...


class LeadershipLostError(Exception):
    """The leader could not renew in time, or found the Lease held by someone else."""


@dataclass(frozen=True)
class Timings:
    lease_duration: float
    renew_deadline: float
    retry_period: float


class LeaderElector:
    """Acquires, holds and releases the Lease for `identity`."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timings: Timings,
        *,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = lambda: datetime.now(UTC),
    ) -> None:
        self.identity = identity
        self._store = store
        self._timings = timings
        self._clock = clock
        self._wall_clock = wall_clock
        self._observation: Observation | None = None
        self._renewed_at: float | None = None

    @property
    def holder(self) -> str | None:
        """The holder as last observed (None: unknown or no Lease)."""
        record = self._observation.record if self._observation else None
        return record.holder if record is not None and record.holder else None

    @property
    def is_leader(self) -> bool:
        return self.holder == self.identity

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew): True when we hold the Lease after it."""
        lease = await self._store.get()
        now = self._clock()
        if lease is None:
            self._observation = observe(self._observation, None, None, now)
        else:
            record = LeaseRecord.from_spec(lease.get("spec") or {})
            version = str(lease["metadata"]["resourceVersion"])
            self._observation = observe(self._observation, record, version, now)
        observation = self._observation
        action = next_action(observation, self.identity, now, self._timings.lease_duration)
        if action is Action.WAIT:
            return False
        wanted = next_record(
            observation.record,
            self.identity,
            self._wall_clock(),
            int(self._timings.lease_duration),
        )
        try:
            if action is Action.CREATE:
                written = await self._store.create(wanted.to_spec())
            else:
                assert observation.resource_version is not None
                written = await self._store.replace(wanted.to_spec(), observation.resource_version)
        except LeaseConflictError:
            # Another candidate won the race for this version; read again next time.
            return False
        self._observation = Observation(
            record=LeaseRecord.from_spec(written.get("spec") or {}),
            resource_version=str(written["metadata"]["resourceVersion"]),
            observed_at=now,
        )
        if action is Action.TAKE or action is Action.CREATE:
            logger.info(
                "acquired the Lease as %s (previous holder: %s)",
                self.identity,
                (observation.record.holder if observation.record else "") or "none",
            )
        self._renewed_at = now
        return True

    async def acquire(self) -> None:
        """Return once this replica holds the Lease (retrying every retry period)."""
        logged_holder: str | None = None
        while True:
            try:
                if await self._attempt(self._timings.retry_period * 5):
                    return
            except ApiError as error:
                logger.warning("could not read or write the Lease: %s", error.message)
            if self.holder != logged_holder:
                logged_holder = self.holder
                logger.info("standby: the Lease is held by %s", logged_holder)
            await self._until_next_attempt()

    async def _until_next_attempt(self) -> None:
        """Wait for the next attempt, cut short when the Lease changes (a watch): a leader
        that releases the Lease on SIGTERM is replaced at once, not at the next poll. A watch
        that fails or ends without a change falls back to the plain wait, and two attempts are
        never closer than MIN_WAIT, so a misbehaving watch cannot make the standby spin."""
        started = self._clock()
        wait = next_attempt_in(
            self._observation, started, self._timings.retry_period, self._timings.lease_duration
        )
        version = self._observation.resource_version if self._observation else None
        changed = False
        try:
            async with asyncio.timeout(wait):
                changed = await self._store.wait_for_change(version, wait)
        except TimeoutError:
            return
        except ApiError as error:
            logger.debug("watching the Lease failed: %s", error.message)
        floor = MIN_WAIT if changed else wait
        await asyncio.sleep(max(0.0, floor - (self._clock() - started)))

    async def hold(self) -> None:
        """Renew every retry period; raise LeadershipLostError when the Lease is lost. Never
        returns otherwise (cancel it to stop renewing)."""
        if self._renewed_at is None:
            raise LeadershipLostError("hold() before acquire()")
        while True:
            await asyncio.sleep(self._timings.retry_period)
            await self._renew_within_deadline()

    async def _renew_within_deadline(self) -> None:
        assert self._renewed_at is not None
        while True:
            now = self._clock()
            if renew_deadline_passed(self._renewed_at, now, self._timings.renew_deadline):
                raise LeadershipLostError(
                    f"no renewal for {now - self._renewed_at:.1f}s "
                    f"(renew deadline {self._timings.renew_deadline:g}s)"
                )
            remaining = self._renewed_at + self._timings.renew_deadline - now
            try:
                if await self._attempt(remaining):
                    return
            except ApiError as error:
                logger.warning("could not renew the Lease: %s", error.message)
            holder = self.holder
            observed = self._observation
            if observed is not None and observed.record is not None and holder != self.identity:
                raise LeadershipLostError(f"the Lease is now held by {holder or 'nobody'}")
            await asyncio.sleep(min(self._timings.retry_period, max(0.0, remaining)))

    async def _attempt(self, within: float) -> bool:
        """One attempt, abandoned after `within` seconds (a hung request must not outlive
        the renew deadline)."""
        try:
            async with asyncio.timeout(within):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            logger.warning("a Lease request took longer than %.1fs", within)
            return False

    async def release(self) -> bool:
        """Step down: clear holderIdentity so a standby takes over at once. Only when the Lease
        is still ours (never clears someone else's). False when nothing was released."""
        if self._observation is None or not self.is_leader:
            return False
        try:
            # Read it again: a renewal cancelled mid-flight may have changed its version.
            lease = await self._store.get()
            record = LeaseRecord.from_spec((lease or {}).get("spec") or {})
            if lease is None or record.holder != self.identity:
                logger.warning("did not release the Lease: it is not held by us any more")
                return False
            await self._store.replace(
                released(record, self._wall_clock()).to_spec(),
                str(lease["metadata"]["resourceVersion"]),
            )
        except (LeaseConflictError, ApiError) as error:
            logger.warning("did not release the Lease: %s", error)
            return False
        logger.info("released the Lease")
        self._observation = None
        return True
