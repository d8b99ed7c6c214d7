"""The Dockerfiles, checked without a Docker engine (none on these machines).

Parsed instruction by instruction: pinned base, multi-stage, numeric non-root USER, exec-form
ENTRYPOINT `warmpool` with programs that exist in `warmpool.cli.PROGRAMS`. The build stage's
one real step, building a wheel from exactly the files the Dockerfile copies, is run here for
real, so a file the package needs but the Dockerfile forgets fails this test.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from support.dockerfile import Instruction, exec_form, parse, stages
from warmpool.cli import PROGRAMS

REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "images"
BASE = "debian:bookworm-slim"
NONROOT = "65532"
# What each image is for: the programs its users run (the chart and warmpool.render).
IMAGE_PROGRAMS = {
    "operator": {"operator"},
    "agent": {"prefetch", "warmup", "activator"},
}
BASE_STAGE = "base"  # every Dockerfile's first stage: Debian's Python (images/base/recipe.toml)


def copy_sources(instructions: list[Instruction]) -> list[str]:
    """Sources of the COPY instructions that read the build context (no --from)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "COPY" or "--from=" in instruction.value:
            continue
        parts = [part for part in instruction.value.split() if not part.startswith("--")]
        sources += parts[:-1]
    return sources


def dockerignore_allows(ignore_file: Path, path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for raw in ignore_file.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        pattern = pattern.removeprefix("**/")
        candidates = [path, *Path(path).parts]
        if any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates):
            allowed = negate
    return allowed


@pytest.fixture(params=sorted(IMAGE_PROGRAMS))
def image(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_base_is_pinned_by_tag_with_a_digest_placeholder(image: str) -> None:
    instructions, comments = parse(IMAGES / image / "Dockerfile")
    args = [i.value for i in instructions if i.keyword == "ARG"]
    assert f"DEBIAN_IMAGE={BASE}" in args
    froms = [i.value for i in instructions if i.keyword == "FROM"]
    assert froms[0] == f"${{DEBIAN_IMAGE}} AS {BASE_STAGE}"
    assert all(value.split()[0] == BASE_STAGE for value in froms[1:])  # one shared base layer
    assert f"{BASE}@sha256:<digest>" in comments  # how a release pins the digest


def test_multi_stage_non_root_final_stage(image: str) -> None:
    instructions, _ = parse(IMAGES / image / "Dockerfile")
    all_stages = stages(instructions)
    assert len(all_stages) == 3  # base, build, runtime
    build, final = all_stages[1], all_stages[-1]
    stage_name = build[0].value.split()[-1]
    assert build[0].value.split()[-2].upper() == "AS"
    assert any(i.keyword == "COPY" and f"--from={stage_name}" in i.value for i in final), (
        "the final stage copies the venv from the build stage"
    )
    assert not any(i.keyword == "RUN" for i in final), "no build steps in the runtime stage"
    users = [i.value for i in final if i.keyword == "USER"]
    assert users and users[-1] == f"{NONROOT}:{NONROOT}"  # numeric: runAsNonRoot can verify it


def test_entrypoint_and_programs_exist(image: str) -> None:
    instructions, _ = parse(IMAGES / image / "Dockerfile")
    final = stages(instructions)[-1]
    entrypoint = [exec_form(i.value) for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [exec_form(i.value) for i in final if i.keyword == "CMD"]
    assert entrypoint == [["warmpool"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"warmpool": "warmpool.cli:main"}  # ENTRYPOINT names this console script
    labels = " ".join(i.value for i in final if i.keyword == "LABEL")
    match = re.search(r'dev\.warmpool\.programs="([^"]*)"', labels)
    assert match, "LABEL dev.warmpool.programs lists what the image runs"
    declared = set(match.group(1).split())
    assert IMAGE_PROGRAMS[image] <= declared <= PROGRAMS.keys()
    (command,) = cmd
    assert command[0] in PROGRAMS or command == ["--help"]
    if image == "operator":
        assert command == ["operator"]


def test_copied_files_exist_and_pass_the_dockerignore(image: str) -> None:
    instructions, _ = parse(IMAGES / image / "Dockerfile")
    ignore_file = IMAGES / image / "Dockerfile.dockerignore"
    sources = copy_sources(instructions)
    assert "pyproject.toml" in sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert dockerignore_allows(ignore_file, source.rstrip("/")), f"{source} is ignored"
    assert not dockerignore_allows(ignore_file, ".venv")
    assert not dockerignore_allows(ignore_file, "operator/warmpool/__pycache__")


def test_agent_gets_tritonclient_extras_from_the_package() -> None:
    """The warm-up sidecar drives Triton over http and grpc: the wheel's dependencies bring both."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(
        d.replace(" ", "").startswith("tritonclient[http,grpc]") for d in project["dependencies"]
    )


def test_build_stage_builds_a_working_wheel(tmp_path: Path) -> None:
    """The build stage's `pip wheel .`, on exactly the files its COPY instructions take.

    Without build isolation (no network for setuptools here): the venv's setuptools and wheel.
    """
    instructions, _ = parse(IMAGES / "operator" / "Dockerfile")
    context = tmp_path / "src"
    context.mkdir()
    for source in copy_sources(instructions):
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(
                origin, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(origin, context / source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("warmpool-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "warmpool = warmpool.cli:main" in archive.read(entry_points).decode()
    assert "warmpool/py.typed" in names
    for module, _summary in PROGRAMS.values():
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module
