"""Every rendered object of every example is valid against the Kubernetes 1.34 OpenAPI schema.

kubernetes-validate's strict schemas refuse unknown fields, so a typo in a builder (a field the
apiserver would silently prune) fails here.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import kubernetes_validate
import pytest
from render_cases import (
    CASES,
    CONFIG,
    KUBERNETES_VERSION,
    Case,
    golden_name,
    load_pool,
    make_pool,
    render_case,
)

from warmpool.render import ActivatorEndpoints, build_children


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _rendered() -> list[tuple[str, dict[str, Any]]]:
    out = [
        (f"{case.example}/{golden_name(obj)}", obj) for case in CASES for obj in render_case(case)
    ]
    # The other mode of each example too: direct pools at zero, and activator mode with IPv6.
    for case in CASES:
        other: Case = (
            Case(case.example, replicas=2)
            if case.mode == "activator"
            else Case(
                case.example,
                replicas=0,
                mode="activator",
                activator=ActivatorEndpoints(addresses=["fd00::7"], http_port=9000, grpc_port=9001),
            )
        )
        out += [(f"{case.example}[{other.mode}]/{golden_name(o)}", o) for o in render_case(other)]
    return out


RENDERED = _rendered()


def test_kubernetes_validate_has_the_e2e_version() -> None:
    assert kubernetes_validate.latest_version() >= KUBERNETES_VERSION
    assert _validated_version(RENDERED[0][1]) == KUBERNETES_VERSION


def _validated_version(obj: dict[str, Any]) -> str:
    return str(kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True))


@pytest.mark.parametrize(("name", "obj"), RENDERED, ids=[name for name, _ in RENDERED])
def test_rendered_object_is_valid(name: str, obj: dict[str, Any]) -> None:
    _validate(obj)


def test_the_validator_refuses_an_unknown_field() -> None:
    # Guards the test above against a validator that accepts anything.
    deployment = copy.deepcopy(next(o for _, o in RENDERED if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def test_the_validator_refuses_a_wrong_type() -> None:
    children = build_children(load_pool("minimal"), CONFIG, replicas=1)
    service = next(o for o in children if o["kind"] == "Service")
    service["spec"]["ports"][0]["port"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(service)


KITCHEN_SINK: dict[str, Any] = {
    "model": {
        "uri": "pvc://weights/models/llama",
        "include": ["*.safetensors"],
        "sha256": {"model.safetensors": "a" * 64},
        "credentialsSecret": "unused-for-pvc",
    },
    "server": {
        "imagePullSecrets": ["registry"],
        "backend": "pytorch",
        "args": ["--log-verbose=1"],
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "resources": {"requests": {"cpu": 2, "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
        "gpu": {"count": 2, "product": "NVIDIA-A100-SXM4-80GB"},
        "nodeSelector": {"node.kubernetes.io/instance-type": "p4d.24xlarge"},
        "tolerations": [
            {
                "key": "gpu",
                "operator": "Equal",
                "value": "yes",
                "effect": "NoExecute",
                "tolerationSeconds": 30,
            },
        ],
        "ports": {"http": 18000, "grpc": 18001, "metrics": 18002},
        "priorityClassName": "inference",
    },
    "cache": {"kind": "node", "path": "/mnt/nvme/warmpool", "sizeLimit": "1.5Ti", "prepull": True},
    "warmup": {"protocol": "grpc", "samplesConfigMap": "llama-samples", "concurrency": 4},
    "headroom": {"placeholders": 2},
}


@pytest.mark.parametrize("mode", ["direct", "activator"])
def test_kitchen_sink_pool_is_valid(mode: str) -> None:
    config = dataclasses.replace(CONFIG, prepare_node_cache=True)
    pool = make_pool(KITCHEN_SINK)
    children = build_children(
        pool,
        config,
        replicas=3,
        service_mode="activator" if mode == "activator" else "direct",
        activator_endpoints=ActivatorEndpoints(addresses=["10.9.8.7"]),
    )
    assert len(children) == (8 if mode == "activator" else 7)
    for obj in children:
        _validate(obj)
