"""Shared cases of the render tests: the examples, how each is rendered, YAML dumping."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from warmpool.api.resource import InferencePool
from warmpool.render import ActivatorEndpoints, RenderConfig, ServiceMode, build_children

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
#: Kubernetes version the e2e cluster runs; kubernetes-validate ships its schema.
KUBERNETES_VERSION = "1.34"
#: A fixed uid: a pool read from the API has one, a manifest does not.
POOL_UID = "6f1c2b9e-0d4a-4c1e-9a53-1b2c3d4e5f60"
#: The config the goldens are rendered with (a pinned agent image, not the package version).
CONFIG = RenderConfig(agent_image="ghcr.io/warmpool/agent:0.1.0")


@dataclass(frozen=True)
class Case:
    """How one example is rendered for its golden files."""

    example: str
    replicas: int
    mode: ServiceMode = "direct"
    activator: ActivatorEndpoints | None = None


CASES = [
    Case("minimal", replicas=1),
    Case("llama-s3-prepull", replicas=3),
    # At zero, behind the activator: shows the selector-less Service and its EndpointSlice.
    Case(
        "bert-hf-scale-to-zero",
        replicas=0,
        mode="activator",
        activator=ActivatorEndpoints(addresses=["10.0.3.12", "10.0.1.7"]),
    ),
    Case("cpu-python-demo", replicas=1),
]


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


def load_manifest(example: str) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    return manifest


def load_pool(example: str) -> InferencePool:
    manifest = load_manifest(example)
    manifest["metadata"].setdefault("namespace", "default")
    manifest["metadata"]["uid"] = POOL_UID
    return InferencePool.from_manifest(manifest)


def render_case(case: Case) -> list[dict[str, Any]]:
    return build_children(
        load_pool(case.example),
        CONFIG,
        replicas=case.replicas,
        service_mode=case.mode,
        activator_endpoints=case.activator,
    )


def golden_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def dump(obj: dict[str, Any]) -> str:
    """YAML as a reviewer reads it: the builders' key order, block style."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)


def make_pool(spec: dict[str, Any], *, name: str = "llama", namespace: str = "ml") -> InferencePool:
    """A pool from an inline spec (a uid included, as when read from the API)."""
    return InferencePool.from_manifest(
        {
            "apiVersion": "warmpool.dev/v1alpha1",
            "kind": "InferencePool",
            "metadata": {"name": name, "namespace": namespace, "uid": POOL_UID},
            "spec": spec,
        }
    )


def by_kind(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in children if o["kind"] == kind and o["metadata"]["name"] == name)


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(
        c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == name
    )


def server_deployment(children: list[dict[str, Any]], pool: InferencePool) -> dict[str, Any]:
    """The pool's own Deployment `<pool>` among its children."""
    return by_kind(children, "Deployment", pool.metadata.name)
