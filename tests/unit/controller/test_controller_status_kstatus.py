"""Ready, Reconciling, Stalled, Progressing and status.rollout (docs/gitops.md), from pods and
the Deployment as the watch cache holds them."""

from __future__ import annotations

from typing import Any

import pytest
from controller_builders import make_pod
from test_controller_status import conditions, inputs

from warmpool.controller.pool.status import compute_status
from warmpool.render.labels import REVISION_ANNOTATION

WARM = {
    "initialized": "2026-01-01T00:00:30Z",
    "containers_ready": "2026-01-01T00:00:35Z",
    "warm": "2026-01-01T00:00:40Z",
}


def pod(name: str, revision: str, **kwargs: Any) -> dict[str, Any]:
    made = make_pod(name, **kwargs)
    made["metadata"]["annotations"] = {REVISION_ANNOTATION: revision}
    return made


def deployment(revision: str, *, deadline_exceeded: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if deadline_exceeded:
        status["conditions"] = [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "llama-7f" has timed out progressing.',
            }
        ]
    return {
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {"template": {"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}},
        "status": status,
    }


def test_a_warm_pool_is_ready_and_reconciled() -> None:
    status = compute_status(inputs([pod("a", "r1", **WARM)], deployment=deployment("r1")))
    got = conditions(status)
    assert got["Ready"] == ("True", "Serving")
    assert got["Reconciling"] == ("False", "Reconciled")
    assert got["Stalled"] == ("False", "Progressing")
    assert got["Progressing"] == ("True", "RolloutComplete")
    assert status.rollout is not None
    assert (status.rollout.revision, status.rollout.updated_replicas) == ("r1", 1)
    assert (status.rollout.warm_replicas, status.rollout.old_replicas) == (1, 0)
    assert all(c.observed_generation == 3 for c in status.conditions)


@pytest.mark.parametrize(
    ("activator", "ready"),
    [
        (True, ("True", "ScaledToZeroBehindActivator")),
        (False, ("False", "ScaledToZeroNoActivator")),
    ],
)
def test_at_zero_ready_says_whether_the_activator_serves(
    activator: bool, ready: tuple[str, str]
) -> None:
    status = compute_status(inputs([], desired=0, activator=activator))
    got = conditions(status)
    assert got["Ready"] == ready
    assert got["Reconciling"] == ("False", "Reconciled")


def test_warming_then_scaling_are_reconciling() -> None:
    cold = pod("a", "r1")
    assert conditions(compute_status(inputs([cold], deployment=deployment("r1"))))[
        "Reconciling"
    ] == ("True", "WarmingUp")
    assert conditions(compute_status(inputs([], desired=2)))["Reconciling"] == (
        "True",
        "ScalingUp",
    )
    two = [pod("a", "r1", **WARM), pod("b", "r1", **WARM)]
    assert conditions(compute_status(inputs(two, desired=1)))["Reconciling"] == (
        "True",
        "ScalingDown",
    )


def test_a_roll_out_counts_both_revisions_and_serves_from_the_old() -> None:
    pods = [pod("old", "r1", **WARM), pod("new", "r2", initialized="2026-01-01T00:00:30Z")]
    status = compute_status(inputs(pods, deployment=deployment("r2")))
    got = conditions(status)
    assert got["Ready"] == ("True", "Serving")
    assert got["Reconciling"][:2] == ("True", "RollingOut")
    assert got["Progressing"] == ("True", "RollingOut")
    assert status.rollout is not None
    assert status.rollout.model_dump() == {
        "revision": "r2",
        "updated_replicas": 1,
        "ready_replicas": 0,
        "warm_replicas": 0,
        "old_replicas": 1,
        "strategy": None,  # no plan in these inputs: the status says nothing of a strategy
        "fallback": "",
        "prepull": None,
    }


def test_a_roll_out_past_its_deadline_is_stalled_not_reconciling() -> None:
    pods = [pod("old", "r1", **WARM), pod("new", "r2")]
    status = compute_status(inputs(pods, deployment=deployment("r2", deadline_exceeded=True)))
    got = conditions(status)
    assert got["Stalled"] == ("True", "RolloutStalled")
    assert got["Reconciling"] == ("False", "Stalled")
    assert got["Progressing"] == ("False", "RolloutStalled")
    assert got["Ready"] == ("True", "Serving")  # the old revision still serves
    message = next(c.message for c in status.conditions if c.type == "Stalled")
    assert "timed out progressing" in message


def test_no_progress_without_a_roll_out_is_stalled_too() -> None:
    status = compute_status(
        inputs([pod("a", "r1")], deployment=deployment("r1", deadline_exceeded=True))
    )
    assert conditions(status)["Stalled"] == ("True", "ProgressDeadlineExceeded")


def test_invalid_spec_and_failed_prefetch_are_stalled() -> None:
    assert conditions(compute_status(inputs([], degraded="spec.model.uri: bad")))["Stalled"] == (
        "True",
        "InvalidSpec",
    )
    failed = pod(
        "a",
        "r1",
        prefetch={"state": {"terminated": {"exitCode": 1, "message": "sha256 mismatch"}}},
    )
    got = conditions(compute_status(inputs([failed], deployment=deployment("r1"))))
    assert got["Stalled"] == ("True", "PrefetchFailed")
    assert got["Reconciling"] == ("False", "Stalled")
