"""Manifests of fake GPU nodes that KWOK plays the kubelet for (pure; no I/O).

GPUs cannot exist on these machines: a node here is an API object whose status says it has
``nvidia.com/gpu`` devices, as the NVIDIA device plugin and GPU feature discovery would
report them, and KWOK moves pods bound to it through their lifecycle.

No ``kwok.x-k8s.io/node=fake:NoSchedule`` taint by default: KWOK's docs taint fake nodes so
that real pods of a mixed cluster stay off them, but every node of a LocalCluster is fake,
and a taint would force a toleration into every workload under test that production
manifests never carry. Pass ``taints`` to model tainted GPU pools
(``nvidia.com/gpu=present:NoSchedule`` is common).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_VALUE = "fake"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
DEFAULT_GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


def gpu_labels(gpus: int, product: str = DEFAULT_GPU_PRODUCT) -> dict[str, str]:
    """The labels GPU feature discovery puts on a node with ``gpus`` GPUs of ``product``."""
    return {
        GPU_PRODUCT_LABEL: product,
        GPU_COUNT_LABEL: str(gpus),
        "nvidia.com/gpu.present": "true",
    }


def build_gpu_node(
    name: str,
    *,
    gpus: int = 8,
    product: str = DEFAULT_GPU_PRODUCT,
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
    cpu: str = "96",
    memory: str = "1Ti",
    max_pods: int = 110,
) -> dict[str, Any]:
    """A Node that KWOK manages, with ``gpus`` allocatable ``nvidia.com/gpu`` of ``product``.

    Capacity is set at creation; KWOK's node-initialize stage keeps a status that exists.
    """
    resources = {
        "cpu": cpu,
        "memory": memory,
        "pods": str(max_pods),
        "ephemeral-storage": "1Ti",
        GPU_RESOURCE: str(gpus),
    }
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "gpu-fake",
        "type": "kwok",
        **gpu_labels(gpus, product),
        **(labels or {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"taints": [dict(t) for t in taints]},
        "status": {"capacity": resources, "allocatable": dict(resources)},
    }
