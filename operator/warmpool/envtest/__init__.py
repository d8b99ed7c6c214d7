"""A real local Kubernetes control plane for warmpool's tests and demo.

Development tooling, like controller-runtime's envtest: the operator never imports it at
runtime. :class:`LocalCluster` runs etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (built by ``hack/build-binaries.sh`` from the ``k8s.io/kubernetes`` Go
module) and KWOK, which plays the kubelet for fake GPU nodes with the pod stages in
``hack/kwok/stages/`` (readiness gates honoured, not forced True), and real nodes beside them
(:meth:`LocalCluster.add_real_node`: kubelet, containerd, runc, CNI, kube-proxy in namespaces
of their own, see realnode.py). See ``docs/development.md``.
"""

from warmpool.envtest.binaries import (
    BinaryNotFoundError,
    ControlPlaneBinaries,
    NodeBinaries,
    find_binary,
)
from warmpool.envtest.cluster import LocalCluster
from warmpool.envtest.health import ClusterStartError, ConditionTimeoutError, poll_until
from warmpool.envtest.nodes import build_gpu_node
from warmpool.envtest.realnode import RealNode

__all__ = [
    "BinaryNotFoundError",
    "ClusterStartError",
    "ConditionTimeoutError",
    "ControlPlaneBinaries",
    "LocalCluster",
    "NodeBinaries",
    "RealNode",
    "build_gpu_node",
    "find_binary",
    "poll_until",
]
