"""The restricted Pod Security Standard, checked by the real PodSecurity admission plugin.

A namespace labelled `pod-security.kubernetes.io/enforce=restricted`, and a server-side dry-run
create of a Pod made from every pod template warmpool renders: the pool's replica (prefetch init
container, warm-up native sidecar, Triton server), the pre-pull DaemonSet's pod and the headroom
placeholder, for every example in examples/ and for each cache kind, plus the chart's operator
and activator Deployments (rendered by the real helm). PodSecurity enforces on Pods only (it
only warns on Deployments), hence Pods made from the templates.

Expected: every template is admitted, except that a pool whose cache is on the node
(`cache.kind: node`, pre-pull) or whose model is a `file:///` node path mounts a hostPath
volume, which no Pod Security level but `privileged` allows. For those the refusal must name
the hostPath volumes and NOTHING else: every container setting is restricted-clean.

Real: kube-apiserver with its default admission plugins (PodSecurity among them), helm.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from operator_support import ROOT

from support.components import component_unavailable
from warmpool.api.resource import InferencePool
from warmpool.envtest import BinaryNotFoundError, LocalCluster, find_binary, poll_until
from warmpool.render.children import build_children
from warmpool.render.config import RenderConfig

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
POD_KINDS = ("Deployment", "DaemonSet")
VIOLATION = re.compile(r'violates PodSecurity "restricted:latest": (.*)$', re.DOTALL)


@pytest.fixture(scope="module")
def restricted_namespace(cluster: LocalCluster) -> Iterator[str]:
    name = f"pss-{uuid.uuid4().hex[:6]}"
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    with cluster.client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        poll_until(
            lambda: any(
                sa.metadata.name == "default"
                for sa in core.list_namespaced_service_account(name).items
            ),
            what=f"ServiceAccount {name}/default",
            timeout=60,
        )
        yield name
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def core(cluster: LocalCluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with cluster.client() as api:
        yield kubernetes.client.CoreV1Api(api)


def pod_from(template: dict[str, Any], name: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": (template.get("metadata") or {}).get("labels", {})},
        # The ServiceAccount admission plugin refuses a Pod whose account does not exist: use
        # the namespace's default one (PodSecurity does not look at the account).
        "spec": copy.deepcopy(template["spec"]) | {"serviceAccountName": "default"},
    }
    # Priority admission refuses a pod whose PriorityClass does not exist; PodSecurity does not
    # look at it (the headroom placeholders' class is the chart's).
    pod["spec"].pop("priorityClassName", None)
    return pod


def violations(core: kubernetes.client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> str:
    """'' when PodSecurity admits the pod (dry run), else what it says the pod violates."""
    try:
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    except kubernetes.client.ApiException as error:
        message = str(json.loads(error.body).get("message", error.body))
        found = VIOLATION.search(message)
        assert error.status == 403 and found, message
        return found.group(1)
    return ""


#: PodSecurity's checks that a hostPath volume fails (baseline's, and restricted's volume types).
HOST_PATH_CHECKS = {"hostPath volumes", "restricted volume types"}
_ITEM = re.compile(r"([^,()][^()]*?) \(([^()]*)\)(?:, |$)")


def parse_violations(text: str) -> dict[str, str]:
    """`check (details), check (details)` -> {check: details}."""
    return {m.group(1).strip(): m.group(2) for m in _ITEM.finditer(text)}


def host_path_volumes(pod: dict[str, Any]) -> list[str]:
    return [v["name"] for v in pod["spec"].get("volumes", []) if "hostPath" in v]


def only_host_path(text: str, pod: dict[str, Any]) -> bool:
    """True when PodSecurity refused `pod` for its hostPath volumes and for nothing else."""
    found = parse_violations(text)
    if not found or set(found) - HOST_PATH_CHECKS:
        return False
    named = {name for details in found.values() for name in re.findall(r'"([^"]+)"', details)}
    return named - {"hostPath"} == set(host_path_volumes(pod))


def _pool(manifest: dict[str, Any]) -> InferencePool:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].setdefault("namespace", "default")
    manifest["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
    return InferencePool.from_manifest(manifest)


def _variants() -> list[tuple[str, dict[str, Any]]]:
    """Every example, and the minimal one with each cache kind, headroom and gs credentials."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "InferencePool":
                out.append((path.stem, doc))
    minimal = next(doc for stem, doc in out if stem == "minimal")
    for kind, extra in (
        ("ephemeral", {"kind": "ephemeral", "sizeLimit": "1Gi"}),
        ("pvc", {"kind": "pvc", "claimName": "weights"}),
    ):
        variant = copy.deepcopy(minimal)
        variant["spec"]["cache"] = extra
        variant["spec"]["headroom"] = {"placeholders": 1}
        variant["spec"]["model"] = {
            "uri": "gs://bucket/model",
            "credentialsSecret": "gcs-key",
        }
        out.append((f"minimal-{kind}-cache", variant))
    return out


def rendered_templates(config: RenderConfig) -> list[tuple[str, dict[str, Any]]]:
    templates: list[tuple[str, dict[str, Any]]] = []
    for label, manifest in _variants():
        for child in build_children(_pool(manifest), config, replicas=1):
            if child["kind"] in POD_KINDS:
                name = f"{label}/{child['kind']}/{child['metadata']['name']}"
                templates.append((name, child["spec"]["template"]))
    return templates


def test_podsecurity_admission_is_enforcing(
    core: kubernetes.client.CoreV1Api, restricted_namespace: str
) -> None:
    """The negative control: without it, every other test here could pass vacuously."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]
        },
    }
    assert "privileged" in violations(core, restricted_namespace, pod)


@pytest.mark.parametrize("config", [RenderConfig()], ids=["default-config"])
def test_every_rendered_pod_is_restricted_but_for_node_volumes(
    core: kubernetes.client.CoreV1Api, restricted_namespace: str, config: RenderConfig
) -> None:
    templates = rendered_templates(config)
    kinds = {name.split("/")[1] + ":" + name.split("/")[2].split("-")[-1] for name, _ in templates}
    assert {"DaemonSet:prepull", "Deployment:headroom"} <= kinds, kinds
    wrong: dict[str, str] = {}
    outcomes = set()
    for name, template in templates:
        pod = pod_from(template, f"p-{uuid.uuid4().hex[:8]}")
        got = violations(core, restricted_namespace, pod)
        if host_path_volumes(pod):
            outcomes.add("hostPath only")
            if not only_host_path(got, pod):
                wrong[name] = got or "(admitted: hostPath should not be)"
        else:
            outcomes.add("admitted")
            if got:
                wrong[name] = got
    assert not wrong, json.dumps(wrong, indent=1)
    # Both outcomes occur: restricted-clean pods, and node-cache pods refused for hostPath only.
    assert outcomes == {"admitted", "hostPath only"}


def test_cache_owner_container_is_the_documented_exception(
    core: kubernetes.client.CoreV1Api, restricted_namespace: str
) -> None:
    """prepare_node_cache adds a root init container with CAP_CHOWN (off by default): only for
    node caches, which already need the privileged level."""
    manifest = next(doc for label, doc in _variants() if label == "minimal")
    children = build_children(_pool(manifest), RenderConfig(prepare_node_cache=True), replicas=1)
    deployment = next(c for c in children if c["kind"] == "Deployment" and "headroom" not in str(
        c["metadata"]["name"]))  # fmt: skip
    got = violations(core, restricted_namespace, pod_from(deployment["spec"]["template"], "owner"))
    found = parse_violations(got)
    assert HOST_PATH_CHECKS & set(found), got
    # Everything else refused is the cache-owner container, and only it.
    others = {check: details for check, details in found.items() if check not in HOST_PATH_CHECKS}
    assert others, got
    assert all('container "cache-owner"' in details for details in others.values()), got


def _helm_template(cluster: LocalCluster) -> list[dict[str, Any]]:
    try:
        helm = find_binary("helm")
    except BinaryNotFoundError as error:
        component_unavailable("helm", str(error))
    result = subprocess.run(
        [
            str(helm), "template", "wp", str(ROOT / "charts" / "warmpool"),
            "--namespace", "warmpool-system", "--set", "activator.enabled=true",
            "--kube-version", "1.34.0",
        ],
        env=cluster.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_chart_operator_and_activator_pods_are_restricted(
    cluster: LocalCluster, core: kubernetes.client.CoreV1Api, restricted_namespace: str
) -> None:
    deployments = [d for d in _helm_template(cluster) if d["kind"] == "Deployment"]
    names = sorted(d["metadata"]["name"] for d in deployments)
    assert names == ["wp-warmpool", "wp-warmpool-activator"], names
    for deployment in deployments:
        pod = pod_from(deployment["spec"]["template"], deployment["metadata"]["name"])
        assert violations(core, restricted_namespace, pod) == "", deployment["metadata"]["name"]


def test_examples_are_all_covered() -> None:
    labels = {label for label, _ in _variants()}
    assert {path.stem for path in EXAMPLES} <= labels
    assert Path(ROOT / "examples").is_dir()
