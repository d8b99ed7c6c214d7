"""The wire contract between the operator and its agents (prefetch, warm-up, activator).

Everything that one program writes and another reads lives here, once: the resource's identity
on the API, the labels and annotations on pools and pods, the readiness gate, the warm gate's
message format and its parser, and the time format. A change here is a change of the protocol
between separately deployed programs (an operator and agents of different versions meet during
an upgrade): keep it backward compatible.

Standard library only, so every program imports it without the others' dependencies.

The warm gate's message (written by the warm-up sidecar, read by the operator's cold-start
accounting and by tests)::

    key=value key=value ... [ -- free text]

* pairs are separated by ONE space; keys are ``[A-Za-z][A-Za-z0-9]*``; values contain no space
  and no ``=``;
* an optional human-readable tail follows the separator `` -- `` (space, two dashes, space); it
  is never parsed;
* times are RFC 3339 UTC with milliseconds (``2026-11-27T21:04:05.123Z``), durations in seconds
  or milliseconds as the key's suffix says (``S``/``Ms``), floats with three (s) or one (ms)
  decimals.

docs/warmup.md lists the keys the warm-up writes; the operator reads `SERVER_READY_AT` and
`WARM_AT`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

# ---- the resource --------------------------------------------------------------------------

GROUP = "warmpool.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferencePool"
PLURAL = "inferencepools"

# ---- labels, annotations, conditions -------------------------------------------------------

#: Label that ties every child object (and every server pod) to its pool.
POOL_LABEL = f"{GROUP}/pool"
#: Role of a Service of the pool; the activator finds warm pods through the `pods` one.
SERVICE_ROLE_LABEL = f"{GROUP}/service-role"
SERVICE_ROLE_PUBLIC = "public"
SERVICE_ROLE_PODS = "pods"
#: Annotation the activator sets (a time, `format_time`) to wake a pool at zero.
WAKE_ANNOTATION = f"{GROUP}/wake-requested-at"
#: Pod readiness gate the warm-up sidecar opens once the server is warm.
WARM_CONDITION = f"{GROUP}/warm"

# ---- the warm gate's message ---------------------------------------------------------------

#: When the warm-up first saw the server and the model ready.
SERVER_READY_AT = "serverReadyAt"
#: When the warm-up judged latency steady (just before it opened the gate).
WARM_AT = "warmAt"

GATE_TAIL_SEPARATOR = " -- "
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")

GateValue = str | int | float | datetime | None

#: A Kubernetes object as JSON (a manifest, a watch event's body, an API response).
Obj = dict[str, Any]
#: The same, read-only (what pure functions that only look at an object take).
ObjView = Mapping[str, Any]


class PoolKey(NamedTuple):
    """One InferencePool: its namespace and name (a plain tuple where one is expected)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pool_key(obj: Mapping[str, Any]) -> PoolKey:
    """The key of a pool from its own metadata (a watch event's body, a manifest)."""
    meta = obj.get("metadata") or {}
    return PoolKey(str(meta.get("namespace") or "default"), str(meta.get("name")))


def owner_pool_key(obj: Mapping[str, Any]) -> PoolKey | None:
    """The pool a child object (or server pod) belongs to, from its `POOL_LABEL`."""
    meta = obj.get("metadata") or {}
    pool = (meta.get("labels") or {}).get(POOL_LABEL)
    if not pool:
        return None
    return PoolKey(str(meta.get("namespace") or "default"), str(pool))


# ---- time ----------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-11-27T21:04:05.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_micro_time(moment: datetime) -> str:
    """RFC 3339, UTC, microseconds (Kubernetes' MicroTime: Lease and Event times)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time (`Z` or an offset, optional fraction) as an aware datetime; None when
    absent or unreadable (a time without a zone is taken as UTC)."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- the warm gate's message ---------------------------------------------------------------


def format_gate_message(pairs: Mapping[str, GateValue], tail: str = "") -> str:
    """Render ``pairs`` (``None`` values are left out) and an optional free-text tail."""
    parts = []
    for key, value in pairs.items():
        if value is None:
            continue
        if not _KEY.match(key):
            raise ValueError(f"invalid key {key!r}")
        if isinstance(value, datetime):
            text = format_time(value)
        elif isinstance(value, float):
            text = f"{value:.3f}" if key.endswith("S") else f"{value:.1f}"
        else:
            text = str(value)
        if not text or " " in text or "=" in text:
            raise ValueError(f"invalid value for {key}: {text!r}")
        parts.append(f"{key}={text}")
    message = " ".join(parts)
    if tail:
        # One line, and the separator cannot be confused with a pair.
        message += GATE_TAIL_SEPARATOR + " ".join(tail.split())
    return message


def parse_gate_message(message: str) -> tuple[dict[str, str], str]:
    """Split a gate message into its ``key=value`` pairs and its free-text tail.

    Tokens that are not ``key=value`` (a message written by someone else) are ignored.
    """
    head, _, tail = message.partition(GATE_TAIL_SEPARATOR)
    pairs: dict[str, str] = {}
    for token in head.split():
        key, sep, value = token.partition("=")
        if sep and _KEY.match(key) and value:
            pairs[key] = value
    return pairs, tail
