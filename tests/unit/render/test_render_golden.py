"""Golden files of every example's children: byte-identical output for the same input.

`UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/render` rewrites them; review the diff.
"""

from __future__ import annotations

import os

import pytest
from render_cases import CASES, GOLDEN, Case, dump, example_names, golden_name, render_case


def test_every_example_has_a_golden_case() -> None:
    assert sorted(case.example for case in CASES) == example_names()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.example)
def test_children_match_golden_files(case: Case) -> None:
    directory = GOLDEN / case.example
    rendered = {golden_name(obj): dump(obj) for obj in render_case(case)}
    if os.environ.get("UPDATE_GOLDEN") == "1":
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.yaml"):
            if stale.name not in rendered:
                stale.unlink()
        for name, text in rendered.items():
            (directory / name).write_text(text)
    on_disk = {path.name: path.read_text() for path in directory.glob("*.yaml")}
    assert sorted(on_disk) == sorted(rendered), "objects differ from the golden files"
    for name, text in rendered.items():
        assert text == on_disk[name], f"{case.example}/{name} differs from its golden file"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.example)
def test_rendering_is_deterministic(case: Case) -> None:
    first = [dump(obj) for obj in render_case(case)]
    second = [dump(obj) for obj in render_case(case)]
    assert first == second
