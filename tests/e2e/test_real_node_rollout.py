"""A roll-out under GPU scarcity on the real node: strategy Auto surges, the real scheduler finds
no free GPU for the surged replica, the pool falls back to replacing in place, and the real
kubelet runs the new revision's replicas warm while the old ones leave.

The pool's two replicas of one GPU each hold both GPUs of the node (and no other node offers
any), so a surge cannot place. A new revision (an environment variable of the server) leaves its
surged pod `Unschedulable` ("Insufficient nvidia.com/gpu" from the real scheduler); after
`spec.rollout.surgeTimeoutSeconds` the operator renders Replace: the Deployment controller
removes an old replica, the kubelet releases its GPU through the device plugin, the successor
starts in it (real prefetch from S3, real Triton, the real warm-up sidecar opens its gate), and
so on. On the way: status.rollout says Replace and why, Progressing says ReplacingInPlace, one
Warning Event RolloutFallback, kstatus/Argo CD/Flux say InProgress/Progressing while serving,
and warm replicas never drop below replicas - maxUnavailable. At the end every tool says the
pool is Current/Healthy, and only warm pods of the new revision are left.

Real: the control plane (scheduler GPU accounting, Deployment controller), kubelet, containerd,
runc, CNI, kube-proxy, `warmpool operator`, prefetch from versitygw, CPU Triton, `warmpool
warmup`, kubectl, the kstatus/Argo CD/Flux health code (tests/support/health.py). Stood in: the
GPUs (a device plugin advertising devices that do not exist).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
from operator_support import as_dict, condition, install_crd, pool_pods
from pool_support import running_operator
from real_node_support import REAL_NODE, REAL_NODE_GPUS, gpu_holders, gpu_nodes
from rollout_support import RolloutWatch, cond, observed, patch_spec, rolled_out
from test_operator import pool_events
from test_real_node_pool import (  # noqa: F401  (fixtures: cluster, node, s3)
    POD_TIMEOUT,
    cluster,
    create_pool,
    node,
    s3,
    wait_for,
)
from test_status_tools import HEALTHY, WORKING_SERVING, Verdicts, gpu_starved
from test_warmup_gate import gate_policy  # noqa: F401  (module fixture: chart RBAC + policy)

from support.health import find_harness
from support.s3 import S3Server
from warmpool.envtest import LocalCluster, RealNode, poll_until
from warmpool.envtest.images import built_image
from warmpool.envtest.realnode import REAL_NODE_LABEL
from warmpool.render.labels import REVISION_ANNOTATION
from warmpool.warmup.report import parse_message

#: `gpu_starved` (test_status_tools) reads the pods of a pool of this name.
POOL = "llama"
#: Seconds Auto lets the surged replica wait for a GPU: short beside a cold start, and the
#: least time the scheduler's verdict on it stays there for the test to read.
SURGE_TIMEOUT = 10
#: What the fallback may take off the warm replicas (spec.rollout.maxUnavailable's default).
MAX_UNAVAILABLE = 1


def kubelet_ready(api: kubernetes.client.ApiClient, namespace: str, name: str) -> bool:
    pod = as_dict(api, kubernetes.client.CoreV1Api(api).read_namespaced_pod(name, namespace))
    ready = condition(pod, "Ready")
    return ready is not None and ready["status"] == "True"


def fallbacks(local: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    return [e for e in pool_events(local, namespace, POOL) if e["reason"] == "RolloutFallback"]


def test_auto_replaces_in_place_on_the_real_node_when_no_gpu_is_free(
    cluster: LocalCluster,  # noqa: F811
    node: RealNode,  # noqa: F811
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    s3: S3Server,  # noqa: F811
    gate_policy: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    harness = find_harness()
    verdicts = Verdicts(cluster, harness)
    replicas = REAL_NODE_GPUS  # one GPU each: the pool holds every GPU of the node
    # Scarcity is the point: the real node is the only one with GPUs, and pods of earlier
    # tests (their namespaces are deleted without waiting) have released theirs.
    assert gpu_nodes(k8s) == {REAL_NODE: REAL_NODE_GPUS}
    poll_until(
        lambda: not gpu_holders(k8s, REAL_NODE),
        what="the node's GPUs released by earlier tests",
        timeout=POD_TIMEOUT,
        describe=lambda: str(gpu_holders(k8s, REAL_NODE)),
    )

    # The pool complete before the operator sees it: one first revision, no roll-out yet.
    install_crd(cluster, tmp_path)
    create_pool(k8s, node, namespace, s3, POOL, {"warmFloor": replicas, "maxReplicas": replicas})
    patch_spec(
        k8s,
        namespace,
        POOL,
        {
            "server": {"nodeSelector": {REAL_NODE_LABEL: "true"}},
            "rollout": {"strategy": "Auto", "surgeTimeoutSeconds": SURGE_TIMEOUT},
        },
    )
    agent = built_image("agent").ref
    with running_operator(cluster, namespace, tmp_path, ["--agent-image", agent]) as operator:
        first = wait_for(
            k8s,
            namespace,
            POOL,
            f"{replicas} warm replicas",
            lambda pool: rolled_out(pool, replicas),
            operator,
        )
        old_revision = first["status"]["rollout"]["revision"]
        old_pods = {p["metadata"]["name"] for p in pool_pods(k8s, namespace, POOL)}
        assert len(old_pods) == replicas
        assert verdicts.judge("real: ready", first) == HEALTHY

        # A new revision. Every check below also notes the warm replicas on the way.
        watch = RolloutWatch(k8s, namespace, POOL, replicas, old_revision, open_gates_here=False)
        patched = time.monotonic()
        patch_spec(k8s, namespace, POOL, {"server": {"env": [{"name": "ROLLOUT", "value": "2"}]}})

        def surge_starved(pool: dict[str, Any]) -> bool:
            watch(pool)
            revision = ((pool.get("status") or {}).get("rollout") or {}).get("revision")
            return (
                observed(pool)
                and revision not in (None, old_revision)
                and bool(gpu_starved(k8s, namespace, revision))
            )

        pool = wait_for(
            k8s,
            namespace,
            POOL,
            "the surged replica unschedulable for lack of a GPU",
            surge_starved,
            operator,
        )
        starved_at = time.monotonic()
        revision = pool["status"]["rollout"]["revision"]
        # The real scheduler's verdict on the surged pod ("0/1 nodes are available: 1
        # Insufficient nvidia.com/gpu. ..."), while both old replicas keep serving.
        print(f"scheduler: {gpu_starved(k8s, namespace, revision)}")

        def replacing(pool: dict[str, Any]) -> bool:
            watch(pool)
            return cond(pool, "Progressing") == ("True", "ReplacingInPlace")

        pool = wait_for(k8s, namespace, POOL, "Auto replacing in place", replacing, operator)
        fell_back_at = time.monotonic()
        rollout = pool["status"]["rollout"]
        assert (rollout["revision"], rollout["strategy"]) == (revision, "Replace")
        assert (
            f"no free nvidia.com/gpu for a surged replica after {SURGE_TIMEOUT} s"
            in rollout["fallback"]
        )
        assert cond(pool, "Reconciling") == ("True", "RollingOut")
        assert cond(pool, "Stalled") == ("False", "Progressing")
        assert verdicts.judge("real: replacing in place", pool) == WORKING_SERVING
        live = kubernetes.client.AppsV1Api(k8s).read_namespaced_deployment(POOL, namespace)
        assert (
            live.spec.strategy.rolling_update.max_surge,
            live.spec.strategy.rolling_update.max_unavailable,
        ) == (0, MAX_UNAVAILABLE)
        (event,) = poll_until(
            lambda: fallbacks(cluster, namespace),
            what="a RolloutFallback Event",
            timeout=POD_TIMEOUT,
        )
        assert event["type"] == "Warning" and revision in event["note"]

        pool = wait_for(
            k8s,
            namespace,
            POOL,
            "the new revision warm on the real kubelet, the old replicas gone",
            watch,
            operator,
            timeout=2 * POD_TIMEOUT,  # two successors, one after the other
        )
        done_at = time.monotonic()
        print(
            f"real-node Auto fallback: surged pod unschedulable {starved_at - patched:.1f} s "
            f"after the patch, fallback {fell_back_at - starved_at:.1f} s later, roll-out done "
            f"{done_at - fell_back_at:.1f} s after the fallback ({done_at - patched:.1f} s in "
            f"all); fewest warm replicas {watch.lowest_warm}/{replicas}; Progressing reasons "
            f"{sorted(watch.reasons)}"
        )
        assert watch.lowest_warm >= replicas - MAX_UNAVAILABLE
        assert "ReplacingInPlace" in watch.reasons
        rollout = pool["status"]["rollout"]
        assert (rollout["revision"], rollout["strategy"]) == (revision, "Replace")
        assert cond(pool, "Progressing") == ("True", "RolloutComplete")
        assert verdicts.judge("real: rolled out (replace)", pool) == HEALTHY
        assert len(fallbacks(cluster, namespace)) == 1

        # Only the new revision's replicas are left, each warm: its gate opened by the real
        # warm-up sidecar after real inferences, and the kubelet made it Ready.
        pods = pool_pods(k8s, namespace, POOL)
        assert len(pods) == replicas
        assert not old_pods & {p["metadata"]["name"] for p in pods}
        for pod in pods:
            name = pod["metadata"]["name"]
            assert pod["metadata"]["annotations"][REVISION_ANNOTATION] == revision
            assert pod["metadata"].get("deletionTimestamp") is None
            assert pod["spec"]["nodeName"] == REAL_NODE
            gate = condition(pod, "warmpool.dev/warm")
            assert gate is not None and gate["status"] == "True", gate
            assert gate["reason"] == "WarmupSucceeded", gate
            assert int(parse_message(gate["message"])[0]["requests"]) > 0, gate
            poll_until(
                lambda name=name: kubelet_ready(k8s, namespace, name),
                what=f"the kubelet to make {name} Ready",
                timeout=60,
            )
    verdicts.record("real-node-auto-fallback")
