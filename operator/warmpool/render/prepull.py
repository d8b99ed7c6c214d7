"""DaemonSet `<pool>-prepull`: the pool's weights on every eligible node, ahead of need (pure).

Each pod runs `warmpool prefetch` into the node cache (no --dest) as an init container, then only
holds its place with a pause container, which keeps the copy marked in use (so the cache never
evicts it) and makes the pod Ready. The operator labels a node whose pre-pull pod is Ready for the
current model fingerprint with `prepull.warmpool.dev/<sha1(ns/pool)[:16]>=<fingerprint>`; the
Deployment prefers such nodes. Pre-pull pods request no GPU: they fit beside full GPU nodes'
replicas, and they never carry `warmpool.dev/pool` (they are not replicas).
"""

from __future__ import annotations

from warmpool.api.resource import InferencePool
from warmpool.render.common import (
    Obj,
    container_security_context,
    image_pull_secrets,
    object_meta,
    placement,
    pod_security_context,
    resources,
)
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import cache_owner_container, prefetch_container
from warmpool.render.labels import (
    MODEL_FINGERPRINT_ANNOTATION,
    PREPULL,
    component_selector,
    model_fingerprint,
    recommended_labels,
)
from warmpool.render.volumes import (
    REF_VOLUME,
    TMP_VOLUME,
    cache_volume,
    credentials_file_volume,
    model_source,
)


def prepull_name(pool: InferencePool) -> str:
    return f"{pool.metadata.name}-prepull"


def build_prepull_daemonset(pool: InferencePool, config: RenderConfig) -> Obj:
    """The pre-pull DaemonSet, on the nodes the replicas may run on."""
    name = pool.metadata.name
    fingerprint = model_fingerprint(pool.spec.model)
    source = model_source(pool, config)
    volumes = [cache_volume(pool)]
    if source.volume is not None:
        volumes.append(source.volume)
    credentials = credentials_file_volume(pool)
    if credentials is not None:
        volumes.append(credentials)
    volumes += [{"name": REF_VOLUME, "emptyDir": {}}, {"name": TMP_VOLUME, "emptyDir": {}}]
    spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(config),
    }
    pull_secrets = image_pull_secrets(pool)
    if pull_secrets:
        spec["imagePullSecrets"] = pull_secrets
    spec |= placement(pool)
    owner = cache_owner_container(pool, config)
    init_containers = [owner] if owner is not None else []
    init_containers.append(prefetch_container(pool, config, source=source, dest=None))
    spec |= {
        "initContainers": init_containers,
        "containers": [
            {
                "name": "hold",
                "image": config.pause_image,
                "imagePullPolicy": "IfNotPresent",
                "resources": resources(config.hold_resources),
                "securityContext": container_security_context(),
            }
        ],
        "terminationGracePeriodSeconds": 5,
        "volumes": volumes,
    }
    meta = object_meta(pool, prepull_name(pool), PREPULL)
    meta["annotations"] = {MODEL_FINGERPRINT_ANNOTATION: fingerprint}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": component_selector(name, PREPULL)},
            # Several nodes fetch a new revision at once; the old copy serves meanwhile.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            "revisionHistoryLimit": config.revision_history_limit,
            "template": {
                "metadata": {
                    "labels": recommended_labels(name, PREPULL),
                    # The operator reads which weights a Ready pre-pull pod holds from here.
                    "annotations": {MODEL_FINGERPRINT_ANNOTATION: fingerprint},
                },
                "spec": spec,
            },
        },
    }
