"""Fixtures for the Helm chart tests: the real helm binary, rendered manifests, CRD schemas.

helm is built from its Go module by hack/build-binaries.sh; the prometheus-operator CRDs the
optional ServiceMonitor/PodMonitor are validated against come from hack/fetch-monitoring-crds.sh.
Missing either skips these tests locally and fails them under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from chart_support import (
    CHART,
    HELM_VERSION,
    KUBE_VERSION,
    MONITORING_CRDS_VERSION,
    NAMESPACE,
    RELEASE,
    VALUES_ALL,
    Manifest,
    Render,
    cache_dir,
    run_helm,
)

from support.components import component_unavailable


@pytest.fixture(scope="session")
def helm() -> Path:
    """The real helm binary: $WARMPOOL_HELM, else the one hack/build-binaries.sh built."""
    default = cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"
    path = Path(os.environ.get("WARMPOOL_HELM", default))
    if not os.access(path, os.X_OK):
        component_unavailable("helm", f"no executable helm at {path} (hack/build-binaries.sh)")
    return path


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`helm template` the chart and return its objects; the test fails when helm fails."""

    def _render(
        values_files: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        namespace: str = NAMESPACE,
    ) -> list[Manifest]:
        args = ["template", RELEASE, str(CHART), "--namespace", namespace]
        args += ["--kube-version", KUBE_VERSION]
        for values_file in values_files:
            args += ["--values", str(values_file)]
        for value in set_values:
            args += ["--set", value]
        result = run_helm(helm, *args)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return _render


@pytest.fixture(scope="session")
def default_objects(render: Render) -> list[Manifest]:
    """The chart rendered with its default values."""
    return render()


@pytest.fixture(scope="session")
def all_on_objects(render: Render) -> list[Manifest]:
    """The chart rendered with every optional part on (values-all.yaml)."""
    return render([VALUES_ALL])


@pytest.fixture(scope="session")
def monitoring_crd_schemas() -> dict[str, Manifest]:
    """openAPIV3Schema of prometheus-operator's CRDs, keyed `group/version/Kind`."""
    directory = cache_dir() / f"monitoring-crds-{MONITORING_CRDS_VERSION}"
    if not directory.is_dir():
        component_unavailable(
            "prometheus-operator CRDs", f"{directory} missing (hack/fetch-monitoring-crds.sh)"
        )
    schemas: dict[str, Manifest] = {}
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['kind']}"
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas
