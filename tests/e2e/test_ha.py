"""HA: two `warmpool operator --leader-elect` replicas on the real control plane.

Real: kube-apiserver (Lease optimistic concurrency, audit log), etcd, the controllers, and both
operator processes; each runs as its own user, so the audit log says which replica made every
request. Mocked because they cannot exist here: kubelets and GPUs (KWOK nodes).

The timings are shortened (lease 4 s, renew deadline 3 s, retry 1 s) so the suite stays short;
the takeover times with the defaults (15/10/2) are measured by benchmarks/ha.py. Waits are
bounded by TIMEOUT; nothing here asserts a duration: what is asserted is WHO wrote and in WHICH
ORDER (no write by a standby before it holds the Lease, no overlap of two writers).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
from ha_support import (
    Candidate,
    ElectionTimings,
    PartitionableLink,
    audit_time,
    describe,
    first_work_write,
    holder_name,
    is_lease,
    lease_writes,
    read_lease,
    succeeded,
    writes_by,
)
from operator_support import GROUP, PLURAL, ROOT, TIMEOUT, VERSION, install_crd
from test_operator_helm import helm

from warmpool.envtest import LocalCluster, poll_until

LEASE = "warmpool-ha"
FAST = ElectionTimings(lease_duration=4, renew_deadline=3, retry_period=1)


@pytest.fixture(scope="module")
def crd(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    install_crd(cluster, tmp_path_factory.mktemp("crd"))
    return Path()


@pytest.fixture
def candidates(cluster: LocalCluster, crd: Path, namespace: str) -> Iterator[list[Candidate]]:
    """Replicas the test starts (appended by start()); all stopped at the end."""
    started: list[Candidate] = []
    yield started
    for candidate in started:
        candidate.stop()


def start(
    started: list[Candidate],
    cluster: LocalCluster,
    name: str,
    namespace: str,
    timings: ElectionTimings = FAST,
    via: PartitionableLink | None = None,
) -> Candidate:
    candidate = Candidate(cluster, name, namespace, LEASE, timings, via=via)
    started.append(candidate)
    return candidate


def wait_leader(
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    candidates: list[Candidate],
    lease: str = LEASE,
) -> dict[str, Any]:
    def led() -> dict[str, Any] | None:
        spec = read_lease(k8s, namespace, lease)
        return spec if holder_name(spec) == name else None

    return poll_until(
        led,
        what=f"{name} holding Lease {namespace}/{lease}",
        timeout=TIMEOUT,
        describe=lambda: "\n".join(c.process.log_tail(15) for c in candidates),
    )


def pool(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "s3://models/tiny"}, "scaling": {"warmFloor": 1}},
    }


def create_pool(k8s: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    kubernetes.client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, pool(name, namespace)
    )


def wait_reconciled(
    k8s: kubernetes.client.ApiClient, namespace: str, name: str, candidates: list[Candidate]
) -> dict[str, Any]:
    """The pool's Deployment exists and its status was written for its generation."""
    apps = kubernetes.client.AppsV1Api(k8s)
    custom = kubernetes.client.CustomObjectsApi(k8s)

    def done() -> dict[str, Any] | None:
        obj = cast(
            dict[str, Any],
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name),
        )
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        try:
            apps.read_namespaced_deployment(name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return obj

    return poll_until(
        done,
        what=f"pool {namespace}/{name} reconciled",
        timeout=TIMEOUT,
        describe=lambda: "\n".join(c.process.log_tail(20) for c in candidates),
    )


def assert_standby_never_wrote_before_leading(
    events: list[dict[str, Any]], standby: Candidate
) -> dict[str, Any]:
    """The standby's first write of any kind is the Lease update that made it the leader; its
    first work write comes after it. Returns that Lease write."""
    writes = writes_by(events, standby.user)
    assert writes, f"{standby.name} never wrote"
    first = writes[0]
    assert is_lease(first) and succeeded(first), (
        f"{standby.name}'s first write is not its takeover:\n{describe(writes[:10])}"
    )
    work = first_work_write(events, standby.user)
    assert work is not None and audit_time(work) >= audit_time(first)
    return first


def test_one_leader_works_and_a_standby_takes_over_after_a_crash(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    candidates: list[Candidate],
) -> None:
    leader = start(candidates, cluster, "op-a", namespace)
    first = wait_leader(k8s, namespace, "op-a", candidates)
    standby = start(candidates, cluster, "op-b", namespace)
    assert first["leaseDurationSeconds"] == FAST.lease_duration

    # The standby serves /healthz (the chart's liveness probe) and says who leads.
    health = standby.health()
    assert health["leaderElection"] == "standby"
    assert str(health["leader"]).startswith("op-a_")

    create_pool(k8s, namespace, "before")
    wait_reconciled(k8s, namespace, "before", candidates)

    leader.kill()
    # A pool created while nobody leads is reconciled by the new leader.
    create_pool(k8s, namespace, "after")
    taken = wait_leader(k8s, namespace, "op-b", candidates)
    wait_reconciled(k8s, namespace, "after", candidates)
    assert taken["leaseTransitions"] == first["leaseTransitions"] + 1

    # A standby that is stopped leaves quietly: exit 0, not a single write.
    third = start(candidates, cluster, "op-c", namespace)
    assert third.health()["leaderElection"] == "standby"
    third.terminate()
    assert third.exit_code() == 0, third.process.log_tail(20)

    events = cluster.audit_events()
    assert writes_by(events, third.user) == []
    takeover = assert_standby_never_wrote_before_leading(events, standby)
    # Exactly one writer at a time: the crashed leader's last write precedes the takeover.
    leader_writes = writes_by(events, leader.user)
    assert first_work_write(events, leader.user) is not None, "the first leader did no work"
    assert audit_time(leader_writes[-1]) < audit_time(takeover)
    # And the takeover waited for the crashed leader's lease to run out (never cut it short):
    # at least a lease duration after the dead leader's last renewal.
    last_renewal = lease_writes(events, leader.user, LEASE)[-1]
    assert audit_time(takeover) - audit_time(last_renewal) >= timedelta(seconds=FAST.lease_duration)


def test_sigterm_releases_the_lease_for_a_fast_handover(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    candidates: list[Candidate],
) -> None:
    # A long lease, so that a handover within it can only come from the release.
    slow = ElectionTimings(lease_duration=60, renew_deadline=40, retry_period=1)
    leader = start(candidates, cluster, "op-a", namespace, slow)
    wait_leader(k8s, namespace, "op-a", candidates)
    standby = start(candidates, cluster, "op-b", namespace, slow)
    create_pool(k8s, namespace, "before")
    wait_reconciled(k8s, namespace, "before", candidates)

    leader.terminate()
    assert leader.exit_code() == 0, leader.process.log_tail(30)
    create_pool(k8s, namespace, "after")
    wait_leader(k8s, namespace, "op-b", candidates)
    wait_reconciled(k8s, namespace, "after", candidates)

    events = cluster.audit_events()
    takeover = assert_standby_never_wrote_before_leading(events, standby)
    leader_writes = writes_by(events, leader.user)
    release = leader_writes[-1]
    # The stopping leader's last write is the release, after all of its work.
    assert is_lease(release) and succeeded(release), describe(leader_writes[-5:])
    assert audit_time(release) < audit_time(takeover)
    renewals = lease_writes(events, leader.user, LEASE)[:-1]
    assert audit_time(takeover) - audit_time(renewals[-1]) < timedelta(
        seconds=slow.lease_duration
    ), "the standby waited for the lease to expire: the release did not hand over"


def test_a_leader_that_loses_its_lease_exits_at_once(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    candidates: list[Candidate],
) -> None:
    leader = start(candidates, cluster, "op-a", namespace)
    spec = wait_leader(k8s, namespace, "op-a", candidates)
    # Someone else holds the Lease now (as after a partition during which it expired).
    coordination = kubernetes.client.CoordinationV1Api(k8s)
    lease = coordination.read_namespaced_lease(LEASE, namespace)
    assert lease.spec is not None
    lease.spec.holder_identity = "intruder_00000000"
    lease.spec.lease_duration_seconds = 3600
    lease.spec.lease_transitions = spec["leaseTransitions"] + 1
    coordination.replace_namespaced_lease(LEASE, namespace, lease)

    code = poll_until(
        lambda: leader.exit_code(),
        what="the deposed leader to exit",
        timeout=TIMEOUT,
        describe=lambda: leader.process.log_tail(20),
    )
    assert code == 1, leader.process.log_tail(20)
    assert "leader election lost" in leader.process.log_tail(200)
    # Crash-only: it did not release (or otherwise touch) the Lease someone else holds.
    assert holder_name(read_lease(k8s, namespace, LEASE)) == "intruder"


def test_a_partitioned_leader_stops_before_the_standby_takes_over(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    candidates: list[Candidate],
) -> None:
    """The leader alone loses the apiserver (the standby does not): it cannot renew, exits at
    its renew deadline, and the standby takes over only after the lease ran out, so the two
    never write at the same time."""
    link = PartitionableLink(cluster.server)
    try:
        leader = start(candidates, cluster, "op-a", namespace, via=link)
        first = wait_leader(k8s, namespace, "op-a", candidates)
        standby = start(candidates, cluster, "op-b", namespace)
        create_pool(k8s, namespace, "before")
        wait_reconciled(k8s, namespace, "before", candidates)

        link.cut()
        code = poll_until(
            lambda: leader.exit_code(),
            what="the partitioned leader to exit",
            timeout=TIMEOUT,
            describe=lambda: leader.process.log_tail(20),
        )
        assert code == 1, leader.process.log_tail(20)
        assert "leader election lost" in leader.process.log_tail(200)
        create_pool(k8s, namespace, "after")
        taken = wait_leader(k8s, namespace, "op-b", candidates)
        wait_reconciled(k8s, namespace, "after", candidates)
        assert taken["leaseTransitions"] == first["leaseTransitions"] + 1
    finally:
        link.close()

    events = cluster.audit_events()
    takeover = assert_standby_never_wrote_before_leading(events, standby)
    leader_writes = writes_by(events, leader.user)
    assert audit_time(leader_writes[-1]) < audit_time(takeover)


CHART_FULLNAME = "wp-warmpool"
CHART_ELECTION_FLAGS = ("--leader-elect", "--leader-election-", "--lease-", "--renew-", "--retry-")


@pytest.fixture
def chart_release(cluster: LocalCluster, crd: Path) -> Iterator[str]:
    """charts/warmpool installed with `operator.replicas=2` (real helm); its namespace."""
    release_namespace = f"wp-ha-{uuid.uuid4().hex[:6]}"
    result = helm(
        cluster,
        "install",
        "wp",
        str(ROOT / "charts" / "warmpool"),
        "--namespace",
        release_namespace,
        "--create-namespace",
        "--set",
        "crds.enabled=false",
        "--set",
        "operator.replicas=2",
    )
    assert result.returncode == 0, result.stderr
    try:
        yield release_namespace
    finally:
        helm(cluster, "uninstall", "wp", "--namespace", release_namespace, "--wait")
        with cluster.client() as api:
            kubernetes.client.CoreV1Api(api).delete_namespace(release_namespace)


def test_the_charts_flags_and_lease_rbac_run_two_replicas(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    chart_release: str,
    candidates: list[Candidate],
) -> None:
    """Two local operators with the installed chart's leader-election flags, as the chart's
    ServiceAccount (a TokenRequest token, what its pods present): RBAC lets them create,
    watch, renew, take over and release the Lease (the chart's own pods run nothing: KWOK)."""
    deployment = kubernetes.client.AppsV1Api(k8s).read_namespaced_deployment(
        CHART_FULLNAME, chart_release
    )
    assert deployment.spec is not None and deployment.spec.replicas == 2
    container = deployment.spec.template.spec.containers[0]  # type: ignore[union-attr]
    election = [a for a in container.args or [] if a.startswith(CHART_ELECTION_FLAGS)]
    assert "--leader-elect" in election
    user = f"system:serviceaccount:{chart_release}:{CHART_FULLNAME}"
    account = (user, cluster.kubeconfig_for_service_account(chart_release, CHART_FULLNAME))

    def replica(name: str) -> Candidate:
        candidate = Candidate(
            cluster, name, namespace, "", FAST, account=account, election=election
        )
        candidates.append(candidate)
        return candidate

    leader = replica("op-a")
    wait_leader(k8s, chart_release, "op-a", candidates, lease=CHART_FULLNAME)
    replica("op-b")
    create_pool(k8s, namespace, "before")
    wait_reconciled(k8s, namespace, "before", candidates)
    leader.terminate()
    assert leader.exit_code() == 0, leader.process.log_tail(30)
    wait_leader(k8s, chart_release, "op-b", candidates, lease=CHART_FULLNAME)
    create_pool(k8s, namespace, "after")
    wait_reconciled(k8s, namespace, "after", candidates)

    events = [e for e in cluster.audit_events() if (e.get("user") or {}).get("username") == user]
    denied = [
        f"{e.get('verb')} {(e.get('objectRef') or {}).get('resource')}"
        for e in events
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
    ]
    assert denied == []
    lease_verbs = {
        e.get("verb")
        for e in events
        if is_lease(e) and succeeded(e) and e.get("stage") == "ResponseComplete"
    }
    # create (first leader), update (renew, take over, release), watch (the standby).
    assert {"create", "get", "update", "watch"} <= lease_verbs, lease_verbs
