"""The optional NetworkPolicies of the activator and of the pools' Triton pods (real helm,
validated against Kubernetes 1.34's schemas like every other rendered object)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    REPO,
    Manifest,
    Render,
    find,
    one,
)
from chart_support import run_helm as helm_run

from warmpool.api.resource import InferencePool
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import server_container

ACTIVATOR = f"{FULLNAME}-activator"
POOLS = f"{FULLNAME}-pools"
TRITON = {
    "app.kubernetes.io/part-of": "warmpool",
    "app.kubernetes.io/component": "inference-server",
}
TEMPLATE = ("template", "wp", str(CHART), "--kube-version", KUBE_VERSION)
INGRESS_PEER = "networkPolicy.clients[0].namespaceSelector.matchLabels.team=ingress"


def _ports(rule: Manifest) -> set[str | int]:
    return {port["port"] for port in rule["ports"]}


def _triton_port_names() -> set[str | int]:
    manifest = yaml.safe_load((REPO / "examples" / "minimal.yaml").read_text())
    manifest["metadata"] |= {"namespace": "ml", "uid": "00000000-0000-0000-0000-000000000001"}
    container = server_container(InferencePool.from_manifest(manifest), RenderConfig())
    return {port["name"] for port in container["ports"]}


def _valid(objects: list[Manifest]) -> None:
    for obj in objects:
        if obj["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.helm
def test_off_by_default(default_objects: list[Manifest]) -> None:
    assert find(default_objects, "NetworkPolicy") == []


@pytest.mark.helm
def test_pools_policy_per_namespace(render: Render) -> None:
    objects = render(
        [],
        [
            "networkPolicy.pools.enabled=true",
            "watchNamespaces={ml,research}",
            "activator.enabled=false",
        ],
    )
    _valid(objects)
    policies = find(objects, "NetworkPolicy", POOLS)
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["ml", "research"]
    for policy in policies:
        assert policy["spec"]["podSelector"] == {"matchLabels": TRITON}
        # Egress stays open for the prefetcher's downloads.
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        model, metrics = policy["spec"]["ingress"]
        assert _ports(model) == {"http", "grpc"}
        # No activator, no clients: only the pool's own namespace reaches the model ports.
        assert model["from"] == [{"podSelector": {}}]
        assert _ports(metrics) == {"metrics"}
        assert metrics["from"][0]["podSelector"] == {
            "matchLabels": {"app.kubernetes.io/name": "prometheus"}
        }


@pytest.mark.helm
def test_pools_policy_admits_the_activator_and_the_clients(render: Render) -> None:
    objects = render(
        [],
        [
            "networkPolicy.pools.enabled=true",
            "networkPolicy.pools.namespaces={ml}",
            "activator.enabled=true",
            INGRESS_PEER,
        ],
    )
    _valid(objects)
    policy = one(objects, "NetworkPolicy", POOLS)
    peers = policy["spec"]["ingress"][0]["from"]
    activator = one(objects, "Deployment", ACTIVATOR)
    assert peers[0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
        "podSelector": activator["spec"]["selector"],
    }
    assert peers[1:] == [{"namespaceSelector": {"matchLabels": {"team": "ingress"}}}]
    # The named ports are exactly the ones warmpool renders on the Triton container.
    ingress = policy["spec"]["ingress"]
    assert _ports(ingress[0]) | _ports(ingress[1]) == _triton_port_names()


@pytest.mark.helm
def test_pools_policy_needs_namespaces(helm: Path) -> None:
    result = helm_run(helm, *TEMPLATE, "--set", "networkPolicy.pools.enabled=true")
    assert result.returncode != 0
    assert "networkPolicy.pools.enabled needs the pools' namespaces" in result.stderr


@pytest.mark.helm
def test_activator_policy(render: Render) -> None:
    objects = render(
        [],
        ["networkPolicy.activator.enabled=true", "activator.enabled=true", INGRESS_PEER],
    )
    _valid(objects)
    policy = one(objects, "NetworkPolicy", ACTIVATOR)
    activator = one(objects, "Deployment", ACTIVATOR)
    assert policy["spec"]["podSelector"] == activator["spec"]["selector"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    proxy, metrics = policy["spec"]["ingress"]
    assert _ports(proxy) == {"http", "grpc"}
    assert proxy["from"] == [{"namespaceSelector": {"matchLabels": {"team": "ingress"}}}]
    assert _ports(metrics) == {"metrics"}
    dns, api, pools = policy["spec"]["egress"]
    assert _ports(dns) == {53}
    assert _ports(api) == {443, 6443}
    assert pools["to"] == [{"namespaceSelector": {}, "podSelector": {"matchLabels": TRITON}}]
    assert _ports(pools) == {"http", "grpc"}


@pytest.mark.helm
def test_activator_policy_defaults_to_the_pool_namespaces(render: Render) -> None:
    objects = render(
        [],
        [
            "networkPolicy.activator.enabled=true",
            "activator.enabled=true",
            "watchNamespaces={ml}",
        ],
    )
    policy = one(objects, "NetworkPolicy", ACTIVATOR)
    only_ml = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ml"]}
        ]
    }
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": only_ml}]
    assert policy["spec"]["egress"][2]["to"][0]["namespaceSelector"] == only_ml


@pytest.mark.helm
def test_activator_policy_needs_the_activator(render: Render) -> None:
    objects = render([], ["networkPolicy.activator.enabled=true", "activator.enabled=false"])
    assert find(objects, "NetworkPolicy") == []


@pytest.mark.helm
@pytest.mark.parametrize(
    "bad", ["networkPolicy.pools.namespaces={Not_A_Namespace}", "networkPolicy.pools.typo=1"]
)
def test_schema_refuses_bad_values(helm: Path, bad: str) -> None:
    result = helm_run(helm, *TEMPLATE, "--set", bad)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
