"""KWOK GPU nodes owned by one test, shared by the e2e modules that need their own nodes."""

from __future__ import annotations

import uuid
from typing import Any

import kubernetes

from warmpool.envtest import LocalCluster


class OwnGpuNodes:
    """KWOK GPU nodes of one test: a GPU product of their own and a taint only that test's
    pools tolerate, so no other pool lands on them (nor theirs elsewhere); deleted at the end.

    `tag` names the test (`prepull`, `faults`): the taint is `warmpool.dev/e2e-<tag>`, the
    product `E2E-<TAG>-<suffix>`, the nodes `<tag[:2]>-<suffix>-<letter>`.
    """

    def __init__(self, cluster: LocalCluster, api: kubernetes.client.ApiClient, tag: str) -> None:
        self.cluster = cluster
        self.core: Any = kubernetes.client.CoreV1Api(api)
        self.taint_key = f"warmpool.dev/e2e-{tag}"
        self.suffix = uuid.uuid4().hex[:6]
        self.product = f"E2E-{tag.upper()}-{self.suffix}"
        self._prefix = f"{tag[:2]}-{self.suffix}"
        self.names: list[str] = []

    def add(self, letter: str, gpus: int = 2) -> str:
        name = f"{self._prefix}-{letter}"
        self.names.append(name)
        self.cluster.add_gpu_node(
            name,
            gpus=gpus,
            product=self.product,
            taints=[{"key": self.taint_key, "value": "true", "effect": "NoSchedule"}],
        )
        return name

    def server_spec(self) -> dict[str, Any]:
        """`spec.server` of a pool that runs on these nodes only."""
        return {
            "gpu": {"count": 1, "product": self.product},
            "tolerations": [{"key": self.taint_key, "operator": "Exists", "effect": "NoSchedule"}],
        }

    def labels(self, key: str) -> dict[str, str]:
        """node -> value of label `key`, over these nodes."""
        found: dict[str, str] = {}
        for node in self.core.list_node(label_selector=key).items:
            if node.metadata.name in self.names:
                found[node.metadata.name] = node.metadata.labels[key]
        return found

    def labelled(self, key: str, nodes: list[str]) -> dict[str, str] | None:
        """The labels when exactly `nodes` carry `key`, else None (a poll_until probe)."""
        found = self.labels(key)
        return found if sorted(found) == sorted(nodes) else None

    def delete(self, name: str) -> None:
        try:
            self.core.delete_node(name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    def delete_all(self) -> None:
        for name in self.names:
            self.delete(name)
