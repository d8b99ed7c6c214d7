"""How a real node's components are configured: kubelet, kube-proxy, containerd, the CNI
network, and the addresses of the node's network namespace (pure; no I/O).

Every address here exists only inside the node's own network namespace (realnode.py), which
has no default route: the same addresses in two nodes of two clusters never meet.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmpool.envtest.components import SERVICE_CLUSTER_IP_RANGE

# The kubelet and containerd use these fixed paths whatever their flags say (the device
# plugin directory, pod logs, CNI state, netns bind mounts); inside the node's private mount
# namespace each is a directory of the node's state directory (see NodeLayout.mounts).
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
KUBELET_DIR = "/var/lib/kubelet"
DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
GPU_RESOURCE = "nvidia.com/gpu"
CNI_NETWORK = "warmpool"
REGISTRY_HOST = "registry.node.warmpool.test"
"""The registry host in image references the node pulls (``<host>/warmpool/x:tag``): a name
under ``.test`` that nothing resolves; containerd's hosts.toml for it points at the registry on
the node's own loopback (REGISTRY_ADDRESS), so no lookup or packet ever leaves the node."""
REGISTRY_ADDRESS = ("127.0.0.1", 5000)
"""Where the node's registry listens: the loopback of the node's network namespace."""


@dataclass(frozen=True)
class NodeNetwork:
    """The addresses inside one node's network namespace."""

    node_ip: str = "10.200.0.2"
    """On the namespace's ``lo`` (this kernel has no dummy links): the kubelet's node IP,
    and where the apiserver relay listens for pods (the ``kubernetes`` Service's
    endpoint)."""
    pod_cidr: str = "10.244.0.0/24"
    """The CNI bridge's subnet (host-local IPAM); its first address is the pods' gateway."""
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = SERVICE_CLUSTER_IP_RANGE
    bridge: str = "cni0"

    def owns(self, address: str) -> bool:
        """Whether ``address`` is one of this node's: its IP, a pod's, or a Service's."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return (
            str(ip) == self.node_ip
            or ip in ipaddress.ip_network(self.cluster_cidr)
            or ip in ipaddress.ip_network(self.service_cidr)
        )


@dataclass(frozen=True)
class NodeLayout:
    """Where one node's files live under its state directory."""

    root: Path

    @property
    def run(self) -> Path:
        """Mounted on /run (containerd's socket and state, pod netns files, iptables lock)."""
        return self.root / "run"

    @property
    def var_lib(self) -> Path:
        """Mounted on /var/lib: kubelet (device plugins, pods), cni (IPAM), containerd."""
        return self.root / "var-lib"

    @property
    def var_log(self) -> Path:
        """Mounted on /var/log: the kubelet's pod and container logs."""
        return self.root / "var-log"

    @property
    def var_cache(self) -> Path:
        """Mounted on /var/cache: node caches of hostPath volumes (warmpool's weight cache,
        ``/var/cache/warmpool`` by default) stay in the node's state."""
        return self.root / "var-cache"

    @property
    def containerd_root(self) -> Path:
        return self.var_lib / "containerd"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def registry_hosts(self) -> Path:
        """containerd's registry ``config_path``: ``<registry host>/hosts.toml`` files."""
        return self.config / "registry-hosts"

    @property
    def registry(self) -> Path:
        """The node registry's storage."""
        return self.root / "registry"

    @property
    def registry_scratch(self) -> Path:
        """Where pushes unpack the archives they push."""
        return self.root / "registry-push"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def mounts(self) -> list[tuple[Path, str]]:
        """(state directory, mount point) pairs bind-mounted in the node's mount namespace."""
        return [
            (self.run, "/run"),
            (self.var_lib, "/var/lib"),
            (self.var_log, "/var/log"),
            (self.var_cache, "/var/cache"),
        ]


def containerd_config(layout: NodeLayout, *, runc: Path, cni_bin: Path, sandbox_image: str) -> str:
    """containerd 2.x configuration (version 3): CRI with runc (cgroupfs), overlayfs, the
    CNI plugins and configuration of this node, and the locally imported pause image."""
    return f"""version = 3
root = {json.dumps(str(layout.containerd_root))}
state = "/run/containerd"

[grpc]
  address = {json.dumps(CONTAINERD_SOCKET)}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {json.dumps(sandbox_image)}
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = {json.dumps(str(layout.registry_hosts))}

[plugins."io.containerd.cri.v1.runtime"]
  # This machine's root lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused, and
  # runc then fails to create the pause container. Keep scores at or above containerd's.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = {json.dumps(str(runc))}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{json.dumps(str(cni_bin))}]
    conf_dir = {json.dumps(str(layout.cni_conf_dir))}
"""


def registry_hosts_toml() -> str:
    """containerd's hosts.toml for REGISTRY_HOST: pull and resolve from the node's registry
    over plain HTTP (containerd would otherwise try HTTPS on port 443 of that name)."""
    host, port = REGISTRY_ADDRESS
    return f'server = "http://{host}:{port}"\n'


def registry_config(storage: Path) -> dict[str, Any]:
    """The CNCF distribution registry's configuration: filesystem storage under ``storage``,
    plain HTTP on REGISTRY_ADDRESS, no auth, no storage health poll (it would log every
    10 s)."""
    host, port = REGISTRY_ADDRESS
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"{host}:{port}"},
        "health": {"storagedriver": {"enabled": False}},
    }


def cni_config(network: NodeNetwork) -> dict[str, Any]:
    """A bridge network: pods on ``cni0`` in ``pod_cidr``, their default route via the
    bridge (the node's namespace, which routes nowhere else); no masquerading."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": True,
                "isDefaultGateway": True,
                "ipMasq": False,
                # A pod reaching itself through its Service's ClusterIP.
                "hairpinMode": True,
                # isDefaultGateway gives pods their default route (via cni0).
                "ipam": {"type": "host-local", "ranges": [[{"subnet": network.pod_cidr}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    *, network: NodeNetwork, cgroup_root: str, ca_cert: Path, resolv_conf: Path
) -> dict[str, Any]:
    """KubeletConfiguration for this machine: cgroup v1 with the cgroupfs driver under a
    cgroup root of the node's own, swap allowed, no DNS, no kernel-default protection,
    evictions and image GC only when the disk is really full (imported images cannot be
    pulled back)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "address": network.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        # Only the apiserver reaches the kubelet (through the harness's egress proxy) and
        # it presents a certificate of the cluster CA.
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDomain": "cluster.local",
        "clusterDNS": [],
        "resolvConf": str(resolv_conf),
        "protectKernelDefaults": False,
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        # Checked every 2 s, written only on change: allocatable GPUs appear within seconds.
        "nodeStatusUpdateFrequency": "2s",
        "maxPods": 110,
    }


def kube_proxy_config(*, network: NodeNetwork, kubeconfig: Path, node_name: str) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode (IPVS is not in this kernel), NodePorts only
    on the node IP, conntrack settings left as the kernel has them (they are global)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "clusterCIDR": network.cluster_cidr,
        "bindAddress": network.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{network.node_ip}/32"],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False},
    }


RESOLV_CONF = "nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n"
"""Pods get a resolver that points nowhere outside: there is no cluster DNS, and the host's
resolver must never see their queries."""
