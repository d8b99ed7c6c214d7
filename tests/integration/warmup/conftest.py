"""Fixtures for the warm-up integration tests: a real Triton per test, the torch models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.components import component_unavailable
from support.s3 import start_s3, stop_process, versitygw_binary
from support.torch_models import TORCH_MODELS, prefetched_repository, require_torch
from support.triton import require_triton


@pytest.fixture
def tritonserver() -> str:
    """The real tritonserver (skips locally / fails under CI=true when not installed)."""
    return require_triton()


@pytest.fixture(scope="session")
def torch_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A model repository with the torch models (tests/models/torch_convnet, tiny_lm), their
    weights made by torch, stored in a real S3 server (versitygw) and fetched by
    ``warmpool prefetch``, as a pod's init container fetches them."""
    require_torch()
    binary = versitygw_binary()
    if binary is None:
        component_unavailable("s3", "versitygw not built; run hack/build-s3.sh")
    assert binary is not None
    workdir = tmp_path_factory.mktemp("torch-models")
    s3 = start_s3(binary, workdir / "s3root")
    try:
        yield prefetched_repository(s3, list(TORCH_MODELS), workdir)
    finally:
        stop_process(s3.process)
