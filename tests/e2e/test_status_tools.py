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
from operator_support import (
    GROUP,
    OPERATOR_USER,
    PLURAL,
    TIMEOUT,
    VERSION,
    OperatorProcess,
    condition,
    get_pool,
    install_crd,
    kubectl,
    open_gate,
    pool_pods,
)
from test_headroom import headroom_priority_class  # noqa: F401  (a fixture)
from test_operator import create_pool, now_rfc3339, wait_pool

from support.health import TOOLS, find_harness, judge
from warmpool.envtest import LocalCluster, poll_until

#: Seconds a roll-out may go without progress here: the Deployment controller's deadline.
DEADLINE = 30


@pytest.fixture(scope="module")
def harness() -> Path:
    return find_harness()


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    nodes = OwnGpuNodes(cluster, k8s, "status")
    nodes.add("a", gpus=1)
    nodes.add("b", gpus=1)
    try:
        yield nodes
    finally:
        nodes.delete_all()


def start_operator(
    cluster: LocalCluster, namespace: str, workdir: Path, *extra: str
) -> OperatorProcess:
    install_crd(cluster, workdir)
    kubeconfig = cluster.kubeconfig_for_user(OPERATOR_USER, groups=["system:masters"])
    return OperatorProcess(
        cluster, kubeconfig, cluster.logs_dir, extra=["--namespace", namespace, *extra]
    )


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
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferencePool",
            "metadata": {"name": "llama", "namespace": namespace},
            "spec": {
                "model": {"uri": "s3://models/tiny"},
                "server": gpu_nodes.server_spec(),
                "scaling": {"warmFloor": 2, "maxReplicas": 2},
                "rollout": {"progressDeadlineSeconds": DEADLINE},
            },
        }
        create_pool(k8s, manifest)

        def running(count: int) -> Any:
            return lambda p: observed(p) and (p.get("status") or {}).get("readyReplicas") == count

        pool = wait_pool(k8s, namespace, "llama", "2 replicas running", running(2), operator)
        assert cond(pool, "Reconciling") == ("True", "WarmingUp")
        assert verdicts.judge("warming up", pool) == {
            "kstatus": "InProgress",
            "argocd": "Progressing",
            "flux": "InProgress",
            "wait Ready": "waits",
            "wait Stalled": "waits",
        }

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
        assert verdicts.judge("ready", pool) == {
            "kstatus": "Current",
            "argocd": "Healthy",
            "flux": "Current",
            "wait Ready": "met",
            "wait Stalled": "waits",
        }
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
        assert verdicts.judge("rolling out (surge)", pool) == {
            "kstatus": "InProgress",
            "argocd": "Progressing",
            "flux": "InProgress",
            "wait Ready": "met",
            "wait Stalled": "waits",
        }
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
        assert verdicts.judge("roll-out stalled", pool) == {
            "kstatus": "Failed",
            "argocd": "Degraded",
            "flux": "Failed",
            "wait Ready": "met",
            "wait Stalled": "met",
        }

        # Replace: an old replica goes first, its GPU takes the new revision.
        patch_spec(k8s, namespace, "llama", {"rollout": {"strategy": "Replace"}})

        def rolled(p: dict[str, Any]) -> bool:
            open_gates(k8s, namespace, "llama")
            rollout = (p.get("status") or {}).get("rollout") or {}
            return (
                observed(p)
                and rollout.get("warmReplicas") == 2
                and rollout.get("oldReplicas") == 0
                and cond(p, "Reconciling") == ("False", "Reconciled")
            )

        pool = wait_pool(k8s, namespace, "llama", "Replace roll-out done", rolled, operator)
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
        assert verdicts.judge("invalid spec", pool) == {
            "kstatus": "Failed",
            "argocd": "Degraded",
            "flux": "Failed",
            "wait Ready": "met",
            "wait Stalled": "met",
        }
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
        create_pool(
            k8s,
            {
                **manifest,
                "metadata": {"name": "idle", "namespace": namespace},
                "spec": {**manifest["spec"], "scaling": {"warmFloor": 0, "maxReplicas": 1}},
            },
        )
        idle = wait_pool(
            k8s,
            namespace,
            "idle",
            "at zero",
            lambda p: observed(p) and cond(p, "ScaledToZero") == ("True", "ScaledToZero"),
            operator,
        )
        assert cond(idle, "Ready") == ("False", "ScaledToZeroNoActivator")
        assert verdicts.judge("at zero, no activator", idle) == {
            "kstatus": "InProgress",
            "argocd": "Suspended",
            "flux": "InProgress",
            "wait Ready": "waits",
            "wait Stalled": "waits",
        }
    finally:
        operator.stop()
    # The operator is down: a spec change is not observed.
    patch_spec(k8s, namespace, "llama", {"scaling": {"maxReplicas": 3}})
    pool = get_pool(k8s, namespace, "llama")
    assert not observed(pool)
    # kubectl wait reads a condition only when its observedGeneration is the object's
    assert verdicts.judge("generation not observed", pool) == {
        "kstatus": "InProgress",
        "argocd": "Progressing",
        "flux": "InProgress",
        "wait Ready": "waits",
        "wait Stalled": "waits",
    }
    verdicts.record("surge-replace")


def test_a_pool_at_zero_behind_the_activator_is_ready(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    harness: Path,
    tmp_path: Path,
) -> None:
    verdicts = Verdicts(cluster, harness)
    operator = start_operator(
        cluster, namespace, tmp_path, "--activator-service", f"{namespace}/warmpool-activator"
    )
    try:
        create_pool(
            k8s,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "InferencePool",
                "metadata": {"name": "idle", "namespace": namespace},
                "spec": {
                    "model": {"uri": "s3://models/tiny"},
                    "scaling": {"warmFloor": 0, "maxReplicas": 1},
                },
            },
        )
        pool = wait_pool(
            k8s,
            namespace,
            "idle",
            "at zero behind the activator",
            lambda p: observed(p) and cond(p, "Ready") == ("True", "ScaledToZeroBehindActivator"),
            operator,
        )
        assert verdicts.judge("at zero, activator", pool) == {
            "kstatus": "Current",
            "argocd": "Healthy",
            "flux": "Current",
            "wait Ready": "met",
            "wait Stalled": "waits",
        }
    finally:
        operator.stop()
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
    created = create_pool(
        k8s,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferencePool",
            "metadata": {"name": "fresh", "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/tiny"}},
        },
    )
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
    nodes = OwnGpuNodes(cluster, k8s, "surge")
    for letter in "abc":
        nodes.add(letter, gpus=1)
    operator = start_operator(cluster, namespace, tmp_path)
    try:
        create_pool(
            k8s,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "InferencePool",
                "metadata": {"name": "llama", "namespace": namespace},
                "spec": {
                    "model": {"uri": "s3://models/tiny"},
                    "server": nodes.server_spec(),
                    "scaling": {"warmFloor": 2, "maxReplicas": 2},
                    "headroom": {"placeholders": 1},
                },
            },
        )

        def settled(p: dict[str, Any]) -> bool:
            open_gates(k8s, namespace, "llama")
            rollout = (p.get("status") or {}).get("rollout") or {}
            return (
                observed(p)
                and rollout.get("warmReplicas") == 2
                and rollout.get("oldReplicas") == 0
                and cond(p, "Reconciling") == ("False", "Reconciled")
            )

        pool = wait_pool(k8s, namespace, "llama", "2 warm", settled, operator)
        first = pool["status"]["rollout"]["revision"]
        patch_spec(k8s, namespace, "llama", {"server": {"image": "tritonserver:next"}})
        lowest_warm = 2

        def rolled(p: dict[str, Any]) -> bool:
            nonlocal lowest_warm
            if observed(p):
                lowest_warm = min(lowest_warm, int((p.get("status") or {}).get("warmReplicas", 0)))
            return settled(p) and p["status"]["rollout"]["revision"] != first

        pool = wait_pool(k8s, namespace, "llama", "the surge roll-out done", rolled, operator)
        assert lowest_warm == 2
        assert cond(pool, "Stalled") == ("False", "Progressing")
    finally:
        operator.stop()
        nodes.delete_all()
