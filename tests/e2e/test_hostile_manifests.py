"""Differential property test on a real kube-apiserver: for hostile specs, the CRD (schema +
CEL) and the pydantic models the operator parses with agree.

- rejected by the apiserver -> the message names a `spec.` field;
- accepted by the apiserver -> the models accept the stored object (pruned, defaulted) too,
  except for the checks only the operator can make (a time zone unknown to its tzdata, cron
  semantics), which the models report with the field named and the operator turns into a
  Degraded condition.

Requests are server-side dry runs: nothing is stored.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from support.hostile import hostile_specs
from warmpool.api import GROUP, PLURAL, VERSION, InferencePoolSpec
from warmpool.envtest import LocalCluster, find_binary

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "warmpool.dev_inferencepools.yaml"
# Errors only the operator reports (the schema cannot know tzdata or cron semantics).
OPERATOR_ONLY = ("timezone", "time zone", "cron")


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[kubernetes.client.CustomObjectsApi]:
    subprocess.run(
        [
            str(find_binary("kubectl")),
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(CRD_FILE),
        ],
        env=cluster.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [
            str(find_binary("kubectl")),
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/inferencepools.warmpool.dev",
        ],
        env=cluster.env(),
        check=True,
        capture_output=True,
        timeout=90,
    )
    with cluster.client() as client:
        yield kubernetes.client.CustomObjectsApi(client)


def apiserver_verdict(
    api: kubernetes.client.CustomObjectsApi, spec: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """(the stored spec, None) when the apiserver accepts `spec` (dry run), else (None, its
    message). The stored spec is what the operator reads: pruned of unknown fields, defaulted."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferencePool",
        "metadata": {"name": "hostile"},
        "spec": spec,
    }
    try:
        stored = api.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, body, dry_run="All"
        )
    except kubernetes.client.ApiException as error:
        assert error.status in (400, 422), error.body
        message: str = json.loads(error.body)["message"]
        return None, message
    return stored["spec"], None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=hostile_specs())
def test_apiserver_and_models_agree(
    api: kubernetes.client.CustomObjectsApi, spec: dict[str, Any]
) -> None:
    stored, refused = apiserver_verdict(api, spec)
    if refused is not None:
        assert "spec." in refused, refused
        return
    try:
        InferencePoolSpec.model_validate(stored)
    except ValidationError as error:
        text = str(error)
        assert any(word in text for word in OPERATOR_ONLY), (
            f"the apiserver accepted a spec the operator cannot parse:\n{spec}\n{text}"
        )
