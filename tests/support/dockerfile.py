"""Dockerfiles read without a Docker engine (none on these machines): instructions by stage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def parse(dockerfile: Path) -> tuple[list[Instruction], str]:
    """Instructions (continuations joined, comments dropped) and the comment text."""
    instructions: list[Instruction] = []
    comments: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line)
            continue
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, value = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
    assert not pending, f"{dockerfile}: dangling line continuation"
    return instructions, "\n".join(comments)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM (the ARGs before the first FROM are stage 0's prelude)."""
    groups: list[list[Instruction]] = [[]]
    for instruction in instructions:
        if instruction.keyword == "FROM":
            groups.append([])
        groups[-1].append(instruction)
    return groups[1:]


def exec_form(value: str) -> list[str]:
    form = json.loads(value)
    assert isinstance(form, list) and all(isinstance(item, str) for item in form), value
    return form
