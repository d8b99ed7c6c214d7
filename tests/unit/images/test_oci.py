"""hack/images/oci.py: layers from directories (overlay whiteouts translated) and OCI archives
that containerd can import: the layout, the digests and the name annotation checked here on
real files (importing into containerd is the real-node tier's)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "hack" / "images"))

from oci import OPAQUE_XATTR, Config, write_archive, write_layer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_layer_is_the_directory_sorted_with_numeric_owners(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "opt/app/bin").mkdir(parents=True)
    (root / "opt/app/bin/tool").write_text("#!/bin/sh\n")
    (root / "opt/app/bin/tool").chmod(0o755)
    (root / "opt/app/link").symlink_to("bin/tool")
    os.link(root / "opt/app/bin/tool", root / "opt/app/hard")
    (root / "proc/1").mkdir(parents=True)  # contents excluded, the directory kept
    layer = write_layer(root, tmp_path / "layer.tar", exclude_contents_of=["proc"])
    data = (tmp_path / "layer.tar").read_bytes()
    assert layer.digest == sha256(data) and layer.size == len(data)
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    names = list(members)
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert "proc" in names and "proc/1" not in names
    assert members["opt/app/bin/tool"].mode & 0o111
    assert members["opt/app/link"].issym() and members["opt/app/link"].linkname == "bin/tool"
    assert members["opt/app/hard"].islnk() or members["opt/app/bin/tool"].islnk()
    assert all(m.uname == "" and m.gname == "" for m in members.values())


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0/0 device node: mknod needs root")
def test_overlay_whiteouts_become_oci_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc/replaced").mkdir(parents=True)
    os.mknod(upper / "etc/deleted", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.setxattr(upper / "etc/replaced", OPAQUE_XATTR, b"y")
    write_layer(upper, tmp_path / "layer.tar", overlay_upper=True)
    with tarfile.open(tmp_path / "layer.tar") as tar:
        names = tar.getnames()
    assert "etc/.wh.deleted" in names and "etc/deleted" not in names
    assert "etc/replaced/.wh..wh..opq" in names


def test_archive_is_an_oci_layout_named_for_containerd(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "pause").write_bytes(b"\x7fELF")
    layer = write_layer(root, tmp_path / "layer.tar")
    ref = "localhost/warmpool/pause:0123456789abcdef"
    config = Config(
        user="65535:65535",
        entrypoint=["/pause"],
        cmd=[],
        workdir="/",
        env={},
        labels={"a": "b"},
    )
    size = write_archive(tmp_path / "image.tar", ref=ref, layers=[layer], config=config, history=[])
    assert size == (tmp_path / "image.tar").stat().st_size
    with tarfile.open(tmp_path / "image.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, body in files.items():  # every blob is named by its content's digest
        if name.startswith("blobs/sha256/"):
            assert sha256(body) == "sha256:" + name.rsplit("/", 1)[1]
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == ref
    manifest = json.loads(files["blobs/sha256/" + entry["digest"].removeprefix("sha256:")])
    assert [item["digest"] for item in manifest["layers"]] == [layer.digest]
    image = json.loads(
        files["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")]
    )
    assert image["rootfs"]["diff_ids"] == [layer.digest]
    assert image["config"]["User"] == "65535:65535"
    assert image["config"]["Entrypoint"] == ["/pause"]
    assert (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        in image["config"]["Env"]
    )
