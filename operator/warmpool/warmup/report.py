"""The warm condition's reasons and machine-readable message (pure; the operator parses it).

Message format (exact)::

    key=value key=value ... [ -- free text]

* pairs are separated by ONE space; keys are ``[A-Za-z][A-Za-z0-9]*``; values contain no
  space and no ``=``;
* an optional human-readable tail follows the separator `` -- `` (space, two dashes, space);
  it is never parsed;
* times are RFC 3339 UTC with milliseconds (``2026-11-27T21:04:05.123Z``), durations in
  seconds or milliseconds as the key's suffix says (``S``/``Ms``), floats with one (ms) or three
  (s) decimals.

Keys written on success (reason ``WarmupSucceeded``)::

    serverReadyAt=<time> warmAt=<time> requests=<int> firstMs=<float> steadyP50Ms=<float>
    durationS=<float>

``serverReadyAt``: when the program first saw the server AND the model ready (poll period
:data:`READY_POLL_SECONDS`); ``warmAt``: when latency was judged steady (just before the
condition was written); ``durationS = warmAt - serverReadyAt``; ``requests``: warm-up requests
the server answered successfully (with concurrency > 1 this includes the few still in flight at
the verdict); ``firstMs``: the first (cold) request's latency; ``steadyP50Ms``: the median
latency of the last window.

A streaming (decoupled) model's warm-up times answers, not requests: ``firstMs`` and
``steadyP50Ms`` are then times to first token, and two keys are added: ``steadyItlMs`` (the last
window's median inter-token latency) and ``mode=stream``.

Keys written on failure (reasons ``ModelNotReady``, ``NotSteady``, ``Timeout``,
``InferenceFailed``), each only where known (no ``serverReadyAt`` when the server never became
ready, no latencies when no request completed), then a `` -- `` tail saying what went wrong::

    serverReadyAt=<time> failedAt=<time> requests=<int> firstMs=<float> lastP50Ms=<float>
    bestP50Ms=<float> durationS=<float> -- <text>

``lastP50Ms``/``bestP50Ms``: the last and the best window median (streaming: of the time to
first token, with ``lastItlMs`` and ``mode=stream`` added). When a warm pod's server
stops being ready the gate closes with reason ``ServerNotReady`` and ``failedAt=<time> -- <text>``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

REASON_SUCCEEDED = "WarmupSucceeded"
REASON_MODEL_NOT_READY = "ModelNotReady"
REASON_NOT_STEADY = "NotSteady"
REASON_TIMEOUT = "Timeout"
REASON_INFERENCE_FAILED = "InferenceFailed"
REASON_SERVER_NOT_READY = "ServerNotReady"

READY_POLL_SECONDS = 0.25
"""How often readiness is polled while waiting; bounds the error of ``serverReadyAt``."""

TAIL_SEPARATOR = " -- "
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def format_time(moment: datetime) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-11-27T21:04:05.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any RFC 3339 ``fromisoformat`` reads)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_message(pairs: dict[str, str | int | float | datetime | None], tail: str = "") -> str:
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
        message += TAIL_SEPARATOR + " ".join(tail.split())
    return message


def parse_message(message: str) -> tuple[dict[str, str], str]:
    """Split a condition message into its ``key=value`` pairs and its free-text tail.

    Tokens that are not ``key=value`` (a message written by someone else) are ignored.
    """
    head, _, tail = message.partition(TAIL_SEPARATOR)
    pairs: dict[str, str] = {}
    for token in head.split():
        key, sep, value = token.partition("=")
        if sep and _KEY.match(key) and value:
            pairs[key] = value
    return pairs, tail
