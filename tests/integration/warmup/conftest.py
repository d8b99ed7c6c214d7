"""Fixtures for the warm-up integration tests: a real Triton per test."""

from __future__ import annotations

import pytest

from support.triton import require_triton


@pytest.fixture
def tritonserver() -> str:
    """The real tritonserver (skips locally / fails under CI=true when not installed)."""
    return require_triton()
