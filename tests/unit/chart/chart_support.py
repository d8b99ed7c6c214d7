"""Shared constants and helpers of the chart tests (conftest.py holds the fixtures)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "warmpool"
VALUES_ALL = Path(__file__).with_name("values-all.yaml")
# Must match hack/build-binaries.sh (HELM_VERSION).
HELM_VERSION = "v3.19.0"
# Must match hack/fetch-monitoring-crds.sh (VERSION).
MONITORING_CRDS_VERSION = "v0.85.0"
# The Kubernetes version the chart is rendered and validated for (kubernetes-validate has it).
KUBE_VERSION = "1.34.0"
RELEASE = "wp"
NAMESPACE = "warmpool-system"
FULLNAME = "wp-warmpool"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def cache_dir() -> Path:
    """Where hack/ scripts cache what they build or fetch."""
    return Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with an isolated home (no repositories, plugins or caches of the user)."""
    home = cache_dir() / "helm-test-home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """Objects of `kind` (and `name` when given)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    """The single object of `kind` named `name`."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def unknown_fields(value: Any, schema: Manifest, path: str = "") -> list[str]:
    """Paths in `value` that a structural CRD schema does not declare.

    The API server prunes such fields silently (or rejects them with strict field validation),
    so a typo in a template would vanish without a trace; this finds them. `metadata` is
    ObjectMeta, which the CRD schema leaves open.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties: dict[str, Manifest] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if path == "" and key in {"apiVersion", "kind", "metadata"}:
                continue
            if key in properties:
                found += unknown_fields(item, properties[key], child)
            elif isinstance(additional, dict):
                found += unknown_fields(item, additional, child)
            elif additional is not True:
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found
