"""The chart's warm-up admission policy as rendered by the real helm (values -> CEL).

What the policy enforces is tested against a real apiserver in tests/e2e/test_warmup_gate.py;
here only how values shape it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.components import component_unavailable

CHART = Path(__file__).resolve().parents[3] / "charts" / "warmpool"
TEMPLATE = "templates/warmup-gate-policy.yaml"


@pytest.fixture(scope="module")
def helm() -> Path:
    cache = Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))
    candidates = sorted((cache / "bin").glob("helm-*/helm"))
    path = Path(os.environ.get("WARMPOOL_HELM", candidates[-1] if candidates else "helm"))
    if not os.access(path, os.X_OK):
        component_unavailable("helm", f"no executable helm at {path} (hack/build-binaries.sh)")
    return path


def render(helm: Path, *values: str) -> tuple[int, list[dict[str, Any]], str]:
    args = [str(helm), "template", "wp", str(CHART), "--kube-version", "1.34.0"]
    args += ["--show-only", TEMPLATE]
    for value in values:
        args += ["--set", value]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp/warmpool-helm-home"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    objects = [d for d in yaml.safe_load_all(result.stdout) if d] if result.returncode == 0 else []
    return result.returncode, objects, result.stderr


def test_default_policy_and_binding(helm: Path) -> None:
    code, objects, err = render(helm)
    assert code == 0, err
    policy, binding = objects
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == "wp-warmpool-warmup-gate"
    assert binding["spec"]["validationActions"] == ["Deny"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["pods/status"],
        }
    ]
    (identity,) = spec["matchConditions"]
    assert identity["expression"] == (
        "(request.userInfo.username.startsWith('system:serviceaccount:') && "
        "request.userInfo.username.endsWith('-warmup'))"
    )
    cel = " ".join(v["expression"] for v in spec["validations"] + spec["variables"])
    assert "authentication.kubernetes.io/pod-name" in cel
    assert "authentication.kubernetes.io/pod-uid" in cel
    assert "c.type != 'warmpool.dev/warm'" in cel


def test_values_shape_the_identity_and_condition(helm: Path) -> None:
    code, objects, err = render(
        helm,
        "warmupGate.serviceAccountSuffix=",
        "warmupGate.serviceAccountNames={gate-keeper}",
        "warmupGate.usernamePrefixes={oidc:warmup-}",
        "warmupGate.conditionType=example.com/warm",
        "warmupGate.validationActions={Warn,Audit}",
    )
    assert code == 0, err
    policy, binding = objects
    expression = policy["spec"]["matchConditions"][0]["expression"]
    assert expression == (
        "(request.userInfo.username.startsWith('system:serviceaccount:') && "
        "request.userInfo.username.endsWith(':gate-keeper')) || "
        "request.userInfo.username.startsWith('oidc:warmup-')"
    )
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert "c.type != 'example.com/warm'" in variables["otherConditions"]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]


def test_disabled_renders_nothing(helm: Path) -> None:
    code, objects, err = render(helm, "warmupGate.enabled=false")
    # helm exits non-zero for --show-only of a template that rendered nothing.
    assert objects == []
    assert code == 0 or "could not find template" in err


def test_no_identity_at_all_is_refused(helm: Path) -> None:
    code, _, err = render(helm, "warmupGate.serviceAccountSuffix=")
    assert code != 0
    assert "warmupGate: set serviceAccountSuffix" in err
