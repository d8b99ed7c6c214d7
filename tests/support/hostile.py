"""Hypothesis strategies for hostile InferencePool specs: a valid spec with one field (or a
few) replaced by a wrong type, a huge number, a huge string, an unknown key, a bad URI, a bad
cron expression or an unknown time zone."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

VALID_SPEC: dict[str, Any] = {
    "model": {"uri": "s3://models/llama-3-8b", "revision": "2024-07-01"},
    "server": {"gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}},
    "cache": {"kind": "node", "prepull": True},
    "warmup": {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}]},
    "scaling": {
        "warmFloor": 1,
        "maxReplicas": 8,
        "schedules": [
            {
                "cron": "0 8 * * 1-5",
                "timezone": "Europe/Berlin",
                "warmFloor": 3,
                "durationMinutes": 720,
            }
        ],
    },
}

# Paths (into VALID_SPEC, created when missing) that hostile values are written to.
PATHS: list[tuple[str | int, ...]] = [
    ("model", "uri"),
    ("model", "revision"),
    ("model", "include"),
    ("model", "sha256"),
    ("model", "credentialsSecret"),
    ("server", "image"),
    ("server", "gpu", "count"),
    ("server", "args"),
    ("server", "env"),
    ("server", "nodeSelector"),
    ("server", "ports", "http"),
    ("server", "resources", "limits"),
    ("cache", "kind"),
    ("cache", "sizeLimit"),
    ("warmup", "tolerance"),
    ("warmup", "minRequests"),
    ("warmup", "inputs", 0, "shape"),
    ("warmup", "inputs", 0, "datatype"),
    ("scaling", "warmFloor"),
    ("scaling", "maxReplicas"),
    ("scaling", "scaleToZeroAfterSeconds"),
    ("scaling", "schedules", 0, "cron"),
    ("scaling", "schedules", 0, "timezone"),
    ("scaling", "schedules", 0, "warmFloor"),
    ("scaling", "target", "value"),
    ("replicas",),
]

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 7, 1000, 1001, 10**9]),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=40),
    st.sampled_from(
        [
            "x" * 5000,
            "ftp://host/model",
            "hf://only-org",
            "s3://",
            "every day",
            "61 25 * * *",
            "Mars/Olympus",
            "UTC",
            "Europe/Berlin",
            "0 8 * * 1-5",
            "16Gi",
            "-1",
            "1e400",
        ]
    ),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
)


def _set(spec: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = spec
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[path[-1]] = value


@st.composite
def hostile_specs(draw: st.DrawFn) -> dict[str, Any]:
    """VALID_SPEC with one to three fields replaced, or an unknown key added."""
    spec = copy.deepcopy(VALID_SPEC)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            section = draw(st.sampled_from(["model", "server", "scaling", "warmup", "cache"]))
            spec[section][draw(st.sampled_from(["warmFlor", "urI", "extra"]))] = 1
        else:
            _set(spec, draw(st.sampled_from(PATHS)), draw(hostile_values))
    return spec
