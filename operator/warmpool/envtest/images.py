"""The container images warmpool builds for its local node, without Docker or a registry.

``hack/build-images.sh`` builds each image from its recipe, ``images/<name>/recipe.toml``, into
an OCI archive under ``${WARMPOOL_CACHE:-~/.cache/warmpool}/images/`` and records it in
``images/manifest.json`` there. This module reads both: the recipes (what an image is made
of: parent, Debian and pip packages, build steps, entrypoint, user, environment) and the
manifest (which archive holds which image, under which reference, built from which inputs).

Each image's reference is tagged with the hash of its inputs (its recipe, its parent's hash,
the files it is built from), so a changed input gives a new tag: the kubelet never runs a stale
image under an old name, and ``imagePullPolicy: IfNotPresent`` never tries a registry for an
image that was imported. ``images/<name>/Dockerfile`` describes the same image for users with
Docker; ``tests/unit/images/`` holds the two together.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warmpool.envtest.binaries import cache_dir

REPO = Path(__file__).resolve().parents[3]
"""The repository root when warmpool runs from its source tree (as in the tests and demo)."""

IMAGE_NAMES = ("pause", "agent", "operator", "triton-cpu")
"""The images the local node runs: the pod sandbox, warmpool's two, and a CPU Triton."""
DEMO_IMAGE_NAMES = ("demo-s3", "demo-prometheus")
"""The demo's servers as pods (`make demo`): the S3 server the weights come from, and the
Prometheus that scrapes the pools; the binaries the tests run, on the shared base."""

MANIFEST = "manifest.json"
SCRATCH = "scratch"
"""The parent of an image that starts from nothing (the pause image)."""
DEBOOTSTRAP = "debootstrap"
"""The parent of the base image: a Debian root filesystem from debootstrap."""
WHEEL = "{wheel}"
"""In a recipe's pip list: the wheel built from this repository."""

# Bumped when the builder's output for the same recipe changes (layout, tar format).
BUILDER_VERSION = "1"

# Files a recipe's `inputs` may name that never go into an image (as the .dockerignore says).
_IGNORED_PARTS = frozenset({"__pycache__"})
_IGNORED_SUFFIXES = (".pyc", ".egg-info")


class ImagesNotBuiltError(FileNotFoundError):
    """An image is not in the cache, or was built from inputs that have changed since."""


@dataclass(frozen=True)
class ImageConfig:
    """What a container from the image runs: the OCI image config's `config` object."""

    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    workdir: str = "/"
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """How one image is built: one layer over its parent's layers."""

    name: str
    path: Path
    parent: str
    """Another recipe's name, `scratch` or `debootstrap`."""
    repository: str
    """The reference without tag, e.g. ``localhost/warmpool/agent``."""
    config: ImageConfig
    suite: str = ""
    """debootstrap only: the Debian release and variant (`bookworm`, `minbase`)."""
    variant: str = ""
    apt: tuple[str, ...] = ()
    venv: str = ""
    """The venv pip installs into (created with the image's python3 when missing)."""
    pip: tuple[str, ...] = ()
    pip_project_dependencies: str = ""
    """A pyproject.toml (repository-relative) whose [project] dependencies pip installs too:
    a layer of them alone is rebuilt only when that list changes, not with the code."""
    run: tuple[str, ...] = ()
    """Shell steps in the image's root after apt and pip."""
    static_binaries: Mapping[str, str] = field(default_factory=dict)
    """Image path -> C source (repository-relative) compiled with `gcc -static`."""
    host_files: Mapping[str, str] = field(default_factory=dict)
    """Image path -> a file of this machine (absolute, or relative to the cache directory),
    copied in: the demo's servers are the binaries the tests run."""
    inputs: tuple[str, ...] = ()
    """Repository-relative files and directories the image is built from."""
    dockerfile: bool = True
    """Whether ``images/<name>/Dockerfile`` describes this image for Docker users."""

    @property
    def directory(self) -> Path:
        return self.path.parent


def _strings(data: Mapping[str, Any], key: str, where: Path) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _table(data: Mapping[str, Any], key: str, where: Path) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where}: {key} must be a table of strings")
    return dict(value)


def _string(data: Mapping[str, Any], key: str, where: Path, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string")
    return value


def load_recipe(path: Path) -> Recipe:
    """The recipe in ``path`` (``images/<name>/recipe.toml``); the name is its directory's."""
    data = tomllib.loads(path.read_text())
    config = data.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a [config] table is required")
    dockerfile = data.get("dockerfile", True)
    if not isinstance(dockerfile, bool):
        raise ValueError(f"{path}: dockerfile must be true or false")
    return Recipe(
        name=path.parent.name,
        path=path,
        parent=_string(data, "from", path),
        repository=_string(data, "repository", path),
        suite=_string(data, "suite", path, ""),
        variant=_string(data, "variant", path, ""),
        apt=_strings(data, "apt", path),
        venv=_string(data, "venv", path, ""),
        pip=_strings(data, "pip", path),
        pip_project_dependencies=_string(data, "pip_project_dependencies", path, ""),
        run=_strings(data, "run", path),
        static_binaries=_table(data, "static_binaries", path),
        host_files=_table(data, "host_files", path),
        inputs=_strings(data, "inputs", path),
        dockerfile=dockerfile,
        config=ImageConfig(
            user=_string(config, "user", path),
            entrypoint=_strings(config, "entrypoint", path),
            cmd=_strings(config, "cmd", path),
            workdir=_string(config, "workdir", path, "/"),
            env=_table(config, "env", path),
            labels=_table(config, "labels", path),
        ),
    )


def load_recipes(repo: Path = REPO) -> dict[str, Recipe]:
    """Every recipe under ``<repo>/images/``, by name, parents checked."""
    recipes = {p.parent.name: load_recipe(p) for p in sorted(repo.glob("images/*/recipe.toml"))}
    for recipe in recipes.values():
        if recipe.parent not in recipes and recipe.parent not in (SCRATCH, DEBOOTSTRAP):
            raise ValueError(f"{recipe.path}: from = {recipe.parent!r} names no recipe")
    return recipes


def chain(recipes: Mapping[str, Recipe], name: str) -> list[Recipe]:
    """The recipes whose layers make up image ``name``, bottom layer first."""
    layers: list[Recipe] = []
    current = recipes[name]
    while True:
        if current in layers:
            raise ValueError(f"{current.path}: its parents loop back to it")
        layers.insert(0, current)
        if current.parent in (SCRATCH, DEBOOTSTRAP):
            return layers
        current = recipes[current.parent]


def project_dependencies(recipe: Recipe, repo: Path = REPO) -> tuple[str, ...]:
    """The requirements named by the recipe's pip_project_dependencies (none without one)."""
    if not recipe.pip_project_dependencies:
        return ()
    project = tomllib.loads((repo / recipe.pip_project_dependencies).read_text())["project"]
    return tuple(project.get("dependencies", []))


def pip_requirements(recipe: Recipe, repo: Path = REPO) -> tuple[str, ...]:
    """Everything pip installs for the recipe: its project's dependencies, then its own."""
    return (*project_dependencies(recipe, repo), *recipe.pip)


def _input_files(repo: Path, inputs: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for entry in inputs:
        path = repo / entry
        if not path.exists():
            raise FileNotFoundError(f"image input {entry} does not exist under {repo}")
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for candidate in candidates:
            relative = candidate.relative_to(repo)
            if not candidate.is_file() or _IGNORED_PARTS.intersection(relative.parts):
                continue
            if any(part.endswith(_IGNORED_SUFFIXES) for part in relative.parts):
                continue
            files.append(candidate)
    return files


def layer_hash(recipes: Mapping[str, Recipe], name: str, repo: Path = REPO) -> str:
    """The hash of what image ``name``'s top layer is built from: its parent's layer hash, its
    build fields and input files. Not its name or config: two recipes that build the same
    files (the agent and the operator) share one layer."""
    recipe = recipes[name]
    digest = hashlib.sha256()
    digest.update(f"builder {BUILDER_VERSION}\n".encode())
    if recipe.parent in (SCRATCH, DEBOOTSTRAP):
        digest.update(f"from {recipe.parent}\n".encode())
    else:
        digest.update(f"parent {layer_hash(recipes, recipe.parent, repo)}\n".encode())
    build = {
        "suite": recipe.suite,
        "variant": recipe.variant,
        "apt": recipe.apt,
        "venv": recipe.venv,
        "pip": pip_requirements(recipe, repo),
        "run": recipe.run,
        "static_binaries": dict(recipe.static_binaries),
        "host_files": dict(recipe.host_files),
        "inputs": recipe.inputs,
    }
    digest.update(json.dumps(build, sort_keys=True).encode())
    sources = [repo / source for source in recipe.static_binaries.values()]
    for path in [*sources, *_input_files(repo, recipe.inputs)]:
        digest.update(f"\nfile {path.relative_to(repo)}\n".encode())
        digest.update(path.read_bytes())
    for target in sorted(recipe.host_files):
        source = host_file(recipe.host_files[target])
        digest.update(f"\nhost file {target}\n".encode())
        digest.update(hashlib.sha256(source.read_bytes()).digest())
    return digest.hexdigest()


def image_hash(recipes: Mapping[str, Recipe], name: str, repo: Path = REPO) -> str:
    """The hash that tags image ``name``: its layers' hashes, its repository and config."""
    recipe = recipes[name]
    config = recipe.config
    described = {
        "layers": [layer_hash(recipes, step.name, repo) for step in chain(recipes, name)],
        "repository": recipe.repository,
        "config": {
            "user": config.user,
            "entrypoint": config.entrypoint,
            "cmd": config.cmd,
            "workdir": config.workdir,
            "env": dict(config.env),
            "labels": dict(config.labels),
        },
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def host_file(source: str) -> Path:
    """A recipe's host file: absolute, or relative to the cache directory."""
    path = Path(source) if source.startswith("/") else cache_dir() / source
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (hack/setup.sh installs it)")
    return path


def reference(recipe: Recipe, inputs_hash: str) -> str:
    """The image reference: the recipe's repository tagged with its inputs' hash."""
    return f"{recipe.repository}:{inputs_hash[:16]}"


@dataclass(frozen=True)
class BuiltImage:
    """One image in the cache: its OCI archive and the reference containerd imports it as."""

    name: str
    ref: str
    archive: Path
    inputs: str
    """image_hash() of the recipe it was built from."""
    size: int
    """Bytes of the archive (the image uncompressed: the layers are plain tar)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "archive": self.archive.name,
            "inputs": self.inputs,
            "size": self.size,
        }


def images_dir(cache: Path | None = None) -> Path:
    """Where the images are built: ``<cache>/images`` (``WARMPOOL_IMAGES`` overrides)."""
    configured = os.environ.get("WARMPOOL_IMAGES")
    if configured:
        return Path(configured)
    return (cache or cache_dir()) / "images"


def read_manifest(directory: Path | None = None) -> dict[str, BuiltImage]:
    """The images recorded in ``<images dir>/manifest.json`` (empty when there is none)."""
    directory = directory or images_dir()
    path = directory / MANIFEST
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        name: BuiltImage(
            name=name,
            ref=entry["ref"],
            archive=directory / entry["archive"],
            inputs=entry["inputs"],
            size=int(entry["size"]),
        )
        for name, entry in data.get("images", {}).items()
    }


def write_manifest(images: Mapping[str, BuiltImage], directory: Path | None = None) -> Path:
    """Record ``images`` (atomically: a reader sees the old manifest or the new one)."""
    directory = directory or images_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST
    body = {"images": {name: images[name].to_json() for name in sorted(images)}}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(body, indent=2) + "\n")
    temporary.replace(path)
    return path


def built_image(name: str, *, directory: Path | None = None, repo: Path = REPO) -> BuiltImage:
    """Image ``name``, built from the inputs in ``repo`` as they are now.

    Raises ImagesNotBuiltError when it was never built, its archive is gone, or an input
    changed since (the image would not be the code under test).
    """
    image = read_manifest(directory).get(name)
    hint = "run hack/build-images.sh (make setup builds every image)"
    if image is None or not image.archive.is_file():
        raise ImagesNotBuiltError(f"image {name} is not built: {hint}")
    current = image_hash(load_recipes(repo), name, repo)
    if image.inputs != current:
        raise ImagesNotBuiltError(f"image {name} ({image.ref}) is older than its inputs: {hint}")
    return image


def built_images(*, directory: Path | None = None, repo: Path = REPO) -> dict[str, BuiltImage]:
    """Every image the local node runs (IMAGE_NAMES), each current (see built_image)."""
    return {name: built_image(name, directory=directory, repo=repo) for name in IMAGE_NAMES}
