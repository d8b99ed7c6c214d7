"""An OCI registry on a real node, so that its kubelet really pulls an image.

The built images (images.py) are otherwise imported straight into the node's containerd and
the kubelet only ever reports them "already present on machine". :meth:`RealNode.start_registry`
runs the CNCF distribution registry (Debian's ``docker-registry``, unpacked by
``hack/build-node.sh``) in the node's network namespace, on its loopback (REGISTRY_ADDRESS);
containerd pulls ``REGISTRY_HOST/...`` references from it over plain HTTP (its hosts.toml,
nodeconfig.py). :class:`NodeRegistry` pushes into it with ``crane`` run in the same namespace:
no packet of a push or a pull leaves the node.

containerd fetches only the layers whose snapshots the node lacks, so an image pushed as it
was imported would "pull" its manifest and config alone: :func:`fresh_layer` makes a layer no
node has yet, appended to a built image, which the pull must then fetch and unpack.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from warmpool.envtest.binaries import _newest_component_dir
from warmpool.envtest.nodeconfig import REGISTRY_ADDRESS, REGISTRY_HOST

PUSH_TIMEOUT = 600.0
"""A push of a built image (hundreds of MB) on a loaded machine."""


@dataclass(frozen=True)
class RegistryBinaries:
    """The registry and the client that pushes into it, from ``hack/build-node.sh``'s cache."""

    registry: Path
    crane: Path

    @classmethod
    def discover(cls) -> RegistryBinaries:
        """Find both; raises BinaryNotFoundError naming the first one missing."""
        return cls(
            registry=_newest_component_dir("distribution", "registry") / "registry",
            crane=_newest_component_dir("crane", "crane") / "crane",
        )


class NodeCommands(Protocol):
    """What a registry needs from its node: running a command in its namespaces."""

    def run(self, argv: Sequence[str], timeout: float = ...) -> str: ...


class NodeRegistry:
    """The registry a node pulls from: references for it, and pushes into it."""

    def __init__(self, node: NodeCommands, crane: Path, scratch: Path) -> None:
        self._node = node
        self._crane_binary = crane
        self._scratch = scratch

    @staticmethod
    def reference(repository: str, tag: str) -> str:
        """``repository:tag`` as the node's kubelet pulls it (``REGISTRY_HOST/...``)."""
        return f"{REGISTRY_HOST}/{repository}:{tag}"

    @staticmethod
    def _push_target(repository: str, tag: str) -> str:
        host, port = REGISTRY_ADDRESS
        return f"{host}:{port}/{repository}:{tag}"

    def _crane(self, *args: str) -> str:
        return self._node.run([str(self._crane_binary), "--insecure", *args], timeout=PUSH_TIMEOUT)

    def push_archive(self, archive: Path, repository: str, tag: str) -> str:
        """Push the OCI archive ``archive`` (one image, as hack/build-images.sh writes it) as
        ``repository:tag``; its pull reference. crane pushes an OCI layout directory, so the
        archive is unpacked into the scratch directory for the push and removed after."""
        layout = self._scratch / f"{archive.name}.layout"
        shutil.rmtree(layout, ignore_errors=True)
        layout.mkdir(parents=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(layout, filter="data")
            self._crane("push", str(layout), self._push_target(repository, tag))
        finally:
            shutil.rmtree(layout, ignore_errors=True)
        return self.reference(repository, tag)

    def append_layer(self, base: tuple[str, str], layer: Path, tag: str) -> str:
        """Push ``base`` (repository, tag, already in this registry) with the layer tarball
        ``layer`` on top as ``<repository>:<tag>``; its pull reference."""
        repository, base_tag = base
        self._crane(
            "append",
            "--base",
            self._push_target(repository, base_tag),
            "--new_layer",
            str(layer),
            "--new_tag",
            self._push_target(repository, tag),
        )
        return self.reference(repository, tag)


def fresh_layer(path: Path, size: int, member: str = "var/lib/warmpool-pull/payload") -> Path:
    """Write a layer tarball to ``path`` holding one file, ``member``, of ``size`` random
    bytes: content no node has, which a pull must fetch (random: compression cannot shrink
    it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(member)
        info.size = size
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return path
