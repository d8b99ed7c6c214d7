"""The warm-up sidecar's identity: ServiceAccount and RoleBinding `<pool>-warmup` (pure).

The RoleBinding grants, in the pool's namespace only, the chart's ClusterRole `warmpool-warmup`
(patch pods/status only): enough to open the pod's readiness gate and nothing more.
"""

from __future__ import annotations

from warmpool.api.resource import InferencePool
from warmpool.render.common import Obj, object_meta
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import warmup_service_account
from warmpool.render.labels import WARMUP


def build_service_account(pool: InferencePool) -> Obj:
    """ServiceAccount `<pool>-warmup`; no token is ever mounted automatically."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(pool, warmup_service_account(pool), WARMUP),
        "automountServiceAccountToken": False,
    }


def build_role_binding(pool: InferencePool, config: RenderConfig) -> Obj:
    """RoleBinding `<pool>-warmup` to the ClusterRole config.warmup_cluster_role."""
    name = warmup_service_account(pool)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(pool, name, WARMUP),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": config.warmup_cluster_role,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": name, "namespace": pool.metadata.namespace}
        ],
    }
