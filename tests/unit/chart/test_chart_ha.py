"""The chart's HA values: `operator.replicas` > 1 (or `operator.leaderElection.enabled`) runs
leader election on a Lease; one replica renders exactly what it did before (Recreate, no Lease
RBAC, no PodDisruptionBudget)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_support import (
    CHART,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    Manifest,
    Render,
    find,
    one,
    run_helm,
)

from warmpool.controller.settings import LeaderElectionSettings, parse_settings

LEASE_ROLE = f"{FULLNAME}-leader-election"


def _operator(objects: list[Manifest]) -> tuple[Manifest, Manifest]:
    deployment = one(objects, "Deployment", FULLNAME)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, next(c for c in containers if c["name"] == "operator")


@pytest.fixture(scope="module")
def two_replicas(render: Render) -> list[Manifest]:
    return render(set_values=["operator.replicas=2"])


@pytest.mark.helm
def test_one_replica_runs_standalone_without_lease_rbac(default_objects: list[Manifest]) -> None:
    deployment, container = _operator(default_objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--standalone" in container["args"]
    assert not any(arg.startswith("--leader") for arg in container["args"])
    assert "env" not in container
    assert not find(default_objects, "PodDisruptionBudget", FULLNAME)
    assert not find(default_objects, "Role", LEASE_ROLE)


@pytest.mark.helm
def test_two_replicas_elect_a_leader(two_replicas: list[Manifest]) -> None:
    deployment, container = _operator(two_replicas)
    assert deployment["spec"]["replicas"] == 2
    # Old and new pods may overlap: only the Lease holder works.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    args = container["args"]
    assert "--standalone" not in args
    # The operator itself parses what the chart passes: on, with the Lease and the timings.
    settings = parse_settings(args[1:], {})
    assert settings.leader_elect
    assert settings.leader_election == LeaderElectionSettings(
        namespace=NAMESPACE,
        lease_name=FULLNAME,
        lease_duration_seconds=15,
        renew_deadline_seconds=10,
        retry_period_seconds=2,
    )
    assert container["env"][0] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }


@pytest.mark.helm
def test_lease_rbac_is_get_watch_update_by_name_and_create_in_the_release_namespace(
    two_replicas: list[Manifest],
) -> None:
    role = one(two_replicas, "Role", LEASE_ROLE)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "watch", "update"],
            "resourceNames": [FULLNAME],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    binding = one(two_replicas, "RoleBinding", LEASE_ROLE)
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": LEASE_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]


@pytest.mark.helm
def test_two_replicas_get_a_disruption_budget(two_replicas: list[Manifest]) -> None:
    deployment, _ = _operator(two_replicas)
    pdb = one(two_replicas, "PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


@pytest.mark.helm
def test_one_replica_may_elect_too_and_keeps_user_env(render: Render) -> None:
    objects = render(
        set_values=[
            "operator.leaderElection.enabled=true",
            "operator.leaderElection.leaseDuration=30",
            "operator.leaderElection.renewDeadline=20",
            "operator.leaderElection.retryPeriod=4",
            "operator.extraEnv[0].name=TZ",
            "operator.extraEnv[0].value=UTC",
        ]
    )
    deployment, container = _operator(objects)
    assert deployment["spec"]["replicas"] == 1
    settings = parse_settings(container["args"][1:], {})
    assert settings.leader_elect
    assert (
        settings.leader_election.lease_duration_seconds,
        settings.leader_election.renew_deadline_seconds,
        settings.leader_election.retry_period_seconds,
    ) == (30, 20, 4)
    assert [e["name"] for e in container["env"]] == ["POD_NAME", "TZ"]
    assert one(objects, "Role", LEASE_ROLE)
    # One replica: a budget of one would block every drain.
    assert not find(objects, "PodDisruptionBudget", FULLNAME)


@pytest.mark.helm
@pytest.mark.parametrize(
    "value",
    ["operator.replicas=0", "operator.leaderElection.retryPeriod=0", "operator.leaderElection.x=1"],
)
def test_schema_refuses_bad_ha_values(helm: Path, value: str) -> None:
    result = run_helm(
        helm, "template", "wp", str(CHART), "--kube-version", KUBE_VERSION, "--set", value
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
