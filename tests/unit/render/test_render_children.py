"""build_children: which objects, in which order, with which labels and names."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from render_cases import CONFIG, by_kind, make_pool

from warmpool.render import (
    CHILD_KINDS,
    SPEC_HASH_ANNOTATION,
    ActivatorEndpoints,
    RenderError,
    build_children,
    children_selector,
    model_fingerprint,
    prepull_node_label_key,
)
from warmpool.render.labels import content_hash
from warmpool.render.prefetch_args import size_flag

FULL: dict[str, Any] = {
    "model": {"uri": "s3://models/llama", "revision": "r1"},
    "cache": {"prepull": True},
    "headroom": {"placeholders": 2},
}
RECOMMENDED = {
    "app.kubernetes.io/name": "triton",
    "app.kubernetes.io/instance": "llama",
    "app.kubernetes.io/part-of": "warmpool",
    "app.kubernetes.io/managed-by": "warmpool",
    "warmpool.dev/pool": "llama",
}
ACTIVATOR = ActivatorEndpoints(addresses=["10.0.0.9", "10.0.0.3", "fd00::1"])


def _names(children: list[dict[str, Any]]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in children]


def test_order_direct_mode() -> None:
    children = build_children(make_pool(FULL), CONFIG, replicas=1)
    assert _names(children) == [
        "ServiceAccount/llama-warmup",
        "RoleBinding/llama-warmup",
        "Service/llama",
        "Service/llama-pods",
        "DaemonSet/llama-prepull",
        "Deployment/llama-headroom",
        "Deployment/llama",
    ]


def test_minimal_pool_has_no_optional_children() -> None:
    children = build_children(make_pool({"model": FULL["model"]}), CONFIG, replicas=1)
    assert _names(children) == [
        "ServiceAccount/llama-warmup",
        "RoleBinding/llama-warmup",
        "Service/llama",
        "Service/llama-pods",
        "Deployment/llama",
    ]


def test_every_child_is_labelled_and_owned() -> None:
    children = build_children(
        make_pool(FULL), CONFIG, replicas=0, service_mode="activator", activator_endpoints=ACTIVATOR
    )
    for obj in children:
        meta = obj["metadata"]
        assert meta["namespace"] == "ml"
        assert RECOMMENDED.items() <= meta["labels"].items(), meta["name"]
        assert meta["labels"]["app.kubernetes.io/component"] in {
            "inference-server",
            "prepull",
            "headroom",
            "warmup",
        }
        (owner,) = meta["ownerReferences"]
        assert owner["kind"] == "InferencePool" and owner["controller"] is True
        assert meta["annotations"][SPEC_HASH_ANNOTATION] == content_hash(obj)


def test_only_replicas_carry_the_pool_label_on_their_pods() -> None:
    # The Services select on warmpool.dev/pool alone: a Ready placeholder or pre-pull pod
    # carrying it would be routed to as a warm replica.
    children = build_children(make_pool(FULL), CONFIG, replicas=1)
    templates = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in children
        if "template" in o.get("spec", {})
    }
    assert templates["llama"]["warmpool.dev/pool"] == "llama"
    assert "warmpool.dev/pool" not in templates["llama-prepull"]
    assert "warmpool.dev/pool" not in templates["llama-headroom"]
    for o in children:
        if "template" in o.get("spec", {}):
            selector = o["spec"]["selector"]["matchLabels"]
            assert selector.items() <= o["spec"]["template"]["metadata"]["labels"].items()


def test_direct_mode_selects_the_pods() -> None:
    children = build_children(make_pool(FULL), CONFIG, replicas=1)
    public = by_kind(children, "Service", "llama")
    assert public["spec"]["selector"] == {"warmpool.dev/pool": "llama"}
    assert [(p["name"], p["port"]) for p in public["spec"]["ports"]] == [
        ("http", 8000),
        ("grpc", 8001),
        ("metrics", 8002),
    ]
    pods = by_kind(children, "Service", "llama-pods")
    assert pods["spec"]["clusterIP"] == "None"
    assert pods["spec"]["selector"] == {"warmpool.dev/pool": "llama"}
    assert pods["metadata"]["labels"]["warmpool.dev/service-role"] == "pods"


def test_activator_mode_points_the_service_at_the_activator() -> None:
    children = build_children(
        make_pool(FULL), CONFIG, replicas=0, service_mode="activator", activator_endpoints=ACTIVATOR
    )
    public = by_kind(children, "Service", "llama")
    assert "selector" not in public["spec"]
    endpoint_slice = by_kind(children, "EndpointSlice", "llama-activator")
    labels = endpoint_slice["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "llama"
    assert labels["endpointslice.kubernetes.io/managed-by"] == "warmpool.dev"
    assert labels["warmpool.dev/pool"] == "llama"
    # Not a `pods` slice: the activator must not take itself for a warm replica.
    assert "warmpool.dev/service-role" not in labels
    assert endpoint_slice["addressType"] == "IPv4"
    assert [e["addresses"] for e in endpoint_slice["endpoints"]] == [["10.0.0.3"], ["10.0.0.9"]]
    assert {p["name"]: p["port"] for p in endpoint_slice["ports"]} == {"http": 8000, "grpc": 8001}
    # The headless Service keeps selecting pods: it is how the activator sees them get warm.
    assert by_kind(children, "Service", "llama-pods")["spec"]["selector"]
    assert by_kind(children, "Deployment", "llama")["spec"]["replicas"] == 0


def test_activator_mode_ipv6_only() -> None:
    children = build_children(
        make_pool(FULL),
        CONFIG,
        replicas=0,
        service_mode="activator",
        activator_endpoints=ActivatorEndpoints(addresses=["fd00::2"], http_port=9000),
    )
    endpoint_slice = by_kind(children, "EndpointSlice", "llama-activator")
    assert endpoint_slice["addressType"] == "IPv6"
    assert endpoint_slice["ports"][0]["port"] == 9000


def test_activator_mode_needs_endpoints() -> None:
    with pytest.raises(RenderError, match="activator_endpoints"):
        build_children(make_pool(FULL), CONFIG, replicas=0, service_mode="activator")


@pytest.mark.parametrize("name", ["a" * 59, "pool.with.dots", "9lives"])
def test_names_that_cannot_name_services_are_refused(name: str) -> None:
    with pytest.raises(RenderError, match="DNS-1035"):
        build_children(make_pool(FULL, name=name), CONFIG, replicas=1)


def test_longest_accepted_name_renders() -> None:
    name = "a" * 58
    children = build_children(make_pool(FULL, name=name), CONFIG, replicas=1)
    assert f"Service/{name}-pods" in _names(children)


def test_negative_replicas_are_refused() -> None:
    with pytest.raises(RenderError):
        build_children(make_pool(FULL), CONFIG, replicas=-1)


def test_spec_hash_follows_content() -> None:
    first = build_children(make_pool(FULL), CONFIG, replicas=1)
    again = build_children(make_pool(FULL), CONFIG, replicas=1)
    scaled = build_children(make_pool(FULL), CONFIG, replicas=2)

    def hashes(children: list[dict[str, Any]]) -> dict[str, str]:
        return {
            n: o["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            for n, o in zip(_names(children), children, strict=True)
        }

    assert hashes(first) == hashes(again)
    changed = {n for n in hashes(first) if hashes(first)[n] != hashes(scaled)[n]}
    assert changed == {"Deployment/llama"}
    edited = copy.deepcopy(first[-1])
    edited["spec"]["replicas"] = 7
    assert content_hash(edited) != content_hash(first[-1])


def test_prepull_daemonset() -> None:
    pool = make_pool(
        {
            **FULL,
            "server": {
                "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            },
        }
    )
    daemonset = by_kind(build_children(pool, CONFIG, replicas=1), "DaemonSet", "llama-prepull")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    (prefetch,) = pod["initContainers"]
    assert prefetch["command"] == ["warmpool", "prefetch"]
    assert not any(arg.startswith("--dest") for arg in prefetch["args"])
    # Pre-pull needs no GPU: it must fit beside running replicas.
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert "nvidia.com/gpu" not in c.get("resources", {}).get("requests", {})
    fingerprint = daemonset["spec"]["template"]["metadata"]["annotations"]
    assert fingerprint == {"warmpool.dev/model-fingerprint": model_fingerprint(pool.spec.model)}


def test_headroom_placeholders_hold_one_replicas_gpus() -> None:
    pool = make_pool(
        {
            **FULL,
            "server": {
                "gpu": {"count": 4},
                "resources": {"requests": {"cpu": "8", "memory": "64Gi"}},
            },
            "headroom": {"placeholders": 3, "priorityClassName": "spare"},
        }
    )
    headroom = by_kind(build_children(pool, CONFIG, replicas=1), "Deployment", "llama-headroom")
    assert headroom["spec"]["replicas"] == 3
    pod = headroom["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "spare"
    (placeholder,) = pod["containers"]
    assert placeholder["resources"]["requests"] == {
        "cpu": "8",
        "memory": "64Gi",
        "nvidia.com/gpu": "4",
    }
    assert placeholder["resources"]["limits"] == {"nvidia.com/gpu": "4"}


def test_rbac_binds_the_warmup_role() -> None:
    children = build_children(make_pool(FULL), CONFIG, replicas=1)
    account = by_kind(children, "ServiceAccount", "llama-warmup")
    assert account["automountServiceAccountToken"] is False
    binding = by_kind(children, "RoleBinding", "llama-warmup")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "warmpool-warmup",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "llama-warmup", "namespace": "ml"}
    ]


def test_prepull_node_label() -> None:
    key = prepull_node_label_key("a-very-long-namespace-name-" * 3, "b" * 58)
    prefix, name = key.split("/")
    assert prefix == "prepull.warmpool.dev" and len(name) == 16
    assert key != prepull_node_label_key("ml", "llama")
    first = model_fingerprint(make_pool(FULL).spec.model)
    bumped = model_fingerprint(
        make_pool({**FULL, "model": {**FULL["model"], "revision": "r2"}}).spec.model
    )
    assert first != bumped
    assert len(first) <= 63


@pytest.mark.parametrize(
    ("quantity", "flag"),
    [
        ("500Gi", "500Gi"),
        ("10G", "10G"),
        (1024, "1024"),
        ("1.5Ti", "1.5Ti"),
        ("2Pi", str(2 * 2**50)),
        ("1e3", "1000"),
        ("1500m", "2"),
    ],
)
def test_size_flag(quantity: str | int, flag: str) -> None:
    assert size_flag(quantity) == flag


def test_children_are_found_by_kind_and_selector() -> None:
    children = build_children(
        make_pool(FULL), CONFIG, replicas=0, service_mode="activator", activator_endpoints=ACTIVATOR
    )
    selector = dict(part.split("=") for part in children_selector("llama").split(","))
    for obj in children:
        assert (obj["apiVersion"], obj["kind"]) in CHILD_KINDS
        assert selector.items() <= obj["metadata"]["labels"].items()
