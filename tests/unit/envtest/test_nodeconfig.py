"""A real node's configuration (warmpool.envtest.nodeconfig, components): pure, no node."""

from __future__ import annotations

import tomllib
from pathlib import Path

from warmpool.envtest.components import Layout, Ports, apiserver_argv, egress_selector_config
from warmpool.envtest.nodeconfig import (
    REGISTRY_HOST,
    NodeLayout,
    NodeNetwork,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
    registry_config,
    registry_hosts_toml,
)


def test_a_node_owns_its_ip_and_its_pod_and_service_addresses_only() -> None:
    network = NodeNetwork()
    for own in ("10.200.0.2", "10.244.0.17", "10.244.3.1", "10.96.0.1"):
        assert network.owns(own), own
    for other in ("10.200.0.1", "192.168.1.1", "8.8.8.8", "127.0.0.1", "node-0"):
        assert not network.owns(other), other


def test_pods_get_one_default_route_via_the_bridge_and_no_masquerading() -> None:
    bridge = cni_config(NodeNetwork())["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["isDefaultGateway"] is True
    assert bridge["ipMasq"] is False
    # A second 0.0.0.0/0 from IPAM makes the plugin fail with "file exists".
    assert "routes" not in bridge["ipam"]


def test_every_fixed_path_the_runtime_uses_is_a_mount_of_the_node_state(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path)
    targets = {target for _, target in layout.mounts()}
    assert {"/run", "/var/lib", "/var/log", "/var/cache"} <= targets
    assert all(tmp_path in source.parents for source, _ in layout.mounts())
    config = tomllib.loads(
        containerd_config(
            layout, runc=Path("/x/runc"), cni_bin=Path("/x/cni"), sandbox_image="local/pause:1"
        )
    )
    assert config["root"] == str(layout.containerd_root)
    cri = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["conf_dir"] == str(layout.cni_conf_dir)
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == "local/pause:1"


def test_containerd_pulls_the_registry_host_over_http_from_the_nodes_loopback(
    tmp_path: Path,
) -> None:
    layout = NodeLayout(tmp_path)
    config = tomllib.loads(
        containerd_config(layout, runc=Path("/r"), cni_bin=Path("/c"), sandbox_image="p:1")
    )
    registry = config["plugins"]["io.containerd.cri.v1.images"]["registry"]
    assert registry["config_path"] == str(layout.registry_hosts)
    hosts = tomllib.loads(registry_hosts_toml())
    assert hosts == {"server": "http://127.0.0.1:5000"}
    assert REGISTRY_HOST.endswith(".test")  # a name no resolver answers
    served = registry_config(layout.registry)
    assert served["http"]["addr"] == "127.0.0.1:5000"
    assert served["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "registry")


def test_kubelet_and_kube_proxy_listen_only_inside_the_node(tmp_path: Path) -> None:
    network = NodeNetwork()
    kubelet = kubelet_config(
        network=network, cgroup_root="/wp", ca_cert=tmp_path / "ca", resolv_conf=tmp_path / "r"
    )
    assert kubelet["address"] == network.node_ip and kubelet["readOnlyPort"] == 0
    assert kubelet["cgroupRoot"] == "/wp" and kubelet["failCgroupV1"] is False
    assert kubelet["clusterDNS"] == []
    proxy = kube_proxy_config(network=network, kubeconfig=tmp_path / "k", node_name="n")
    assert proxy["nodePortAddresses"] == [f"{network.node_ip}/32"]
    # Global conntrack settings are left as the kernel has them.
    assert proxy["conntrack"]["maxPerCore"] == 0


def test_the_apiserver_sends_its_cluster_traffic_through_the_egress_proxy(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    (selection,) = egress_selector_config(layout)["egressSelections"]
    assert selection["name"] == "cluster"
    assert selection["connection"]["transport"]["uds"]["udsName"] == str(layout.egress_socket)
    argv = apiserver_argv(Path("/kube-apiserver"), layout, Ports(1, 2, 3, 4, 5, 6))
    assert f"--egress-selector-config-file={layout.egress_config}" in argv
    assert "--kubelet-preferred-address-types=InternalIP" in argv
