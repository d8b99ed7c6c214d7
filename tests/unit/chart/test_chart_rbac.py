"""RBAC of the chart: exactly the grants docs/rbac.md lists, no wildcard, bind by name only."""

from __future__ import annotations

import re

import pytest
from chart_support import (
    CHART,
    FULLNAME,
    NAMESPACE,
    VALUES_ALL,
    Manifest,
    Render,
    find,
    one,
)

WARMUP_ROLE = "warmpool-warmup"
ACTIVATOR = f"{FULLNAME}-activator"
ROLE_KINDS = ("ClusterRole", "Role")
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
# Verbs that let a subject grant itself more than it holds, or act as someone else.
DANGEROUS_VERBS = {"escalate", "impersonate", "*"}

Grant = tuple[str, str, frozenset[str], frozenset[str]]  # group, resource, verbs, names


def grants(role: Manifest) -> set[Grant]:
    """One (group, resource, verbs, resourceNames) per group x resource of every rule."""
    result: set[Grant] = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.add(
                    (
                        group,
                        resource,
                        frozenset(rule["verbs"]),
                        frozenset(rule.get("resourceNames", [])),
                    )
                )
    return result


def g(group: str, resource: str, verbs: str, names: tuple[str, ...] = ()) -> Grant:
    return (group, resource, frozenset(verbs.split()), frozenset(names))


# The operator's namespaced grants (docs/rbac.md explains each).
OPERATOR_NAMESPACED = {
    g("warmpool.dev", "inferencepools", "list watch patch"),
    g("warmpool.dev", "inferencepools/status", "patch"),
    g("warmpool.dev", "inferencepools/finalizers", "update"),
    g("apps", "deployments", "get list watch create patch delete"),
    g("apps", "daemonsets", "get list create patch delete"),
    g("", "services", "get list create patch"),
    g("discovery.k8s.io", "endpointslices", "get list watch create patch delete"),
    g("", "pods", "list watch patch"),
    g("policy", "poddisruptionbudgets", "get list create patch delete"),
    g("", "events", "list create"),
    g("events.k8s.io", "events", "create"),
    g("", "serviceaccounts", "get list create patch"),
    g("rbac.authorization.k8s.io", "rolebindings", "get list create patch"),
    g("rbac.authorization.k8s.io", "clusterroles", "bind", (WARMUP_ROLE,)),
}
OPERATOR_CLUSTER = {
    g("", "nodes", "get list patch"),
    g("apiextensions.k8s.io", "customresourcedefinitions", "list watch"),
}
NAMESPACES_GRANT = g("", "namespaces", "list watch")
WARMUP = {g("", "pods/status", "patch")}
ACTIVATOR_GRANTS = {
    g("discovery.k8s.io", "endpointslices", "list watch"),
    g("warmpool.dev", "inferencepools", "patch"),
}


@pytest.fixture(scope="module")
def namespaced_objects(render: Render) -> list[Manifest]:
    """Namespaced mode with two namespaces (the activator takes one at most: off here)."""
    return render([VALUES_ALL], ["watchNamespaces={ml,research}", "activator.enabled=false"])


def _roles(objects: list[Manifest]) -> list[Manifest]:
    return [obj for kind in ROLE_KINDS for obj in find(objects, kind)]


@pytest.mark.helm
@pytest.mark.parametrize("objects_fixture", ["default_objects", "all_on_objects"])
def test_no_wildcards_no_escalation_no_secrets(
    objects_fixture: str, request: pytest.FixtureRequest
) -> None:
    objects: list[Manifest] = request.getfixturevalue(objects_fixture)
    roles = _roles(objects)
    assert roles
    for role in roles:
        for rule in role["rules"]:
            where = f"{role['kind']}/{role['metadata']['name']}: {rule}"
            assert "*" not in rule["apiGroups"], where
            assert not any("*" in resource for resource in rule["resources"]), where
            assert not DANGEROUS_VERBS & set(rule["verbs"]), where
            assert "secrets" not in rule["resources"], where
            assert "nonResourceURLs" not in rule, where
            if "bind" in rule["verbs"]:
                assert rule["verbs"] == ["bind"], where
                assert rule["resources"] == ["clusterroles"], where
                assert rule["resourceNames"] == [WARMUP_ROLE], where
        assert "aggregationRule" not in role


@pytest.mark.helm
def test_cluster_wide_operator_grants(default_objects: list[Manifest]) -> None:
    assert grants(one(default_objects, "ClusterRole", FULLNAME)) == OPERATOR_NAMESPACED
    assert grants(one(default_objects, "ClusterRole", f"{FULLNAME}-cluster")) == OPERATOR_CLUSTER
    subject = {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    for name in (FULLNAME, f"{FULLNAME}-cluster"):
        binding = one(default_objects, "ClusterRoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
        assert binding["subjects"] == [subject]
    assert not find(default_objects, "RoleBinding")


@pytest.mark.helm
def test_namespaced_operator_grants(namespaced_objects: list[Manifest]) -> None:
    """watchNamespaces: the namespaced grants hold only in the listed namespaces."""
    assert not find(namespaced_objects, "ClusterRoleBinding", FULLNAME)
    assert grants(one(namespaced_objects, "ClusterRole", FULLNAME)) == OPERATOR_NAMESPACED
    cluster = grants(one(namespaced_objects, "ClusterRole", f"{FULLNAME}-cluster"))
    assert cluster == OPERATOR_CLUSTER | {NAMESPACES_GRANT}
    bindings = {
        b["metadata"]["namespace"]: b for b in find(namespaced_objects, "RoleBinding", FULLNAME)
    }
    assert set(bindings) == {"ml", "research"}
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["roleRef"]["name"] == FULLNAME
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "warmpool-operator", "namespace": NAMESPACE}
        ]
    assert not find(namespaced_objects, "Role")


@pytest.mark.helm
def test_operator_reads_the_activator_namespace(all_on_objects: list[Manifest]) -> None:
    """Namespaced mode: the operator also watches the activator's (release) namespace, where
    kopf lists every kind it handles; read-only grants there."""
    role = one(all_on_objects, "Role", f"{FULLNAME}-activator-namespace")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == {
        g("discovery.k8s.io", "endpointslices", "get list watch"),
        g("warmpool.dev", "inferencepools", "get list watch"),
        g("", "pods", "get list watch"),
        g("apps", "deployments", "get list watch"),
    }
    binding = one(all_on_objects, "RoleBinding", f"{FULLNAME}-activator-namespace")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }


@pytest.mark.helm
def test_warmup_cluster_role(default_objects: list[Manifest]) -> None:
    role = one(default_objects, "ClusterRole", WARMUP_ROLE)
    assert grants(role) == WARMUP
    # Bound per pool by the operator, never by the chart.
    for kind in BINDING_KINDS:
        assert not [b for b in find(default_objects, kind) if b["roleRef"]["name"] == WARMUP_ROLE]


@pytest.mark.helm
@pytest.mark.parametrize("watch", [[], ["ml"]], ids=["cluster-wide", "namespaced"])
def test_activator_grants(render: Render, watch: list[str]) -> None:
    values = ["activator.enabled=true"]
    if watch:
        values.append("watchNamespaces={" + ",".join(watch) + "}")
    objects = render(set_values=values)
    assert grants(one(objects, "ClusterRole", ACTIVATOR)) == ACTIVATOR_GRANTS
    subject = [{"kind": "ServiceAccount", "name": ACTIVATOR, "namespace": NAMESPACE}]
    if watch:
        assert not find(objects, "ClusterRoleBinding", ACTIVATOR)
        bindings = find(objects, "RoleBinding", ACTIVATOR)
        assert sorted(b["metadata"]["namespace"] for b in bindings) == watch
    else:
        bindings = [one(objects, "ClusterRoleBinding", ACTIVATOR)]
    for binding in bindings:
        assert binding["roleRef"]["name"] == ACTIVATOR
        assert binding["subjects"] == subject


@pytest.mark.helm
def test_every_binding_refers_to_a_rendered_role(all_on_objects: list[Manifest]) -> None:
    roles = {(r["kind"], r["metadata"]["name"]) for r in _roles(all_on_objects)}
    accounts = {sa["metadata"]["name"] for sa in find(all_on_objects, "ServiceAccount")}
    for kind in BINDING_KINDS:
        for binding in find(all_on_objects, kind):
            assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
            for subject in binding["subjects"]:
                assert subject["name"] in accounts


def test_every_rule_has_a_comment_saying_why() -> None:
    """cert-manager style: each `- apiGroups:` rule in the templates has its own comment."""
    rule_start = re.compile(r"^\s*- apiGroups:")
    names = ("operator-rbac.yaml", "activator-rbac.yaml", "warmup-clusterrole.yaml")
    templates = [CHART / "templates" / name for name in names]
    checked = 0
    for template in templates:
        lines = template.read_text().splitlines()
        for number, line in enumerate(lines):
            if not rule_start.match(line):
                continue
            checked += 1
            previous = lines[number - 1].strip()
            assert previous.startswith("#"), f"{template.name}:{number + 1}: rule without comment"
    assert checked >= len(OPERATOR_NAMESPACED)
