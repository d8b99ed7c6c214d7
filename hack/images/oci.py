"""Layers and OCI image archives from plain directories (stdlib only; no Docker, no registry).

A layer is an uncompressed tar of a directory: entries sorted, owners numeric, no user names.
An overlayfs upper directory becomes a layer with its whiteouts translated to OCI's
(`.wh.<name>` for a deleted file, `.wh..wh..opq` for a directory that replaced the one below).
An archive is an OCI image layout in one tar, named for containerd with the
`io.containerd.image.name` annotation, so `ctr images import` tags it without a registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# The time of entries made up here (whiteouts, archive members).
EPOCH = 0
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
OPAQUE_XATTR = "trusted.overlay.opaque"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk and its sha256 (the digest and the diff ID: it is not compressed)."""

    path: Path
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size}

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> Layer:
        return cls(path=path, digest=str(data["digest"]), size=int(data["size"]))


class _HashingWriter(io.RawIOBase):
    """A file that hashes and counts what is written through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.target.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


def _walk(root: Path, directory: Path, excluded: frozenset[str]) -> Iterator[Path]:
    """Every path under directory, sorted, parents before children; the contents of the
    `excluded` directories (relative to root) left out."""
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        yield path
        inside = path.relative_to(root).as_posix() not in excluded
        if entry.is_dir(follow_symlinks=False) and inside:
            yield from _walk(root, path, excluded)


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_layer(
    root: Path,
    target: Path,
    *,
    overlay_upper: bool = False,
    exclude_contents_of: Sequence[str] = (),
) -> Layer:
    """Tar ``root`` into ``target``. ``overlay_upper``: root is an overlayfs upper directory
    (translate its whiteouts). ``exclude_contents_of``: directories (relative) kept empty."""
    excluded = frozenset(exclude_contents_of)
    temporary = target.with_name(target.name + ".tmp")
    with temporary.open("wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            hardlinks: dict[tuple[int, int], str] = {}
            for path in _walk(root, root, excluded):
                name = path.relative_to(root).as_posix()
                info = path.lstat()
                if overlay_upper and _is_whiteout(info):
                    whiteout = tarfile.TarInfo(_sibling(name, ".wh." + path.name))
                    whiteout.mtime = EPOCH
                    tar.addfile(whiteout, io.BytesIO(b""))
                    continue
                entry = tar.gettarinfo(str(path), arcname=name)
                # Real times: a venv's .pyc files record their source's mtime, and a mismatch
                # would make every import compile again (the root filesystem is read-only).
                entry.uname = entry.gname = ""
                entry.pax_headers = {}
                if entry.isreg() and info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    if key in hardlinks:
                        entry.type = tarfile.LNKTYPE
                        entry.linkname = hardlinks[key]
                        entry.size = 0
                        tar.addfile(entry)
                        continue
                    hardlinks[key] = name
                if entry.isreg():
                    with path.open("rb") as content:
                        tar.addfile(entry, content)
                elif entry.isdir() or entry.issym() or entry.islnk():
                    tar.addfile(entry)
                    if entry.isdir() and overlay_upper and _is_opaque(path):
                        opaque = tarfile.TarInfo(f"{name}/.wh..wh..opq")
                        tar.addfile(opaque, io.BytesIO(b""))
                # Device nodes, sockets and FIFOs stay out: the runtime provides /dev.
    temporary.replace(target)
    return Layer(path=target, digest="sha256:" + writer.digest.hexdigest(), size=writer.size)


def _sibling(name: str, replacement: str) -> str:
    head, _, _ = name.rpartition("/")
    return f"{head}/{replacement}" if head else replacement


@dataclass(frozen=True)
class Config:
    """The parts of the OCI image config a recipe sets."""

    user: str
    entrypoint: Sequence[str]
    cmd: Sequence[str]
    workdir: str
    env: Mapping[str, str]
    labels: Mapping[str, str]


def _blob(data: dict[str, Any]) -> tuple[bytes, str]:
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, body: bytes) -> None:
    entry = tarfile.TarInfo(name)
    entry.size = len(body)
    entry.mode = 0o644
    tar.addfile(entry, io.BytesIO(body))


def write_archive(
    target: Path, *, ref: str, layers: Sequence[Layer], config: Config, history: Sequence[str]
) -> int:
    """Write an OCI image-layout archive for ``ref`` with ``layers`` (bottom first); its size."""
    env = dict(config.env)
    env.setdefault("PATH", DEFAULT_PATH)
    image_config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": config.user,
            "Entrypoint": list(config.entrypoint),
            "Cmd": list(config.cmd) or None,
            "WorkingDir": config.workdir,
            "Env": [f"{key}={value}" for key, value in env.items()],
            "Labels": dict(config.labels),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created_by": step, "created": "1970-01-01T00:00:00Z"} for step in history],
    }
    config_body, config_digest = _blob(image_config)
    manifest_body, manifest_digest = _blob(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": len(config_body),
            },
            "layers": [
                {"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
    )
    tag = ref.rpartition(":")[2]
    index_body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": manifest_digest,
                    "size": len(manifest_body),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        },
        indent=2,
    ).encode()
    temporary = target.with_name(target.name + ".tmp")
    with tarfile.open(temporary, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(tar, "index.json", index_body)
        for digest, body in ((config_digest, config_body), (manifest_digest, manifest_body)):
            _add_bytes(tar, "blobs/sha256/" + digest.removeprefix("sha256:"), body)
        for layer in layers:
            entry = tar.gettarinfo(str(layer.path), arcname=_blob_name(layer.digest))
            entry.mtime = EPOCH
            entry.uname = entry.gname = ""
            with layer.path.open("rb") as content:
                tar.addfile(entry, content)
    temporary.replace(target)
    return target.stat().st_size


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")
