"""Each Dockerfile and its recipe describe the same image.

Users with Docker build ``images/<name>/Dockerfile``; this project's machines have no Docker and
build ``images/<name>/recipe.toml`` with ``hack/build-images.sh`` (the images the demo and the
real-node tests run). Here each Dockerfile is reduced to what its image is made of (base, Debian
packages, venv, pip requirements, other build steps) and what it runs (entrypoint, command,
user, working directory, environment, labels), and compared with its recipe field by field, so
changing one without the other fails.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.dockerfile import Instruction, exec_form, parse, stages
from warmpool.envtest import images as catalog

REPO = Path(__file__).resolve().parents[3]
IMAGES = REPO / "images"

DOCKER_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The Dockerfiles' wheel, built in their build stage; in recipes it is `{wheel}`.
DOCKERFILE_WHEEL = "/dist/warmpool-*.whl"
RECIPES = catalog.load_recipes(REPO)
WITH_DOCKERFILE = sorted(name for name, recipe in RECIPES.items() if recipe.dockerfile)


@dataclass
class Described:
    """What a Dockerfile's image is made of and runs."""

    base_image: str = ""
    base_apt: list[str] = field(default_factory=list)
    apt: list[str] = field(default_factory=list)
    venvs: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    base_steps: list[str] = field(default_factory=list)
    copied_from_build: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def commands(run: Instruction) -> list[str]:
    """A RUN's shell commands, one per `&&`, whitespace normalised."""
    return [" ".join(part.split()) for part in run.value.split(" && ")]


def assignments(value: str, env: dict[str, str]) -> dict[str, str]:
    """ENV/LABEL key=value pairs, ${VAR} resolved against what ENV set before."""
    pairs = {}
    for word in shlex.split(value):
        key, _, raw = word.partition("=")
        pairs[key] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), raw)
    return pairs


def describe(dockerfile: Path) -> Described:
    instructions, _ = parse(dockerfile)
    described = Described()
    args = dict(i.value.split("=", 1) for i in instructions if i.keyword == "ARG")
    all_stages = stages(instructions)
    base, *others = all_stages
    described.base_image = args[base[0].value.split()[0].strip("${}")]
    for stage in all_stages:
        for instruction in stage:
            if instruction.keyword != "RUN":
                continue
            for command in commands(instruction):
                words = shlex.split(command)
                if command.startswith("apt-get install"):
                    packages = [w for w in words[2:] if not w.startswith("-")]
                    (described.base_apt if stage is base else described.apt).extend(packages)
                elif command.startswith(("apt-get update", "rm -rf /var/lib/apt/lists")):
                    continue
                elif command.startswith("python3 -m venv"):
                    described.venvs.append(words[-1])
                elif re.fullmatch(r"/\S+/bin/pip", words[0]) and words[1] == "install":
                    requirements = [w for w in words[2:] if not w.startswith("-")]
                    described.pip += [
                        catalog.WHEEL if w == DOCKERFILE_WHEEL else w for w in requirements
                    ]
                elif re.fullmatch(r"/\S+/bin/pip", words[0]) and words[1] == "wheel":
                    continue  # the wheel the recipe builds on the host ({wheel})
                else:
                    (described.base_steps if stage is base else described.steps).append(command)
    final = others[-1]
    env = {"PATH": DOCKER_DEFAULT_PATH}
    for instruction in final:
        if instruction.keyword == "COPY" and "--from=" in instruction.value:
            source, target = instruction.value.split()[-2:]
            assert source == target, instruction
            described.copied_from_build.append(target)
        elif instruction.keyword == "ENV":
            env.update(assignments(instruction.value, env))
        elif instruction.keyword == "LABEL":
            described.labels.update(assignments(instruction.value, {}))
        elif instruction.keyword == "USER":
            described.user = instruction.value
        elif instruction.keyword == "WORKDIR":
            described.workdir = instruction.value
        elif instruction.keyword == "ENTRYPOINT":
            described.entrypoint = exec_form(instruction.value)
        elif instruction.keyword == "CMD":
            described.cmd = exec_form(instruction.value)
    described.env = env
    return described


def recipe_env(recipe: catalog.Recipe) -> dict[str, str]:
    return {"PATH": DOCKER_DEFAULT_PATH, **recipe.config.env}


def test_every_dockerfile_has_a_recipe_and_back() -> None:
    dockerfiles = sorted(p.parent.name for p in IMAGES.glob("*/Dockerfile"))
    assert dockerfiles == WITH_DOCKERFILE
    assert set(catalog.IMAGE_NAMES) <= RECIPES.keys()


@pytest.fixture(params=WITH_DOCKERFILE)
def name(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def test_same_base(name: str) -> None:
    described = describe(IMAGES / name / "Dockerfile")
    chain = catalog.chain(RECIPES, name)
    base = chain[0]
    assert base.parent == catalog.DEBOOTSTRAP
    # debian:<suite>-slim is debootstrap's minbase variant of that suite.
    assert described.base_image == f"debian:{base.suite}-slim"
    assert base.variant == "minbase"
    assert described.base_apt == list(base.apt)
    assert described.base_steps == [" ".join(step.split()) for step in base.run]


def test_same_packages_and_steps(name: str) -> None:
    described = describe(IMAGES / name / "Dockerfile")
    recipe = RECIPES[name]
    *_, between, top = [None, *catalog.chain(RECIPES, name)]
    assert top is recipe
    if between is not None and between.parent != catalog.DEBOOTSTRAP:
        # A layer between the base and the image only splits what the Dockerfile installs in
        # one step: the wheel's own dependencies, in the same venv, and nothing else.
        assert not between.dockerfile and between.parent == catalog.chain(RECIPES, name)[0].name
        assert between.pip_project_dependencies == "pyproject.toml" and not between.pip
        assert not (between.apt or between.run or between.host_files or between.static_binaries)
        assert between.venv == recipe.venv and catalog.WHEEL in recipe.pip
    assert described.apt == list(recipe.apt)
    assert described.venvs == [recipe.venv]
    assert described.pip == list(recipe.pip)
    assert described.steps == [" ".join(step.split()) for step in recipe.run]
    if described.copied_from_build:  # multi-stage: the runtime stage takes the venv whole
        assert described.copied_from_build == [recipe.venv]


def test_same_entrypoint_user_workdir_env_labels(name: str) -> None:
    described = describe(IMAGES / name / "Dockerfile")
    config = RECIPES[name].config
    assert described.entrypoint == list(config.entrypoint)
    assert described.cmd == list(config.cmd)
    assert described.user == config.user
    assert described.workdir == config.workdir
    assert described.env == recipe_env(RECIPES[name])
    assert described.labels == dict(config.labels)


def test_a_changed_dockerfile_no_longer_matches(tmp_path: Path) -> None:
    """The comparison sees a one-word change (it can fail)."""
    original = (IMAGES / "agent" / "Dockerfile").read_text()
    changed = tmp_path / "Dockerfile"
    changed.write_text(original.replace("warmpool-*.whl", 'warmpool-*.whl "tritonclient[http]"'))
    assert describe(changed).pip != list(RECIPES["agent"].pip)
    changed.write_text(original.replace("USER 65532:65532", "USER 0:0"))
    assert describe(changed).user != RECIPES["agent"].config.user
