"""What the GitOps tools say about a pool in every phase, on the real apiserver.

A pool is driven through its phases on KWOK nodes that hold exactly the GPUs it needs (two
nodes with one GPU each, two replicas of one GPU): warming up, Ready, a new revision that
cannot surge (no spare GPU) until its progress deadline (Stalled), the same roll-out switched
to Replace (it completes), a spec the operator cannot serve, a generation not yet observed, and
pools at zero with and without the activator. At each phase the live object is judged by
`kubectl wait` (the real kubectl), and by kstatus, Argo CD's Lua and Flux's CEL through their
own code (tests/support/health.py). The verdicts are printed as a table and written to
`<cluster logs>/pool-phases.json` with the objects they judged.

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
from operator_support import GROUP, PLURAL, TIMEOUT, get_pool, install_crd, kubectl
from rollout_support import (
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
from test_operator import create_pool, wait_pool

from support.health import TOOLS, find_harness, judge
from warmpool.envtest import LocalCluster, poll_until

#: Seconds a roll-out may go without progress here: the Deployment controller's deadline.
DEADLINE = 30


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
                rollout={"progressDeadlineSeconds": DEADLINE},
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

        # A new revision, Surge (the default): its pod finds no free GPU. The old replicas keep
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
            ),
        )

        two_warm = settled(k8s, namespace, "llama", 2)
        pool = wait_pool(k8s, namespace, "llama", "2 warm", two_warm, operator)
        first = pool["status"]["rollout"]["revision"]
        patch_spec(k8s, namespace, "llama", {"server": {"image": "tritonserver:next"}})
        lowest_warm = 2

        def rolled(p: dict[str, Any]) -> bool:
            nonlocal lowest_warm
            if observed(p):
                lowest_warm = min(lowest_warm, int((p.get("status") or {}).get("warmReplicas", 0)))
            return two_warm(p) and p["status"]["rollout"]["revision"] != first

        pool = wait_pool(k8s, namespace, "llama", "the surge roll-out done", rolled, operator)
        assert lowest_warm == 2
        assert cond(pool, "Stalled") == ("False", "Progressing")
