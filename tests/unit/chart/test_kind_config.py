"""kind-config.yaml: a kind v1alpha4 Cluster with a GPU-labelled worker and the cache mount."""

from __future__ import annotations

from typing import Any

import yaml
from chart_support import REPO

from warmpool.api.spec import CacheSpec

# Keys of kind's v1alpha4 Cluster and Node (sigs.k8s.io/kind/pkg/apis/config/v1alpha4): kind
# decodes its config strictly, so an unknown key fails `kind create cluster`.
CLUSTER_KEYS = {
    "kind", "apiVersion", "name", "nodes", "networking", "featureGates", "runtimeConfig",
    "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902", "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}  # fmt: skip
NODE_KEYS = {
    "role", "image", "labels", "extraMounts", "extraPortMappings", "gpus",
    "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902",
}  # fmt: skip
MOUNT_KEYS = {"hostPath", "containerPath", "readOnly", "selinuxRelabel", "propagation"}


def load() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    return config


def test_kind_cluster() -> None:
    config = load()
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    assert set(config) <= CLUSTER_KEYS
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker"]
    for node in config["nodes"]:
        assert set(node) <= NODE_KEYS
        for mount in node.get("extraMounts", []):
            assert set(mount) <= MOUNT_KEYS


def test_worker_looks_like_a_gpu_node_with_a_model_cache() -> None:
    worker = load()["nodes"][1]
    labels = worker["labels"]
    # Strings: kind passes labels to the kubelet, whose label values are strings.
    assert all(isinstance(value, str) for value in labels.values())
    assert labels["nvidia.com/gpu.product"]
    assert int(labels["nvidia.com/gpu.count"]) >= 1
    mounts = {mount["containerPath"]: mount for mount in worker["extraMounts"]}
    # The node cache's default hostPath (spec.cache.path) lives on the mounted host directory.
    assert mounts[CacheSpec().path]["hostPath"].startswith("/")
