"""Where the control-plane binaries are: the cache ``hack/build-binaries.sh`` fills, or
explicit overrides in the environment.

Cache layout: ``${WARMPOOL_CACHE:-~/.cache/warmpool}/bin/<component>-<version>/<binary>``;
the newest version of each component wins. ``WARMPOOL_<BINARY>`` (for example
``WARMPOOL_KUBE_APISERVER=/usr/local/bin/kube-apiserver``) points at one binary directly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# binary name -> cache directory prefix (<prefix>-<version>/) it is built into
_COMPONENT_OF = {
    "etcd": "etcd",
    "kube-apiserver": "kubernetes",
    "kube-controller-manager": "kubernetes",
    "kube-scheduler": "kubernetes",
    "kubectl": "kubernetes",
    "kwok": "kwok",
    "helm": "helm",
}


class BinaryNotFoundError(FileNotFoundError):
    """A binary is neither in the cache nor given by an environment override."""


def cache_dir() -> Path:
    """The root of warmpool's build cache (``$WARMPOOL_CACHE`` or ``~/.cache/warmpool``)."""
    configured = os.environ.get("WARMPOOL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "warmpool"


def find_binary(name: str) -> Path:
    """The path of binary ``name`` (one of etcd, kube-apiserver, kube-controller-manager,
    kube-scheduler, kubectl, kwok, helm)."""
    override = os.environ.get("WARMPOOL_" + name.upper().replace("-", "_"))
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise BinaryNotFoundError(f"{name}: override {path} is not an executable file")
        return path
    component = _COMPONENT_OF[name]
    candidates = [
        d / name
        for d in (cache_dir() / "bin").glob(f"{component}-v*")
        if d.is_dir() and ".tmp." not in d.name and os.access(d / name, os.X_OK)
    ]
    if not candidates:
        raise BinaryNotFoundError(
            f"{name} not found under {cache_dir() / 'bin'}/{component}-<version>/ "
            "(run hack/build-binaries.sh)"
        )
    return max(candidates, key=lambda p: _version_key(p.parent.name))


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """The binaries a LocalCluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path

    @classmethod
    def discover(cls) -> ControlPlaneBinaries:
        """Find every binary; raises BinaryNotFoundError naming the first one missing."""
        return cls(
            etcd=find_binary("etcd"),
            kube_apiserver=find_binary("kube-apiserver"),
            kube_controller_manager=find_binary("kube-controller-manager"),
            kube_scheduler=find_binary("kube-scheduler"),
            kwok=find_binary("kwok"),
        )


def _version_key(directory_name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", directory_name.rsplit("-v", 1)[-1]))


def _newest_component_dir(component: str, required: str) -> Path:
    """``<cache>/bin/<component>-v<version>/`` holding ``required``, newest version first."""
    candidates = [
        d
        for d in (cache_dir() / "bin").glob(f"{component}-v*")
        if d.is_dir() and ".tmp." not in d.name and os.access(d / required, os.X_OK)
    ]
    if not candidates:
        raise BinaryNotFoundError(
            f"{required} not found under {cache_dir() / 'bin'}/{component}-<version>/ "
            "(run hack/build-node.sh; make setup does)"
        )
    return max(candidates, key=lambda d: _version_key(d.name))


@dataclass(frozen=True)
class NodeBinaries:
    """What a real node runs, from the cache ``hack/build-node.sh`` fills."""

    kube_node: Path
    """The multi-call binary: kubelet, kube-proxy, fake-gpu-plugin."""
    containerd_dir: Path
    """containerd, containerd-shim-runc-v2 (found by containerd on PATH), ctr."""
    debs_dir: Path
    """Debian's runc, iptables, conntrack (wrappers in bin/) and CNI plugins (cni/)."""

    @classmethod
    def discover(cls) -> NodeBinaries:
        """Find every part; raises BinaryNotFoundError naming the first one missing."""
        return cls(
            kube_node=_newest_component_dir("kube-node", "kubelet") / "kube-node",
            containerd_dir=_newest_component_dir("containerd", "containerd-shim-runc-v2"),
            debs_dir=_newest_component_dir("node-debs", "bin/runc"),
        )

    @property
    def containerd(self) -> Path:
        return self.containerd_dir / "containerd"

    @property
    def ctr(self) -> Path:
        return self.containerd_dir / "ctr"

    @property
    def runc(self) -> Path:
        return self.debs_dir / "bin" / "runc"

    @property
    def cni_bin(self) -> Path:
        return (self.debs_dir / "cni").resolve()

    @property
    def path(self) -> str:
        """PATH for the node's processes: the shim, iptables and conntrack first."""
        return f"{self.containerd_dir}:{self.debs_dir / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
