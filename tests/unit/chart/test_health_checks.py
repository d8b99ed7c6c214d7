"""The chart's health checks, judged by the GitOps tools' own code (tests/support/health.py):
kstatus, Argo CD's Lua (charts/warmpool/files/health/argocd-health.lua) and Flux's CEL
(flux-health-check-exprs.yaml), on a pool in every phase docs/gitops.md lists.

The statuses here are the public status model dumped as the operator writes it; the e2e test
tests/e2e/test_status_tools.py runs the same tools on pools read from a real apiserver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support.health import ARGOCD_LUA, FLUX_EXPRS, TOOLS, find_harness, judge, verdicts
from warmpool.api.status import Condition, InferencePoolStatus

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def pool(
    name: str, conditions: dict[str, tuple[str, str]], *, generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    """A pool object whose status has `conditions` ({type: (status, reason)})."""
    status = InferencePoolStatus(
        observed_generation=observed,
        conditions=[
            Condition(
                type=kind,
                status=value,  # type: ignore[arg-type]
                reason=reason,
                message=f"{kind} is {value}",
                last_transition_time=NOW,
                observed_generation=observed,
            )
            for kind, (value, reason) in conditions.items()
        ],
    )
    return {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": "ml", "generation": generation},
        "spec": {"model": {"uri": "s3://models/llama"}},
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


QUIET = {"Reconciling": ("False", "Reconciled"), "Stalled": ("False", "Progressing")}

#: name: (object, {tool: verdict}) — the table of docs/gitops.md.
CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "warming-up": (
        pool(
            "warming-up",
            {
                "Ready": ("False", "NoWarmReplica"),
                "Reconciling": ("True", "WarmingUp"),
                "Stalled": ("False", "Progressing"),
            },
        ),
        {"kstatus": "InProgress", "argocd": "Progressing", "flux": "InProgress"},
    ),
    "ready": (
        pool("ready", {"Ready": ("True", "Serving"), **QUIET}),
        {"kstatus": "Current", "argocd": "Healthy", "flux": "Current"},
    ),
    "rolling-out": (
        pool(
            "rolling-out",
            {
                "Ready": ("True", "Serving"),
                "Reconciling": ("True", "RollingOut"),
                "Stalled": ("False", "Progressing"),
                "Progressing": ("True", "RollingOut"),
            },
        ),
        {"kstatus": "InProgress", "argocd": "Progressing", "flux": "InProgress"},
    ),
    "replacing-in-place": (
        pool(
            "replacing-in-place",
            {
                "Ready": ("True", "Serving"),
                "Reconciling": ("True", "RollingOut"),
                "Stalled": ("False", "Progressing"),
                "Progressing": ("True", "ReplacingInPlace"),
            },
        ),
        {"kstatus": "InProgress", "argocd": "Progressing", "flux": "InProgress"},
    ),
    "zero-activator": (
        pool("zero-activator", {"Ready": ("True", "ScaledToZeroBehindActivator"), **QUIET}),
        {"kstatus": "Current", "argocd": "Healthy", "flux": "Current"},
    ),
    "zero-no-activator": (
        pool("zero-no-activator", {"Ready": ("False", "ScaledToZeroNoActivator"), **QUIET}),
        {"kstatus": "InProgress", "argocd": "Suspended", "flux": "InProgress"},
    ),
    "invalid-spec": (
        pool(
            "invalid-spec",
            {
                "Ready": ("False", "NoWarmReplica"),
                "Degraded": ("True", "InvalidSpec"),
                "Reconciling": ("False", "Stalled"),
                "Stalled": ("True", "InvalidSpec"),
            },
        ),
        {"kstatus": "Failed", "argocd": "Degraded", "flux": "Failed"},
    ),
    "rollout-stalled": (
        pool(
            "rollout-stalled",
            {
                "Ready": ("True", "Serving"),
                "Reconciling": ("False", "Stalled"),
                "Stalled": ("True", "RolloutStalled"),
                "Progressing": ("False", "RolloutStalled"),
            },
        ),
        {"kstatus": "Failed", "argocd": "Degraded", "flux": "Failed"},
    ),
    "generation-not-observed": (
        pool("generation-not-observed", {"Ready": ("True", "Serving"), **QUIET}, generation=3),
        {"kstatus": "InProgress", "argocd": "Progressing", "flux": "InProgress"},
    ),
}


@pytest.fixture(scope="module")
def harness() -> Path:
    return find_harness()


def test_every_tool_gives_the_documented_verdict_in_every_phase(harness: Path) -> None:
    table = verdicts(harness, [obj for obj, _ in CASES.values()])
    expected = {name: want for name, (_, want) in CASES.items()}
    assert table == expected


def test_the_messages_name_the_reason(harness: Path) -> None:
    stalled = CASES["rollout-stalled"][0]
    (argo,) = judge(harness, "argocd", [stalled])
    assert argo.message == "RolloutStalled: Stalled is True"
    (kstatus,) = judge(harness, "kstatus", [stalled])
    assert kstatus.message == "Stalled is True"


def test_a_pool_without_status_is_never_healthy_to_argo(harness: Path) -> None:
    fresh = {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "fresh", "namespace": "ml", "generation": 1},
        "spec": {"model": {"uri": "s3://models/llama"}},
    }
    (argo,) = judge(harness, "argocd", [fresh])
    assert argo.status == "Progressing"
    # kstatus cannot tell a pool the operator has not seen from a kind without conditions:
    # Current (docs/gitops.md). Flux's expressions have no `status` to read: an error, which
    # kustomize-controller reports and retries.
    (kstatus,) = judge(harness, "kstatus", [fresh])
    assert kstatus.status == "Current"
    (flux,) = judge(harness, "flux", [fresh])
    assert flux.status == "Error"
    assert "status" in flux.error


def test_the_health_files_are_what_the_docs_show() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "gitops.md").read_text()
    for path in (ARGOCD_LUA, FLUX_EXPRS):
        body = path.read_text()
        # the docs show each file's body, indented as it goes into argocd-cm / a Kustomization
        lines = [line for line in body.splitlines() if line and not line.startswith(("--", "#"))]
        for line in lines:
            assert line.strip() in doc, f"docs/gitops.md lacks {path.name}'s line {line!r}"


CAPTURED = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "pool-phases.json").read_text()
)["phases"]


@pytest.mark.parametrize("phase", sorted(CAPTURED))
def test_the_tools_on_pools_captured_from_the_e2e_run(harness: Path, phase: str) -> None:
    """The pools tests/e2e/test_status_tools.py read from a real apiserver, judged again here:
    the same verdicts, without a cluster (the Lua and CEL can be changed and checked fast)."""
    captured = CAPTURED[phase]
    got = {tool: judge(harness, tool, [captured["object"]])[0].status for tool in TOOLS}
    assert got == {tool: captured["verdicts"][tool] for tool in TOOLS}
