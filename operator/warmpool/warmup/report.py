"""The warm condition's reasons and machine-readable message (pure; the operator parses it).

The message format, its parser and the time format are the operator's and the agents' shared
contract (:mod:`warmpool.contract`); this module re-exports them under the warm-up's names.

Keys written on success (reason ``WarmupSucceeded``)::

    serverReadyAt=<time> warmAt=<time> requests=<int> firstMs=<float> steadyP50Ms=<float>
    durationS=<float>

``serverReadyAt``: when the program first saw the server AND the model ready (poll period
:data:`READY_POLL_SECONDS`); ``warmAt``: when latency was judged steady (just before the
condition was written); ``durationS = warmAt - serverReadyAt``; ``requests``: warm-up requests
the server answered successfully (with concurrency > 1 this includes the few still in flight at
the verdict); ``firstMs``: the first (cold) request's latency; ``steadyP50Ms``: the median
latency of the last window.

Keys written on failure (reasons ``ModelNotReady``, ``NotSteady``, ``Timeout``,
``InferenceFailed``), each only where known (no ``serverReadyAt`` when the server never became
ready, no latencies when no request completed), then a `` -- `` tail saying what went wrong::

    serverReadyAt=<time> failedAt=<time> requests=<int> firstMs=<float> lastP50Ms=<float>
    bestP50Ms=<float> durationS=<float> -- <text>

``lastP50Ms``/``bestP50Ms``: the last and the best window median. When a warm pod's server
stops being ready the gate closes with reason ``ServerNotReady`` and ``failedAt=<time> -- <text>``.
"""

from __future__ import annotations

from warmpool.contract import GATE_TAIL_SEPARATOR as TAIL_SEPARATOR
from warmpool.contract import format_gate_message as format_message
from warmpool.contract import format_time, parse_time
from warmpool.contract import parse_gate_message as parse_message

__all__ = [
    "READY_POLL_SECONDS",
    "REASON_INFERENCE_FAILED",
    "REASON_MODEL_NOT_READY",
    "REASON_NOT_STEADY",
    "REASON_SERVER_NOT_READY",
    "REASON_SUCCEEDED",
    "REASON_TIMEOUT",
    "TAIL_SEPARATOR",
    "format_message",
    "format_time",
    "parse_message",
    "parse_time",
]

REASON_SUCCEEDED = "WarmupSucceeded"
REASON_MODEL_NOT_READY = "ModelNotReady"
REASON_NOT_STEADY = "NotSteady"
REASON_TIMEOUT = "Timeout"
REASON_INFERENCE_FAILED = "InferenceFailed"
REASON_SERVER_NOT_READY = "ServerNotReady"

READY_POLL_SECONDS = 0.25
"""How often readiness is polled while waiting; bounds the error of ``serverReadyAt``."""
