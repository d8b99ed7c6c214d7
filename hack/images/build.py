"""Build warmpool's container images without Docker or a registry (run by hack/build-images.sh).

Each image is its parent's layers plus one layer of its own, built from its recipe
(``images/<name>/recipe.toml``, read by ``warmpool.envtest.images``):

- ``from = "debootstrap"``: a Debian root filesystem (``debootstrap --variant=minbase``, the
  recipe's apt packages included), kept as a directory so images can be built on top of it;
- ``from = "scratch"``: only the recipe's static binaries (``gcc -static``);
- ``from = "<recipe>"``: the parent's root mounted read-only under an overlayfs, the recipe's
  apt packages, venv, pip packages and steps run in a chroot of it (a private mount namespace,
  a clean environment, the host's CA bundle), and the overlay's upper directory is the layer.

A layer is cached under ``<images dir>/layers/<name>-<hash>/`` keyed by ``layer_hash`` (its
recipe, its parent's hash, its input files), so a code change rebuilds the agent's and the
operator's layers and nothing below them. Each image becomes one OCI archive,
``<images dir>/<name>-<hash>.oci.tar``, recorded in ``manifest.json`` with its reference.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oci import Config, Layer, write_archive, write_layer

from warmpool.envtest import images as catalog

REPO = Path(__file__).resolve().parents[2]
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The root filesystem's directories whose contents never go into a layer.
RUNTIME_DIRS = ("dev", "proc", "sys", "tmp", "run")


def log(message: str) -> None:
    print(f"[build-images] {message}", file=sys.stderr, flush=True)


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (WARMPOOL_DEBIAN_MIRROR overrides)."""
    configured = os.environ.get("WARMPOOL_DEBIAN_MIRROR")
    if configured:
        return configured
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources"))
    for path in sources:
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and "security" not in words[1]:
                return words[1]
    return "http://deb.debian.org/debian"


def host_ca_bundle() -> Path:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("no CA bundle on the host (set PIP_CERT): pip in the chroot needs one")


def run(command: list[str], **kwargs: object) -> None:
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


class Builder:
    def __init__(self, directory: Path, *, force: bool) -> None:
        self.directory = directory
        self.layers_dir = directory / "layers"
        self.recipes = catalog.load_recipes(REPO)
        self.force = force
        # Each hashed once, before its layer is built: an input edited during the build must
        # not move a layer's directory under it (the next run rebuilds from the edited input).
        self.layer_hashes: dict[str, str] = {}
        self.image_hashes: dict[str, str] = {}
        self.wheel: Path | None = None
        self.scratch = Path(tempfile.mkdtemp(prefix="warmpool-images-"))

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    # --- layers ---------------------------------------------------------------------------

    def layer_dir(self, name: str) -> Path:
        # Keyed by content, not by name: recipes that build the same files share the layer.
        if name not in self.layer_hashes:
            self.layer_hashes[name] = catalog.layer_hash(self.recipes, name, REPO)
        return self.layers_dir / self.layer_hashes[name][:16]

    def tree(self, name: str) -> Path:
        """The layer's files: a whole root for debootstrap/scratch, an overlay upper else."""
        return self.layer_dir(name) / "tree"

    def layer(self, name: str) -> Layer:
        """Image ``name``'s own layer, built unless cached (its parents' first)."""
        directory = self.layer_dir(name)
        record = directory / "layer.json"
        if record.exists() and not self.force:
            return Layer.from_json(directory / "layer.tar", json.loads(record.read_text()))
        recipe = self.recipes[name]
        if recipe.parent not in (catalog.SCRATCH, catalog.DEBOOTSTRAP):
            self.layer(recipe.parent)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        started = time.monotonic()
        if recipe.parent == catalog.DEBOOTSTRAP:
            self.debootstrap(recipe, self.tree(name))
            layer = write_layer(
                self.tree(name), directory / "layer.tar", exclude_contents_of=RUNTIME_DIRS
            )
        elif recipe.parent == catalog.SCRATCH:
            self.compile_static(recipe, self.tree(name))
            layer = write_layer(self.tree(name), directory / "layer.tar")
        else:
            self.chroot_build(recipe, directory)
            layer = write_layer(
                self.tree(name),
                directory / "layer.tar",
                overlay_upper=True,
                exclude_contents_of=RUNTIME_DIRS,
            )
            if not self.is_parent(name):
                shutil.rmtree(self.tree(name))
        record.write_text(json.dumps(layer.to_json()) + "\n")
        log(f"layer {name}: {layer.size / 2**20:.0f} MiB in {time.monotonic() - started:.0f} s")
        return layer

    def is_parent(self, name: str) -> bool:
        return any(recipe.parent == name for recipe in self.recipes.values())

    def debootstrap(self, recipe: catalog.Recipe, root: Path) -> None:
        mirror = debian_mirror()
        log(f"debootstrap --variant={recipe.variant} {recipe.suite} from {mirror}")
        command = ["debootstrap", f"--variant={recipe.variant}"]
        if recipe.apt:
            command.append("--include=" + ",".join(recipe.apt))
        # debootstrap mounts /proc and /sys in the target: a private mount namespace takes them
        # away with it, even when debootstrap fails halfway.
        private = ["unshare", "--mount", "--propagation", "private", "--fork"]
        run([*private, *command, recipe.suite, str(root), mirror], stdout=subprocess.DEVNULL)
        # What apt downloaded and logged is no part of the image; the resolver the host uses
        # is not either (the kubelet gives each container its own resolv.conf).
        for pattern in (
            "var/lib/apt/lists/*",
            "var/cache/apt/*.bin",
            "var/cache/apt/archives/*.deb",
            "var/log/*.log",
            "var/log/apt/*",
        ):
            for path in root.glob(pattern):
                if path.is_file():
                    path.unlink()
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("")
        (root / "etc/hostname").write_text("localhost\n")
        if recipe.run:
            inside = " && ".join(recipe.run)
            log(f"chroot steps of {recipe.name}: {inside}")
            chroot = ["chroot", str(root), "/usr/bin/env", "-i", f"PATH={CHROOT_PATH}"]
            run([*private, *chroot, "/bin/sh", "-euc", inside])

    def compile_static(self, recipe: catalog.Recipe, root: Path) -> None:
        root.mkdir(parents=True)
        for target, source in recipe.static_binaries.items():
            output = root / target.lstrip("/")
            output.parent.mkdir(parents=True, exist_ok=True)
            log(f"gcc -static {source} -> {target}")
            run(["gcc", "-static", "-O2", "-s", "-o", str(output), str(REPO / source)])

    def build_wheel(self) -> Path:
        """A wheel of this repository, built from exactly what the Dockerfiles copy."""
        if self.wheel is None:
            source = self.scratch / "source"
            source.mkdir()
            for name in ("pyproject.toml", "README.md"):
                shutil.copy2(REPO / name, source / name)
            shutil.copytree(
                REPO / "operator",
                source / "operator",
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
            )
            wheels = self.scratch / "wheels"
            log("pip wheel --no-deps (this repository)")
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--no-deps",
                    "--no-build-isolation",
                    "--no-index",
                    "-w",
                    str(wheels),
                    ".",
                ],
                cwd=source,
            )
            (self.wheel,) = wheels.glob("warmpool-*.whl")
        return self.wheel

    def steps(self, recipe: catalog.Recipe, wheel_dir: str) -> list[str]:
        """The shell steps that build the recipe's layer inside the chroot."""
        steps: list[str] = []
        if recipe.apt:
            packages = " ".join(shlex.quote(p) for p in recipe.apt)
            steps += [
                "apt-get update -qq",
                f"apt-get install -y -qq --no-install-recommends {packages} >/dev/null",
                "apt-get clean",
                "rm -rf /var/lib/apt/lists/*",
            ]
        ancestors = catalog.chain(self.recipes, recipe.name)[:-1]
        if recipe.venv and all(ancestor.venv != recipe.venv for ancestor in ancestors):
            steps.append(f"python3 -m venv {shlex.quote(recipe.venv)}")
        requirements = catalog.pip_requirements(recipe, REPO)
        if requirements:
            arguments = []
            for requirement in requirements:
                if requirement == catalog.WHEEL:
                    arguments.append(f"{wheel_dir}/{self.build_wheel().name}")
                else:
                    arguments.append(shlex.quote(requirement))
            steps.append(f"{shlex.quote(recipe.venv)}/bin/pip install -q {' '.join(arguments)}")
        steps += list(recipe.run)
        return steps

    def chroot_build(self, recipe: catalog.Recipe, directory: Path) -> None:
        lowers = []
        parent = recipe.parent
        while parent not in (catalog.SCRATCH, catalog.DEBOOTSTRAP):
            lowers.append(str(self.tree(parent)))
            parent = self.recipes[parent].parent
        wheel = self.build_wheel() if catalog.WHEEL in recipe.pip else None
        upper, work, merged = directory / "tree", directory / "work", directory / "merged"
        for path in (upper, work, merged):
            path.mkdir()
        for target, source in recipe.host_files.items():
            # Into the upper directory before the overlay is mounted: it shows through.
            copied = upper / target.lstrip("/")
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(catalog.host_file(source), copied)
        environment = {
            "PATH": CHROOT_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "PIP_CERT": "/tmp/build/ca.crt",
            "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
        }
        inside = " && ".join(self.steps(recipe, "/tmp/build"))
        if not inside:  # only copied files: nothing to run
            work.rmdir()
            merged.rmdir()
            return
        chroot = ["chroot", str(merged), "/usr/bin/env", "-i"]
        chroot += [f"{key}={value}" for key, value in environment.items()]
        chroot += ["/bin/bash", "-euo", "pipefail", "-c", inside]
        # All mounts live in a private mount namespace: they vanish with it, even on failure.
        script = f"""
            mount -t overlay overlay \
                -o lowerdir={":".join(lowers)},upperdir={upper},workdir={work} {merged}
            mount -t proc proc {merged}/proc
            mount --rbind /dev {merged}/dev
            mount -t tmpfs tmpfs {merged}/tmp
            mount --bind /etc/resolv.conf {merged}/etc/resolv.conf
            mkdir -p {merged}/tmp/build
            cp {host_ca_bundle()} {merged}/tmp/build/ca.crt
            {f"cp {wheel} {merged}/tmp/build/" if wheel else ""}
            exec {shlex.join(chroot)}
        """
        log(f"chroot build of {recipe.name}: {inside}")
        run(["unshare", "--mount", "--propagation", "private", "--fork", "bash", "-euc", script])
        shutil.rmtree(work)
        merged.rmdir()

    # --- images ---------------------------------------------------------------------------

    def image(self, name: str) -> catalog.BuiltImage:
        inputs = self.image_hashes.setdefault(name, catalog.image_hash(self.recipes, name, REPO))
        recipe = self.recipes[name]
        ref = catalog.reference(recipe, inputs)
        archive = self.directory / f"{name}-{inputs[:16]}.oci.tar"
        existing = catalog.read_manifest(self.directory).get(name)
        if existing and existing.inputs == inputs and archive.is_file() and not self.force:
            return existing
        layers = [self.layer(step.name) for step in catalog.chain(self.recipes, name)]
        started = time.monotonic()
        config = recipe.config
        size = write_archive(
            archive,
            ref=ref,
            layers=layers,
            config=Config(
                user=config.user,
                entrypoint=config.entrypoint,
                cmd=config.cmd,
                workdir=config.workdir,
                env=config.env,
                labels=config.labels,
            ),
            history=[
                f"warmpool hack/images/build.py {step.path.relative_to(REPO)}"
                for step in catalog.chain(self.recipes, name)
            ],
        )
        packed = time.monotonic() - started
        log(f"image {ref}: {size / 2**20:.0f} MiB ({archive.name}, packed in {packed:.0f} s)")
        self.prune(self.directory, f"{name}-", keep=archive.name, suffix=".oci.tar")
        return catalog.BuiltImage(name=name, ref=ref, archive=archive, inputs=inputs, size=size)

    def prune_layers(self) -> None:
        """Remove layers no recipe builds any more (older inputs)."""
        current = set()
        for name in self.recipes:
            try:
                current.add(self.layer_dir(name).name)
            except FileNotFoundError:  # a demo image whose binary is not installed yet
                continue
        for path in self.layers_dir.iterdir():
            if path.is_dir() and path.name not in current:
                shutil.rmtree(path)

    @staticmethod
    def prune(directory: Path, prefix: str, *, keep: str, suffix: str = "") -> None:
        """Remove older builds of the same thing (other hashes): the cache does not grow."""
        for path in directory.glob(f"{prefix}*{suffix}"):
            rest = path.name.removeprefix(prefix).removesuffix(suffix)
            if path.name != keep and len(rest) == 16 and all(c in "0123456789abcdef" for c in rest):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "names", nargs="*", help="images to build (default: the node's and the demo's)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    names = args.names or [*catalog.IMAGE_NAMES, *catalog.DEMO_IMAGE_NAMES]
    directory = catalog.images_dir()
    directory.mkdir(parents=True, exist_ok=True)
    builder = Builder(directory, force=args.force)
    try:
        built: Mapping[str, catalog.BuiltImage] = catalog.read_manifest(directory)
        updated = dict(built)
        for name in names:
            started = time.monotonic()
            updated[name] = builder.image(name)
            catalog.write_manifest(updated, directory)
            elapsed = time.monotonic() - started
            image = updated[name]
            log(f"{name}: {image.ref} ({image.size / 2**20:.0f} MiB, {elapsed:.0f} s)")
        builder.prune_layers()
    finally:
        builder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
