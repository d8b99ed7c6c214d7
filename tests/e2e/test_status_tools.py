"""What the GitOps tools say about a pool in every phase, on the real apiserver.

A pool is driven through its phases on KWOK nodes that hold exactly the GPUs it needs (two
nodes with one GPU each, two replicas of one GPU): warming up, Ready, a new revision that
cannot surge (no spare GPU) until its progress deadline (Stalled), the same roll-out switched
to Replace (it completes), a spec the operator cannot serve, a generation not yet observed, and
pools at zero with and without the activator. Strategy Auto on the same nodes waits for a GPU,
falls back to replacing in place and completes; with a headroom placeholder it surges. At each
phase the live object is judged by `kubectl wait` (the real kubectl), and by kstatus, Argo
CD's Lua and Flux's CEL through their own code (tests/support/health.py). The verdicts are
printed as a table and written to `<cluster logs>/pool-phases.json` with the objects they
judged.

Real: the control plane (Deployment controller and its progress deadline, scheduler GPU
accounting), kubectl, the operator. Mocked: kubelets and GPUs (KWOK), and the warm-up sidecar
(the test opens the warm gate through pods/status as the sidecar does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from node_support import OwnGpuNodes
from operator_support import (
    GROUP,
    PLURAL,
    TIMEOUT,
    condition,
    get_pool,
    install_crd,
    kubectl,
    pool_pods,
)
from rollout_support import (
    RolloutWatch,
    cond,
    observed,
    one_gpu_nodes,
    open_gates,
    own_operator,
    patch_spec,
    pool_manifest,
    settled,
    start_operator,
)
from test_headroom import headroom_priority_class  # noqa: F401  (a fixture)
from test_operator import create_pool, pool_events, wait_pool

from support.health import TOOLS, find_harness, judge
from warmpool.envtest import LocalCluster, poll_until
from warmpool.render.labels import REVISION_ANNOTATION

#: Seconds a roll-out may go without progress here: the Deployment controller's deadline.
DEADLINE = 30
#: Seconds strategy Auto lets a surged replica wait for a GPU here (long enough to see it wait).
SURGE_TIMEOUT = 15


@pytest.fixture(scope="module")
def harness() -> Path:
    return find_harness()


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    with one_gpu_nodes(cluster, k8s, "status", 2) as nodes:
        yield nodes


def verdict(kstatus: str, argocd: str, flux: str, ready: str, stalled: str) -> dict[str, str]:
    """A row of docs/gitops.md's table."""
    return {
        "kstatus": kstatus,
        "argocd": argocd,
        "flux": flux,
        "wait Ready": ready,
        "wait Stalled": stalled,
    }


WORKING = verdict("InProgress", "Progressing", "InProgress", "waits", "waits")
WORKING_SERVING = verdict("InProgress", "Progressing", "InProgress", "met", "waits")
HEALTHY = verdict("Current", "Healthy", "Current", "met", "waits")
STALLED_SERVING = verdict("Failed", "Degraded", "Failed", "met", "met")
IDLE_NO_ACTIVATOR = verdict("InProgress", "Suspended", "InProgress", "waits", "waits")


class Verdicts:
    """Each phase's verdicts from every tool, kept for the table and the JSON record."""

    def __init__(self, cluster: LocalCluster, harness: Path) -> None:
        self.cluster = cluster
        self.harness = harness
        self.rows: dict[str, dict[str, Any]] = {}

    def judge(self, phase: str, pool: dict[str, Any]) -> dict[str, str]:
        meta = pool["metadata"]
        ref = f"{PLURAL}.{GROUP}/{meta['name']}"
        row = {tool: judge(self.harness, tool, [pool])[0].status for tool in TOOLS}
        for kind in ("Ready", "Stalled"):
            waited = kubectl(
                self.cluster,
                "wait",
                "-n",
                meta["namespace"],
                ref,
                f"--for=condition={kind}",
                "--timeout=2s",
                check=False,
            )
            row[f"wait {kind}"] = "met" if waited.returncode == 0 else "waits"
        self.rows[phase] = {"verdicts": row, "object": pool}
        return row

    def record(self, name: str) -> None:
        path = self.cluster.logs_dir / f"pool-phases-{name}.json"
        path.write_text(json.dumps(self.rows, indent=2, default=str))
        columns = [*TOOLS, "wait Ready", "wait Stalled"]
        print(f"\n{'phase':<26}" + "".join(f"{c:<14}" for c in columns))
        for phase, row in self.rows.items():
            print(f"{phase:<26}" + "".join(f"{row['verdicts'][c]:<14}" for c in columns))


def test_every_phase_as_kubectl_kstatus_argo_and_flux_see_it(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    harness: Path,
    tmp_path: Path,
) -> None:
    verdicts = Verdicts(cluster, harness)
    operator = start_operator(cluster, namespace, tmp_path)
    try:
        server = gpu_nodes.server_spec()
        create_pool(
            k8s,
            pool_manifest(
                "llama",
                namespace,
                server=server,
                scaling={"warmFloor": 2, "maxReplicas": 2},
                rollout={"strategy": "Surge", "progressDeadlineSeconds": DEADLINE},
            ),
        )

        def running(count: int) -> Any:
            return lambda p: observed(p) and (p.get("status") or {}).get("readyReplicas") == count

        pool = wait_pool(k8s, namespace, "llama", "2 replicas running", running(2), operator)
        assert cond(pool, "Reconciling") == ("True", "WarmingUp")
        assert verdicts.judge("warming up", pool) == WORKING

        assert open_gates(k8s, namespace, "llama") == 2
        pool = wait_pool(
            k8s,
            namespace,
            "llama",
            "Ready",
            lambda p: cond(p, "Reconciling") == ("False", "Reconciled"),
            operator,
        )
        revision = pool["status"]["rollout"]["revision"]
        assert pool["status"]["rollout"]["warmReplicas"] == 2
        assert verdicts.judge("ready", pool) == HEALTHY
        wide = kubectl(cluster, "get", "ipool", "llama", "-n", namespace, "-o", "wide").stdout
        assert "REVISION" in wide and revision in wide and "LAST-COLD-START" in wide

        # A new revision, Surge: its pod finds no free GPU. The old replicas keep
        # serving (warm never drops below the floor) until the deadline: Stalled.
        patch_spec(k8s, namespace, "llama", {"server": {"image": "tritonserver:next"}})
        pool = wait_pool(
            k8s,
            namespace,
            "llama",
            "rolling out",
            lambda p: (
                observed(p) and (cond(p, "Reconciling") or ("",))[:2] == ("True", "RollingOut")
            ),
            operator,
        )
        assert pool["status"]["rollout"]["revision"] != revision
        assert pool["status"]["warmReplicas"] == 2
        assert verdicts.judge("rolling out (surge)", pool) == WORKING_SERVING
        pool = wait_pool(
            k8s,
            namespace,
            "llama",
            "Stalled after the progress deadline",
            lambda p: cond(p, "Stalled") == ("True", "RolloutStalled"),
            operator,
        )
        assert pool["status"]["warmReplicas"] == 2
        assert cond(pool, "Reconciling") == ("False", "Stalled")
        assert verdicts.judge("roll-out stalled", pool) == STALLED_SERVING

        # Replace: an old replica goes first, its GPU takes the new revision.
        patch_spec(k8s, namespace, "llama", {"rollout": {"strategy": "Replace"}})

        done = settled(k8s, namespace, "llama", 2)
        pool = wait_pool(k8s, namespace, "llama", "Replace roll-out done", done, operator)
        assert cond(pool, "Progressing") == ("True", "RolloutComplete")
        assert verdicts.judge("rolled out (replace)", pool)["kstatus"] == "Current"

        # A spec the operator cannot serve (an unknown time zone passes the schema).
        schedule = {"cron": "0 8 * * *", "timezone": "Mars/Olympus", "warmFloor": 1}
        patch_spec(
            k8s,
            namespace,
            "llama",
            {"scaling": {"schedules": [{**schedule, "durationMinutes": 60}]}},
        )
        pool = wait_pool(
            k8s,
            namespace,
            "llama",
            "Stalled: invalid spec",
            lambda p: observed(p) and cond(p, "Stalled") == ("True", "InvalidSpec"),
            operator,
        )
        assert verdicts.judge("invalid spec", pool) == STALLED_SERVING
        patch_spec(k8s, namespace, "llama", {"scaling": {"schedules": []}})
        wait_pool(
            k8s,
            namespace,
            "llama",
            "valid again",
            lambda p: observed(p) and cond(p, "Stalled") == ("False", "Progressing"),
            operator,
        )

        # At zero without an activator: nothing answers a request.
        idle_spec = {"warmFloor": 0, "maxReplicas": 1}
        create_pool(k8s, pool_manifest("idle", namespace, server=server, scaling=idle_spec))
        idle = wait_pool(
            k8s,
            namespace,
            "idle",
            "at zero",
            lambda p: observed(p) and cond(p, "ScaledToZero") == ("True", "ScaledToZero"),
            operator,
        )
        assert cond(idle, "Ready") == ("False", "ScaledToZeroNoActivator")
        assert verdicts.judge("at zero, no activator", idle) == IDLE_NO_ACTIVATOR
    finally:
        operator.stop()
    # The operator is down: a spec change is not observed.
    patch_spec(k8s, namespace, "llama", {"scaling": {"maxReplicas": 3}})
    pool = get_pool(k8s, namespace, "llama")
    assert not observed(pool)
    # kubectl wait reads a condition only when its observedGeneration is the object's
    assert verdicts.judge("generation not observed", pool) == WORKING
    verdicts.record("surge-replace")


def gpu_starved(api: kubernetes.client.ApiClient, namespace: str, revision: str) -> list[str]:
    """The scheduler's message for each pod of `revision` it keeps unschedulable for GPUs."""
    messages = []
    for pod in pool_pods(api, namespace, "llama"):
        annotations = pod["metadata"].get("annotations") or {}
        scheduled = condition(pod, "PodScheduled") or {}
        if annotations.get(REVISION_ANNOTATION) == revision and scheduled.get("status") == "False":
            messages.append(str(scheduled.get("message")))
    return [m for m in messages if "Insufficient nvidia.com/gpu" in m]


def test_auto_replaces_in_place_when_no_gpu_frees_for_the_surge(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    harness: Path,
    tmp_path: Path,
) -> None:
    """Strategy Auto (the default) on two 1-GPU nodes both held by the pool: the surged
    replica of a new revision stays unschedulable for lack of GPUs; after surgeTimeoutSeconds
    the roll-out replaces in place (Warning Event RolloutFallback) and completes, warm
    replicas dipping by one (maxUnavailable), never to zero, and never Stalled."""
    verdicts = Verdicts(cluster, harness)
    with own_operator(cluster, namespace, tmp_path) as operator:
        create_pool(
            k8s,
            pool_manifest(
                "llama",
                namespace,
                server=gpu_nodes.server_spec(),
                scaling={"warmFloor": 2, "maxReplicas": 2},
                rollout={"surgeTimeoutSeconds": SURGE_TIMEOUT},
            ),
        )
        two_warm = settled(k8s, namespace, "llama", 2)
        first = wait_pool(k8s, namespace, "llama", "2 warm", two_warm, operator)
        patch_spec(k8s, namespace, "llama", {"server": {"image": "tritonserver:next"}})

        def waiting(p: dict[str, Any]) -> bool:
            progressing = condition(p, "Progressing") or {}
            return observed(p) and "waits for a free nvidia.com/gpu" in str(
                progressing.get("message")
            )

        pool = wait_pool(k8s, namespace, "llama", "the surge waits for a GPU", waiting, operator)
        revision = pool["status"]["rollout"]["revision"]
        assert revision != first["status"]["rollout"]["revision"]
        assert gpu_starved(k8s, namespace, revision)  # the real scheduler's verdict
        assert pool["status"]["warmReplicas"] == 2
        assert verdicts.judge("auto: surge waits for GPU", pool) == WORKING_SERVING

        pool = wait_pool(
            k8s,
            namespace,
            "llama",
            "Auto fell back to replacing in place",
            lambda p: cond(p, "Progressing") == ("True", "ReplacingInPlace"),
            operator,
        )
        rollout = pool["status"]["rollout"]
        assert (rollout["revision"], rollout["strategy"]) == (revision, "Replace")
        assert (
            f"no free nvidia.com/gpu for a surged replica after {SURGE_TIMEOUT} s"
            in (rollout["fallback"])
        )
        assert cond(pool, "Stalled") == ("False", "Progressing")
        assert verdicts.judge("auto: replacing in place", pool) == WORKING_SERVING
        live = kubernetes.client.AppsV1Api(k8s).read_namespaced_deployment("llama", namespace)
        assert (
            live.spec.strategy.rolling_update.max_surge,
            live.spec.strategy.rolling_update.max_unavailable,
        ) == (0, 1)
        fallbacks = poll_until(
            lambda: [
                e
                for e in pool_events(cluster, namespace, "llama")
                if e["reason"] == "RolloutFallback"
            ],
            what="a RolloutFallback Event",
            timeout=TIMEOUT,
        )
        assert fallbacks[0]["type"] == "Warning" and revision in fallbacks[0]["note"]

        rolled = RolloutWatch(k8s, namespace, "llama", 2, first["status"]["rollout"]["revision"])
        pool = wait_pool(k8s, namespace, "llama", "the replaced roll-out done", rolled, operator)
        assert pool["status"]["rollout"]["revision"] == revision
        assert rolled.lowest_warm >= 1
        assert cond(pool, "Progressing") == ("True", "RolloutComplete")
        assert verdicts.judge("auto: rolled out", pool) == HEALTHY
        assert (
            len(
                [
                    e
                    for e in pool_events(cluster, namespace, "llama")
                    if e["reason"] == "RolloutFallback"
                ]
            )
            == 1
        )
    verdicts.record("auto-fallback")


def test_the_surge_timeout_must_be_below_the_progress_deadline(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """The CRD's CEL rule, on the real apiserver: Auto cannot wait for a GPU past the deadline
    (a Stalled would come first); Surge and Replace do not wait, so they may set both."""
    install_crd(cluster, tmp_path)
    rollout = {"surgeTimeoutSeconds": 60, "progressDeadlineSeconds": 60}
    with pytest.raises(kubernetes.client.ApiException) as refused:
        create_pool(k8s, pool_manifest("late", namespace, rollout=rollout))
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "spec.rollout.surgeTimeoutSeconds" in message
    assert "surgeTimeoutSeconds must be < progressDeadlineSeconds" in message
    create_pool(k8s, pool_manifest("fixed", namespace, rollout={**rollout, "strategy": "Surge"}))


def test_a_pool_at_zero_behind_the_activator_is_ready(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    harness: Path,
    tmp_path: Path,
) -> None:
    verdicts = Verdicts(cluster, harness)
    activator = f"{namespace}/warmpool-activator"
    with own_operator(cluster, namespace, tmp_path, "--activator-service", activator) as operator:
        create_pool(
            k8s, pool_manifest("idle", namespace, scaling={"warmFloor": 0, "maxReplicas": 1})
        )
        pool = wait_pool(
            k8s,
            namespace,
            "idle",
            "at zero behind the activator",
            lambda p: observed(p) and cond(p, "Ready") == ("True", "ScaledToZeroBehindActivator"),
            operator,
        )
        assert verdicts.judge("at zero, activator", pool) == HEALTHY
    verdicts.record("activator")


def test_a_new_pool_before_the_operator_writes_status(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    harness: Path,
    tmp_path: Path,
) -> None:
    """No operator runs: what the tools make of a pool with no status yet."""
    install_crd(cluster, tmp_path)
    verdicts = Verdicts(cluster, harness)
    created = create_pool(k8s, pool_manifest("fresh", namespace))
    pool = poll_until(lambda: get_pool(k8s, namespace, "fresh"), what="the pool", timeout=TIMEOUT)
    assert "status" not in pool or not pool["status"].get("conditions")
    row = verdicts.judge("no status yet", pool)
    assert row["argocd"] == "Progressing"
    assert row["kstatus"] == "Current"  # kstatus cannot tell it from a kind without conditions
    assert row["flux"] == "Error"  # no `status` for the expressions: kustomize-controller retries
    assert row["wait Ready"] == "waits"
    assert created["metadata"]["generation"] == 1
    verdicts.record("fresh")


@pytest.mark.usefixtures("headroom_priority_class")
def test_a_surge_into_headroom_completes_with_warm_replicas_at_the_floor(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Three 1-GPU nodes: two replicas and one headroom placeholder. A new revision surges into
    the placeholder's GPU (the replica preempts it), and an old replica leaves only once a new
    one is warm: warm replicas never drop below the floor of 2 on the way."""
    with (
        one_gpu_nodes(cluster, k8s, "surge", 3) as nodes,
        own_operator(cluster, namespace, tmp_path) as operator,
    ):
        create_pool(
            k8s,
            pool_manifest(
                "llama",
                namespace,
                server=nodes.server_spec(),
                scaling={"warmFloor": 2, "maxReplicas": 2},
                headroom={"placeholders": 1},
                # short: a preemption in flight must not read as "no GPU" (Auto, the default)
                rollout={"surgeTimeoutSeconds": 5},
            ),
        )

        two_warm = settled(k8s, namespace, "llama", 2)
        pool = wait_pool(k8s, namespace, "llama", "2 warm", two_warm, operator)
        first = pool["status"]["rollout"]["revision"]
        patch_spec(k8s, namespace, "llama", {"server": {"image": "tritonserver:next"}})
        rolled = RolloutWatch(k8s, namespace, "llama", 2, first)
        pool = wait_pool(k8s, namespace, "llama", "the surge roll-out done", rolled, operator)
        assert rolled.lowest_warm == 2
        assert cond(pool, "Stalled") == ("False", "Progressing")
        assert "ReplacingInPlace" not in rolled.reasons
        rollout = pool["status"]["rollout"]
        assert (rollout["strategy"], rollout.get("fallback", "")) == ("Surge", "")
        assert not [
            e for e in pool_events(cluster, namespace, "llama") if e["reason"] == "RolloutFallback"
        ]
