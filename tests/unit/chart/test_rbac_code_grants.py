"""The warm-up and activator roles grant exactly what their code calls (static, both ways).

The operator's grants are checked dynamically, from the audit log of a real run
(tests/e2e/test_rbac_minimum.py). The warm-up sidecar and the activator make few, fixed API
calls, so here their source is read (ast) for every Kubernetes client method they call; each
method maps to the (group, resource, verb) it needs, and the chart's role must equal that set.
A new call fails this test until it is added to KNOWN_METHODS (and, if needed, to the chart).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from chart_support import FULLNAME, Manifest, one

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "operator" / "warmpool"

Need = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

#: Kubernetes client methods -> the grants they need. `list_*(watch=True)` also needs watch.
KNOWN_METHODS: dict[str, Need] = {
    "patch_namespaced_pod_status": ("", "pods/status", "patch"),
    "read_namespaced_pod": ("", "pods", "get"),
    "list_namespaced_endpoint_slice": ("discovery.k8s.io", "endpointslices", "list"),
    "list_endpoint_slice_for_all_namespaces": ("discovery.k8s.io", "endpointslices", "list"),
    "read_namespaced_endpoint_slice": ("discovery.k8s.io", "endpointslices", "get"),
    # The only custom resource any warmpool program touches is the InferencePool.
    "patch_namespaced_custom_object": ("warmpool.dev", "inferencepools", "patch"),
    "get_namespaced_custom_object": ("warmpool.dev", "inferencepools", "get"),
}
#: What a Kubernetes client method name looks like (`patch_namespaced_pod_status`, ...).
CLIENT_METHOD = re.compile(
    r"^(list|read|get|patch|create|replace|delete)_\w*(namespaced|for_all_namespaces|cluster)\w*$"
)


def _calls(subpackage: str) -> dict[str, bool]:
    """Client method name -> whether it may watch, over every module of the subpackage.

    A watch is a list with `watch=True`; the call that passes it may be a wrapper of the list
    method, so a module with any `watch=True` call counts its list methods as watching too.
    """
    found: dict[str, bool] = {}
    for path in sorted((PACKAGE / subpackage).glob("*.py")):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        ]
        watches = any(
            keyword.arg == "watch"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value is True
            for call in calls
            for keyword in call.keywords
        )
        for call in calls:
            assert isinstance(call.func, ast.Attribute)
            name = call.func.attr
            if CLIENT_METHOD.match(name):
                found[name] = found.get(name, False) or (watches and name.startswith("list_"))
    return found


def needs_of(subpackage: str) -> set[Need]:
    needs: set[Need] = set()
    for method, watches in _calls(subpackage).items():
        assert method in KNOWN_METHODS, f"{subpackage} calls {method}: add it to KNOWN_METHODS"
        group, resource, verb = KNOWN_METHODS[method]
        needs.add((group, resource, verb))
        if watches:
            needs.add((group, resource, "watch"))
    return needs


def granted(role: Manifest) -> set[Need]:
    out: set[Need] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def test_warmup_code_calls_only_patch_pod_status() -> None:
    assert needs_of("warmup") == {("", "pods/status", "patch")}


def test_activator_code_lists_watches_slices_and_patches_pools() -> None:
    assert needs_of("activator") == {
        ("discovery.k8s.io", "endpointslices", "list"),
        ("discovery.k8s.io", "endpointslices", "watch"),
        ("warmpool.dev", "inferencepools", "patch"),
    }


@pytest.mark.helm
def test_warmup_role_is_exactly_what_the_code_uses(default_objects: list[Manifest]) -> None:
    role = one(default_objects, "ClusterRole", "warmpool-warmup")
    assert granted(role) == needs_of("warmup")


@pytest.mark.helm
def test_activator_role_is_exactly_what_the_code_uses(all_on_objects: list[Manifest]) -> None:
    role = one(all_on_objects, "ClusterRole", f"{FULLNAME}-activator")
    assert granted(role) == needs_of("activator")
