"""Shared by the e2e tests of status, roll-outs and disruption: an operator of one test, KWOK
nodes with one GPU each, pool manifests, and the reads and writes those tests repeat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes
from node_support import OwnGpuNodes
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    VERSION,
    OperatorProcess,
    condition,
    install_crd,
    open_gate,
    pool_pods,
)
from test_operator import now_rfc3339

from warmpool.envtest import LocalCluster


def pool_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An InferencePool of a tiny model; `spec` adds or replaces top-level spec sections."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "s3://models/tiny"}, **spec},
    }


@contextmanager
def one_gpu_nodes(
    cluster: LocalCluster, api: kubernetes.client.ApiClient, tag: str, count: int
) -> Iterator[OwnGpuNodes]:
    """`count` KWOK nodes of one GPU each, only for this test's pools; deleted afterwards."""
    nodes = OwnGpuNodes(cluster, api, tag)
    for letter in "abcdefgh"[:count]:
        nodes.add(letter, gpus=1)
    try:
        yield nodes
    finally:
        nodes.delete_all()


@contextmanager
def own_operator(
    cluster: LocalCluster, namespace: str, workdir: Path, *extra: str
) -> Iterator[OperatorProcess]:
    """The CRD installed and `warmpool operator` watching `namespace` (admin identity: the
    chart's RBAC is exercised by test_rbac_minimum.py); stopped afterwards."""
    process = start_operator(cluster, namespace, workdir, *extra)
    try:
        yield process
    finally:
        process.stop()


def start_operator(
    cluster: LocalCluster, namespace: str, workdir: Path, *extra: str
) -> OperatorProcess:
    install_crd(cluster, workdir)
    kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
    return OperatorProcess(
        cluster, kubeconfig, cluster.logs_dir, extra=["--namespace", namespace, *extra]
    )


def cond(pool: dict[str, Any], kind: str) -> tuple[str, str] | None:
    found = condition(pool, kind)
    return (found["status"], found["reason"]) if found else None


def observed(pool: dict[str, Any]) -> bool:
    status = pool.get("status") or {}
    return status.get("observedGeneration") == pool["metadata"]["generation"]


def patch_spec(api: kubernetes.client.ApiClient, namespace: str, name: str, spec: Any) -> None:
    kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )


def open_gates(api: kubernetes.client.ApiClient, namespace: str, name: str) -> int:
    """Open the warm gate of every running pod of the pool whose gate is closed."""
    opened = 0
    for pod in pool_pods(api, namespace, name):
        ready = condition(pod, "ContainersReady")
        gate = condition(pod, "warmpool.dev/warm")
        if ready and ready["status"] == "True" and not (gate and gate["status"] == "True"):
            open_gate(api, namespace, pod["metadata"]["name"], now_rfc3339())
            opened += 1
    return opened


def rolled_out(pool: dict[str, Any], replicas: int) -> bool:
    """Every replica of the current revision warm, none of an older one, nothing left to
    reconcile."""
    rollout = (pool.get("status") or {}).get("rollout") or {}
    return (
        observed(pool)
        and rollout.get("warmReplicas") == replicas
        and rollout.get("oldReplicas") == 0
        and cond(pool, "Reconciling") == ("False", "Reconciled")
    )


def settled(api: kubernetes.client.ApiClient, namespace: str, name: str, replicas: int) -> Any:
    """A `wait_pool` check: `rolled_out`, the gates opened here as the warm-up sidecar would
    (KWOK pods run none)."""

    def check(pool: dict[str, Any]) -> bool:
        open_gates(api, namespace, name)
        return rolled_out(pool, replicas)

    return check


class RolloutWatch:
    """A `wait_pool` check for a roll-out away from revision `away_from` to finish (`settled`
    at `replicas`; `rolled_out` where a real warm-up sidecar opens the gates), noting on the
    way the fewest warm replicas and every Progressing reason the pool showed."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        replicas: int,
        away_from: str,
        *,
        open_gates_here: bool = True,
    ) -> None:
        self.settled: Callable[[dict[str, Any]], bool] = (
            settled(api, namespace, name, replicas)
            if open_gates_here
            else lambda pool: rolled_out(pool, replicas)
        )
        self.away_from = away_from
        self.lowest_warm = replicas
        self.reasons: set[str] = set()

    def __call__(self, pool: dict[str, Any]) -> bool:
        if observed(pool):
            status = pool.get("status") or {}
            self.lowest_warm = min(self.lowest_warm, int(status.get("warmReplicas", 0)))
            self.reasons.add((cond(pool, "Progressing") or ("", ""))[1])
        return bool(self.settled(pool)) and pool["status"]["rollout"]["revision"] != self.away_from
