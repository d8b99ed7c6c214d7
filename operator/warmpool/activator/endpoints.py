"""The ready endpoints of every pool, and the choice of one for a request (pure, no I/O).

A source (the EndpointSlice watch in production, the test itself in the integration tier)
feeds slices in; the hold queue listens for a pool going from no endpoint to some.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from warmpool.contract import POOL_LABEL, SERVICE_ROLE_LABEL, SERVICE_ROLE_PODS, PoolKey


@dataclass(frozen=True, order=True)
class Endpoint:
    """One warm pod: its IP and the ports of its Triton HTTP and gRPC servers."""

    ip: str
    http_port: int | None
    grpc_port: int | None

    def http_base(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.http_port}"

    def grpc_target(self) -> tuple[str, int | None]:
        return self.ip, self.grpc_port


@dataclass(frozen=True)
class SliceState:
    """What one EndpointSlice says: which pool, and its ready endpoints."""

    pool: PoolKey
    slice_name: str
    endpoints: tuple[Endpoint, ...]


def parse_endpoint_slice(obj: Mapping[str, Any]) -> SliceState | None:
    """Read a ``<pool>-pods`` EndpointSlice (as a JSON dict); None if it is not one.

    Only endpoints whose ``conditions.ready`` is true (or unset, which the API defines as
    ready) are kept: pods carry the warm readiness gate, so ready means warm.
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    pool_name = labels.get(POOL_LABEL)
    if not pool_name or labels.get(SERVICE_ROLE_LABEL) != SERVICE_ROLE_PODS:
        return None
    ports = {p.get("name"): p.get("port") for p in obj.get("ports") or [] if p.get("port")}
    endpoints: list[Endpoint] = []
    for ep in obj.get("endpoints") or []:
        ready = (ep.get("conditions") or {}).get("ready")
        if ready is False:
            continue
        endpoints.extend(
            Endpoint(ip=address, http_port=ports.get("http"), grpc_port=ports.get("grpc"))
            for address in ep.get("addresses") or []
        )
    return SliceState(
        pool=PoolKey(namespace=str(meta.get("namespace", "")), name=str(pool_name)),
        slice_name=str(meta.get("name", "")),
        endpoints=tuple(sorted(set(endpoints))),
    )


@dataclass
class EndpointTable:
    """pool -> slice -> ready endpoints; tells a listener when a pool's set changes."""

    _slices: dict[PoolKey, dict[str, tuple[Endpoint, ...]]] = field(default_factory=dict)
    _listeners: list[Callable[[PoolKey, tuple[Endpoint, ...]], None]] = field(default_factory=list)

    def add_listener(self, listener: Callable[[PoolKey, tuple[Endpoint, ...]], None]) -> None:
        self._listeners.append(listener)

    def pools(self) -> Iterable[PoolKey]:
        return self._slices.keys()

    def endpoints(self, pool: PoolKey) -> tuple[Endpoint, ...]:
        slices = self._slices.get(pool, {})
        return tuple(sorted({ep for eps in slices.values() for ep in eps}))

    def upsert(self, state: SliceState) -> None:
        self._slices.setdefault(state.pool, {})[state.slice_name] = state.endpoints
        self._notify(state.pool)

    def delete(self, pool: PoolKey, slice_name: str) -> None:
        slices = self._slices.get(pool)
        if slices is None:
            return
        slices.pop(slice_name, None)
        if not slices:
            # A pool with no slice at all is gone (its -pods Service was deleted).
            del self._slices[pool]
        self._notify(pool)

    def replace_all(self, states: Iterable[SliceState]) -> None:
        """Replace everything (after a re-list), notifying every pool that changed."""
        before = {pool: self.endpoints(pool) for pool in self._slices}
        self._slices = {}
        for state in states:
            self._slices.setdefault(state.pool, {})[state.slice_name] = state.endpoints
        for pool in set(before) | set(self._slices):
            if before.get(pool) != self.endpoints(pool) or pool not in before:
                self._notify(pool)

    def set_pool(self, pool: PoolKey, endpoints: Iterable[Endpoint]) -> None:
        """Set a pool's endpoints directly (one synthetic slice): for in-process sources."""
        self.upsert(SliceState(pool=pool, slice_name="", endpoints=tuple(sorted(endpoints))))

    def _notify(self, pool: PoolKey) -> None:
        current = self.endpoints(pool)
        for listener in list(self._listeners):
            listener(pool, current)


@dataclass
class LeastOutstandingPicker:
    """Least outstanding requests first, round-robin among equals.

    Held requests are released together when the first replica turns warm; when more
    replicas follow, new requests go to the idle ones instead of piling on the first.
    """

    _outstanding: dict[Endpoint, int] = field(default_factory=dict)
    _turn: int = 0

    def pick(self, candidates: tuple[Endpoint, ...]) -> Endpoint | None:
        if not candidates:
            return None
        self._turn += 1
        least = min(self._outstanding.get(ep, 0) for ep in candidates)
        tied = [ep for ep in candidates if self._outstanding.get(ep, 0) == least]
        return tied[self._turn % len(tied)]

    def started(self, endpoint: Endpoint) -> None:
        self._outstanding[endpoint] = self._outstanding.get(endpoint, 0) + 1

    def finished(self, endpoint: Endpoint) -> None:
        left = self._outstanding.get(endpoint, 0) - 1
        if left > 0:
            self._outstanding[endpoint] = left
        else:
            self._outstanding.pop(endpoint, None)
