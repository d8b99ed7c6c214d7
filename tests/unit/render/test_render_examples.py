"""The examples users apply: each parses as an InferencePool and is commented."""

from __future__ import annotations

import pytest
from render_cases import EXAMPLES, example_names, load_manifest

from warmpool.api.resource import API_VERSION, KIND, InferencePool


def test_there_are_three_to_five_examples() -> None:
    assert 3 <= len(example_names()) <= 5


@pytest.mark.parametrize("example", example_names())
def test_example_parses(example: str) -> None:
    manifest = load_manifest(example)
    pool = InferencePool.from_manifest(manifest)
    assert manifest["apiVersion"] == API_VERSION
    assert manifest["kind"] == KIND
    assert pool.metadata.name


@pytest.mark.parametrize("example", example_names())
def test_example_starts_with_a_comment(example: str) -> None:
    assert (EXAMPLES / f"{example}.yaml").read_text().startswith("# ")


def test_one_example_runs_without_a_gpu() -> None:
    pools = [InferencePool.from_manifest(load_manifest(name)) for name in example_names()]
    assert any(pool.spec.server.gpu.count == 0 for pool in pools)
