"""Deployment `<pool>-headroom`: low-priority placeholders holding one replica's GPUs each (pure).

A cluster autoscaler keeps (or adds) nodes for pending placeholders; when a real replica needs
the room, the scheduler preempts a placeholder (PriorityClass `warmpool-headroom`, value -10,
from the chart) instead of waiting minutes for a new node. Placeholder pods never carry
`warmpool.dev/pool`: they are not replicas.
"""

from __future__ import annotations

from warmpool.api.resource import InferencePool
from warmpool.render.common import (
    Obj,
    container_security_context,
    gpu_resources,
    object_meta,
    placement,
    pod_security_context,
    resources,
)
from warmpool.render.config import RenderConfig
from warmpool.render.labels import HEADROOM, component_selector, recommended_labels


def headroom_name(pool: InferencePool) -> str:
    return f"{pool.metadata.name}-headroom"


def _placeholder_resources(pool: InferencePool) -> Obj:
    # One replica's requests (GPUs, and the server's CPU and memory), so a preempted
    # placeholder leaves exactly the room a replica needs.
    requests = {k: str(v) for k, v in pool.spec.server.resources.requests.items()}
    gpus = gpu_resources(pool)
    return resources({"requests": requests | gpus, "limits": gpus})


def build_headroom_deployment(pool: InferencePool, config: RenderConfig) -> Obj:
    """spec.headroom.placeholders pause pods at the headroom priority."""
    name = pool.metadata.name
    spec: Obj = {
        "priorityClassName": pool.spec.headroom.priority_class_name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(config),
        # Preemption must free the room at once.
        "terminationGracePeriodSeconds": 0,
    }
    spec |= placement(pool)
    spec |= {
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": component_selector(name, HEADROOM)},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
        "containers": [
            {
                "name": "placeholder",
                "image": config.pause_image,
                "imagePullPolicy": "IfNotPresent",
                "resources": _placeholder_resources(pool),
                "securityContext": container_security_context(),
            }
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(pool, headroom_name(pool), HEADROOM),
        "spec": {
            "replicas": pool.spec.headroom.placeholders,
            "selector": {"matchLabels": component_selector(name, HEADROOM)},
            "revisionHistoryLimit": config.revision_history_limit,
            "template": {
                "metadata": {"labels": recommended_labels(name, HEADROOM)},
                "spec": spec,
            },
        },
    }
