"""hack/images/build.py: the shell steps each recipe's layer is built with (the chroot runs them;
tests/e2e runs the images). The wheel is really built here from the repository."""

from __future__ import annotations

import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "hack" / "images"))

from build import Builder  # noqa: E402


@pytest.fixture
def builder(tmp_path: Path) -> Iterator[Builder]:
    built = Builder(tmp_path, force=False)
    try:
        yield built
    finally:
        built.close()


def test_dependencies_layer_creates_the_venv_and_installs_the_projects_dependencies(
    builder: Builder,
) -> None:
    steps = builder.steps(builder.recipes["python-deps"], "/tmp/build")
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert steps[0] == "python3 -m venv /opt/warmpool"
    (install,) = steps[1:]
    assert install.startswith("/opt/warmpool/bin/pip install -q ")
    for dependency in dependencies:
        assert f"'{dependency}'" in install or f" {dependency}" in install


def test_code_layer_installs_only_the_wheel_into_the_existing_venv(builder: Builder) -> None:
    for name in ("agent", "operator"):
        (install,) = builder.steps(builder.recipes[name], "/tmp/build")
        wheel = builder.build_wheel()
        assert install == f"/opt/warmpool/bin/pip install -q /tmp/build/{wheel.name}"
    with zipfile.ZipFile(builder.build_wheel()) as archive:
        assert "warmpool/cli.py" in archive.namelist()


def test_triton_layer_installs_libraries_then_its_own_venv_then_lays_out(
    builder: Builder,
) -> None:
    recipe = builder.recipes["triton-cpu"]
    steps = builder.steps(recipe, "/tmp/build")
    assert steps[:4] == [
        "apt-get update -qq",
        f"apt-get install -y -qq --no-install-recommends {' '.join(recipe.apt)} >/dev/null",
        "apt-get clean",
        "rm -rf /var/lib/apt/lists/*",
    ]
    assert steps[4:6] == [
        "python3 -m venv /opt/pytriton",
        "/opt/pytriton/bin/pip install -q nvidia-pytriton==0.7.0",
    ]
    assert steps[6:] == list(recipe.run)
