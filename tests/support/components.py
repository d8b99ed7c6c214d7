"""How a test asks for a real component (control plane, Triton, Prometheus, S3, Helm).

Locally, a missing component skips the test with the reason. Under ``CI=true`` it FAILS:
a green CI run that silently skipped the real tier would be a red run in disguise.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where real components are mandatory."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def component_unavailable(component: str, reason: str) -> None:
    """Skip (locally) or fail (under CI) because ``component`` cannot be started.

    Call it from a fixture when the real component is missing or would not start.
    """
    message = f"real component {component!r} unavailable: {reason}"
    if in_ci():
        pytest.fail(message + " (CI=true: the real tier must run, not skip)", pytrace=False)
    pytest.skip(message + " (run its hack/ install script; under CI=true this fails)")
