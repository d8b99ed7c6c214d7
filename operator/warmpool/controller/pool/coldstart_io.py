"""The cold-start work of a sync that reads or writes pods' surroundings: splitting node
provisioning and image pulls out of a measured cold start (reads the node and the kubelet's
Events), and lifting the autoscaler hints off replicas once warm (patches the pod).

The accounting itself is pure (`coldstart.py`); these are its I/O edges, called by the pool
reconciler with its client and watch cache.
"""

from __future__ import annotations

import logging

from warmpool.api.status import ColdStart
from warmpool.contract import Obj, parse_time
from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.pool.coldstart import image_pulls, pod_cold_start
from warmpool.controller.pool.pods import is_warm
from warmpool.render.disruption import COLD_START_HINTS

logger = logging.getLogger(__name__)


async def split_cold_starts(
    client: KubeClient, namespace: str, pods: list[Obj], cold_starts: list[ColdStart]
) -> list[ColdStart]:
    """Cold starts with node provisioning and image pulls split out: two reads per cold
    start (its node, its kubelet Events), never on a sync without one. A read that fails
    leaves that part unsplit rather than the cold start unreported."""
    by_name = {str((p.get("metadata") or {}).get("name")): p for p in pods}
    split: list[ColdStart] = []
    for cold_start in cold_starts:
        pod = by_name.get(cold_start.pod)
        if pod is None:
            split.append(cold_start)
            continue
        node_created = None
        node_name = (pod.get("spec") or {}).get("nodeName")
        try:
            if node_name:
                node = await client.get(ObjectRef("v1", "Node", str(node_name), None))
                node_created = parse_time(
                    ((node or {}).get("metadata") or {}).get("creationTimestamp")
                )
            uid = (pod.get("metadata") or {}).get("uid")
            events = await client.list(
                "v1", "Event", namespace, field_selector=f"involvedObject.uid={uid}"
            )
        except ApiError as error:
            logger.warning("cold start of %s not split: %s", cold_start.pod, error)
            split.append(cold_start)
            continue
        measured = pod_cold_start(pod, node_created=node_created, pulls=image_pulls(events))
        split.append(measured if measured is not None else cold_start)
    return split


async def lift_cold_start_hints(
    client: KubeClient, cache: WatchCache, namespace: str, pods: list[Obj], warmup_enabled: bool
) -> int:
    """Remove the autoscaler hints from warm pods: once warm, a replica may be moved like
    any other (its PodDisruptionBudget still guards the floor). One patch per pod, once."""
    writes = 0
    for pod in pods:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        hints = [name for name in COLD_START_HINTS if name in annotations]
        if not hints or not is_warm(pod, warmup_enabled):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ref = ObjectRef("v1", "Pod", str(pod["metadata"]["name"]), namespace)
        try:
            patched = await client.merge_patch(
                ref, {"metadata": {"annotations": dict.fromkeys(hints)}}
            )
        except ApiError as error:
            if error.status == 404:
                continue  # gone meanwhile
            raise
        cache.observe_pod(None, patched)
        writes += 1
    return writes
