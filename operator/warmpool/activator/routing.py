"""Which pool a request is for: pure functions of the Host/:authority and headers.

While a pool is at zero its public Service points at the activator, so every pool's traffic
arrives on the same ports and the only thing that tells pools apart is the name the client
dialled. A short name (``llama``) is only usable when exactly one known pool has that name:
routing it to a pool in the wrong namespace would be worse than refusing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from warmpool.contract import PoolKey as PoolKey  # the activator's modules import it from here

#: Explicit override: ``X-Warmpool-Pool: <namespace>/<pool>`` (HTTP header or gRPC metadata).
POOL_HEADER = "x-warmpool-pool"


@dataclass(frozen=True)
class RouteError:
    """Why a request has no pool; ``message`` is sent to the client as is."""

    message: str


def strip_port(authority: str) -> str:
    """``host[:port]`` or ``[v6]:port`` -> host, lower-case, without a trailing dot."""
    host = authority.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end != -1 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def parse_pool_header(value: str) -> PoolKey | RouteError:
    """Parse ``<namespace>/<pool>``."""
    namespace, sep, name = value.strip().partition("/")
    if not sep or not namespace or not name or "/" in name:
        return RouteError(f"{POOL_HEADER} must be '<namespace>/<pool>', got {value!r}")
    return PoolKey(namespace, name)


def resolve(
    authority: str | None, pool_header: str | None, known: Iterable[PoolKey]
) -> PoolKey | RouteError:
    """The pool a request is for, or why there is none.

    ``known`` is every pool the activator has discovered. Accepted names:
    ``<pool>.<ns>``, ``<pool>.<ns>.svc``, ``<pool>.<ns>.svc.<cluster-domain>`` (any port), a short
    ``<pool>`` when exactly one known pool has that name, and the explicit ``X-Warmpool-Pool``.
    A pool that is not known is refused: holding it would wait for a wake-up that cannot come.
    """
    known_set = set(known)
    if pool_header:
        key = parse_pool_header(pool_header)
    elif authority:
        key = _from_host(strip_port(authority), known_set)
    else:
        key = RouteError("request has no Host/:authority and no X-Warmpool-Pool header")
    if isinstance(key, RouteError):
        return key
    if key not in known_set:
        return RouteError(f"no InferencePool {key} is known to this activator")
    return key


def _from_host(host: str, known: set[PoolKey]) -> PoolKey | RouteError:
    labels = host.split(".")
    if len(labels) == 1:
        matches = sorted(k for k in known if k.name == host)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            return RouteError(f"no InferencePool named {host!r} is known to this activator")
        namespaces = ", ".join(k.namespace for k in matches)
        return RouteError(
            f"host {host!r} is ambiguous: pools of that name exist in namespaces {namespaces}; "
            f"use '{host}.<namespace>' or the {POOL_HEADER} header"
        )
    if len(labels) == 2 or labels[2] == "svc":
        return PoolKey(namespace=labels[1], name=labels[0])
    return RouteError(
        f"host {host!r} is not '<pool>.<namespace>[.svc[.<cluster-domain>]]'; "
        f"use the {POOL_HEADER} header"
    )
