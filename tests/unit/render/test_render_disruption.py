"""Disruption and roll-out: PodDisruptionBudget, cold-start hints, strategy, grace, drain."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from render_cases import CONFIG, KUBERNETES_VERSION, make_pool, pod_spec, server_deployment

from warmpool.api.resource import InferencePool
from warmpool.render import build_children
from warmpool.render.disruption import build_pod_disruption_budget
from warmpool.render.labels import REVISION_ANNOTATION

MODEL = {"uri": "s3://models/llama"}


def _deployment(pool: InferencePool) -> dict[str, Any]:
    return server_deployment(build_children(pool, CONFIG, replicas=2), pool)


def test_budget_keeps_the_warm_floor_and_lets_cold_replicas_go() -> None:
    pool = make_pool({"model": MODEL})
    pdb = build_pod_disruption_budget(pool, warm_floor=2)
    assert pdb is not None
    kubernetes_validate.validate(pdb, KUBERNETES_VERSION, strict=True)
    assert pdb["metadata"]["name"] == "llama"
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "InferencePool"
    assert pdb["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": {"warmpool.dev/pool": "llama"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


@pytest.mark.parametrize(
    ("spec", "floor"),
    [({"model": MODEL}, 0), ({"model": MODEL, "disruption": {"podDisruptionBudget": False}}, 3)],
)
def test_no_budget_at_floor_zero_or_when_turned_off(spec: dict[str, Any], floor: int) -> None:
    assert build_pod_disruption_budget(make_pool(spec), warm_floor=floor) is None


def test_cold_start_hints_on_the_template_unless_turned_off() -> None:
    annotations = _deployment(make_pool({"model": MODEL}))["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    off = make_pool({"model": MODEL, "disruption": {"protectColdStarts": False}})
    annotations = _deployment(off)["spec"]["template"]["metadata"]["annotations"]
    assert "karpenter.sh/do-not-disrupt" not in annotations
    assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in annotations


def test_surge_by_default_replace_on_request() -> None:
    surge = _deployment(make_pool({"model": MODEL, "rollout": {"maxSurge": 2}}))["spec"]
    assert surge["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}
    assert surge["progressDeadlineSeconds"] == CONFIG.progress_deadline_seconds
    replace = _deployment(
        make_pool(
            {"model": MODEL, "rollout": {"strategy": "Replace", "progressDeadlineSeconds": 120}}
        )
    )["spec"]
    assert replace["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert replace["progressDeadlineSeconds"] == 120


def test_grace_and_drain_from_the_pool_else_the_operator() -> None:
    default = pod_spec(_deployment(make_pool({"model": MODEL})))
    assert default["terminationGracePeriodSeconds"] == (
        CONFIG.drain_seconds + CONFIG.server_exit_timeout_seconds + 5
    )
    own = pod_spec(
        _deployment(
            make_pool(
                {
                    "model": MODEL,
                    "disruption": {"drainSeconds": 20, "terminationGracePeriodSeconds": 90},
                }
            )
        )
    )
    assert own["terminationGracePeriodSeconds"] == 90
    assert own["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 20}}}
    drain_only = pod_spec(
        _deployment(make_pool({"model": MODEL, "disruption": {"drainSeconds": 20}}))
    )
    exit_timeout = CONFIG.server_exit_timeout_seconds
    assert drain_only["terminationGracePeriodSeconds"] == 20 + exit_timeout + 5


def test_drain_must_end_before_the_grace_period() -> None:
    with pytest.raises(ValueError, match=r"drainSeconds must be < .*terminationGracePeriodSeconds"):
        disruption = {"drainSeconds": 30, "terminationGracePeriodSeconds": 30}
        make_pool({"model": MODEL, "disruption": disruption})


def test_revision_follows_the_template_only() -> None:
    def revision(spec: dict[str, Any]) -> str:
        template = _deployment(make_pool(spec))["spec"]["template"]
        return str(template["metadata"]["annotations"][REVISION_ANNOTATION])

    base = revision({"model": MODEL})
    assert base == revision({"model": MODEL})
    assert len(base) == 10
    # replicas are not part of the template: scaling is no new revision
    assert base == revision({"model": MODEL, "scaling": {"maxReplicas": 8}})
    assert base != revision({"model": MODEL, "server": {"image": "tritonserver:26.01"}})
