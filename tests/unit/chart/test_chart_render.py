"""The chart, rendered by the real helm and validated against Kubernetes 1.34's schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    VALUES_ALL,
    Manifest,
    Render,
    find,
    one,
    run_helm,
    unknown_fields,
)

# Kinds from prometheus-operator: validated against its CRDs, not the Kubernetes schemas.
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ACTIVATOR = f"{FULLNAME}-activator"


def validate(obj: Manifest, monitoring_schemas: dict[str, Manifest]) -> None:
    """Validate one rendered object strictly; raise on any error or unknown field."""
    if obj["kind"] in MONITORING_KINDS:
        schema = monitoring_schemas[f"{obj['apiVersion']}/{obj['kind']}"]
        # Not jsonschema.validate: it first checks the schema itself, and the PrometheusRule
        # CRD has a Go regex (`^(?i)(abort|warn)?$`, a flag mid-pattern) Python's re refuses.
        jsonschema.validators.validator_for(schema)(schema).validate(obj)
        assert unknown_fields(obj, schema) == [], f"{obj['kind']}: fields the CRD lacks"
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


@pytest.mark.helm
@pytest.mark.parametrize("values", [[], [VALUES_ALL]], ids=["default", "all-on"])
def test_helm_lint_strict(helm: Path, values: list[Path]) -> None:
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)]
    for values_file in values:
        args += ["--values", str(values_file)]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.helm
@pytest.mark.parametrize("objects_fixture", ["default_objects", "all_on_objects"])
def test_every_object_is_valid_kubernetes(
    objects_fixture: str,
    request: pytest.FixtureRequest,
    monitoring_crd_schemas: dict[str, Manifest],
) -> None:
    objects: list[Manifest] = request.getfixturevalue(objects_fixture)
    errors = []
    for obj in objects:
        try:
            validate(obj, monitoring_crd_schemas)
        except Exception as error:  # collect all, report all
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    assert errors == []


def test_validation_is_strict(monitoring_crd_schemas: dict[str, Manifest]) -> None:
    """The validators above reject a misspelled field (guards against a no-op validator)."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "Never"}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, monitoring_crd_schemas)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    with pytest.raises(AssertionError, match="fields the CRD lacks"):
        validate(monitor, monitoring_crd_schemas)


@pytest.mark.helm
@pytest.mark.parametrize(
    "bad_value",
    ["operator.replicaCount=2", "activator.pdb.maxUnavailable=1", "crds.install=true", "bogus=1"],
)
def test_values_schema_rejects_unknown_keys(helm: Path, bad_value: str) -> None:
    result = run_helm(
        helm, "template", "wp", str(CHART), "--kube-version", KUBE_VERSION, "--set", bad_value
    )
    assert result.returncode != 0
    assert "additional properties" in result.stderr.lower(), result.stderr


@pytest.mark.helm
def test_chart_refuses_kubernetes_without_native_sidecars(helm: Path) -> None:
    result = run_helm(helm, "template", "wp", str(CHART), "--kube-version", "1.28.9")
    assert result.returncode != 0
    assert "kubeVersion: >=1.29.0-0" in result.stderr


@pytest.mark.helm
def test_values_schema_rejects_bad_types(helm: Path) -> None:
    args = ["template", "wp", str(CHART), "--kube-version", KUBE_VERSION]
    result = run_helm(helm, *args, "--set", "operator.logFormat=xml")
    assert result.returncode != 0
    assert "logFormat" in result.stderr, result.stderr


def _container(deployment: Manifest, name: str) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def _assert_restricted(deployment: Manifest) -> None:
    """Pod Security Standard `restricted`, plus a read-only root filesystem."""
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert "hostNetwork" not in pod and "hostPID" not in pod


@pytest.mark.helm
def test_operator_deployment_defaults(default_objects: list[Manifest]) -> None:
    deployment = one(default_objects, "Deployment", FULLNAME)
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _container(deployment, "operator")
    assert container["image"] == "ghcr.io/warmpool/operator:0.1.0"
    assert container["args"] == [
        "operator",
        "--standalone",
        "--log-format=json",
        "--log-level=info",
        "--health-port=8080",
        "--metrics-port=9090",
        "--agent-image=ghcr.io/warmpool/agent:0.1.0",
        "--agent-image-pull-policy=IfNotPresent",
    ]
    assert "command" not in container  # the image's ENTRYPOINT is `warmpool`
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz"
    assert ports[probe["port"]] == 8080
    assert ports["metrics"] == 9090
    assert container["resources"]["requests"] and container["resources"]["limits"]
    _assert_restricted(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert one(default_objects, "ServiceAccount", FULLNAME)


@pytest.mark.helm
def test_operator_deployment_all_on(all_on_objects: list[Manifest]) -> None:
    deployment = one(all_on_objects, "Deployment", FULLNAME)
    container = _container(deployment, "operator")
    digest = "sha256:" + "0" * 64
    assert container["image"] == f"registry.example.com/warmpool/operator:0.1.0@{digest}"
    assert container["imagePullPolicy"] == "Always"
    args = container["args"]
    assert [arg for arg in args if arg.startswith("--namespace")] == ["--namespace=ml"]
    assert "--prometheus-url=http://prometheus-operated.monitoring:9090" in args
    query = 'sum(rate(nv_inference_request_success{pool="{{pool}}",namespace="{{namespace}}"}[1m]))'
    assert f"--traffic-query={query}" in args
    assert f"--activator-service={NAMESPACE}/{ACTIVATOR}" in args
    agent_digest = "sha256:" + "1" * 64
    assert f"--agent-image=registry.example.com/warmpool/agent:0.1.0@{agent_digest}" in args
    assert args[-1] == "--log-level=debug"  # extraArgs come last
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "warmpool-operator"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["labels"]["example.com/tier"] == "control"
    assert deployment["metadata"]["labels"]["team"] == "ml-platform"
    _assert_restricted(deployment)


@pytest.mark.helm
def test_defaults_leave_optional_parts_out(default_objects: list[Manifest]) -> None:
    kinds = {obj["kind"] for obj in default_objects}
    assert kinds.isdisjoint({"ServiceMonitor", "PodMonitor", "NetworkPolicy"})
    assert kinds.isdisjoint({"PodDisruptionBudget", "Role", "RoleBinding"})
    assert not [obj for obj in default_objects if "activator" in obj["metadata"]["name"]]


@pytest.mark.helm
def test_activator(render: Render) -> None:
    objects = render(set_values=["activator.enabled=true"])
    deployment = one(objects, "Deployment", ACTIVATOR)
    assert deployment["spec"]["replicas"] == 2
    container = _container(deployment, "activator")
    assert container["image"] == "ghcr.io/warmpool/agent:0.1.0"
    assert container["args"] == [
        "activator",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=9090",
        "--log-level=info",
        "--hold-timeout=600",
        "--shutdown-grace=30",
    ]
    _assert_restricted(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ACTIVATOR
    assert pod["terminationGracePeriodSeconds"] == 45  # shutdown grace 30 + 15
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"

    service = one(objects, "Service", ACTIVATOR)
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 9090}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = one(objects, "PodDisruptionBudget", ACTIVATOR)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]

    operator_args = _container(one(objects, "Deployment", FULLNAME), "operator")["args"]
    assert f"--activator-service={NAMESPACE}/{ACTIVATOR}" in operator_args


@pytest.mark.helm
def test_activator_refuses_several_namespaces(helm: Path) -> None:
    """The activator watches one namespace or all: a clear error, not a half-working install."""
    args = ["template", "wp", str(CHART), "--kube-version", KUBE_VERSION]
    args += ["--set", "activator.enabled=true"]
    result = run_helm(helm, *args, "--set", "watchNamespaces={ml,research}")
    assert result.returncode != 0
    assert "the activator watches one namespace or all" in result.stderr
    one_namespace = run_helm(helm, *args, "--set", "watchNamespaces={ml}")
    assert one_namespace.returncode == 0, one_namespace.stderr
    assert '- "--namespace=ml"' in one_namespace.stdout


@pytest.mark.helm
def test_services_select_their_pods(all_on_objects: list[Manifest]) -> None:
    for service in find(all_on_objects, "Service"):
        selector = service["spec"]["selector"]
        matches = [
            d
            for d in find(all_on_objects, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        container_ports = {
            p["name"]
            for c in matches[0]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


@pytest.mark.helm
def test_headroom_priority_class(render: Render, default_objects: list[Manifest]) -> None:
    priority_class = one(default_objects, "PriorityClass", "warmpool-headroom")
    assert priority_class["value"] == -10
    assert priority_class["preemptionPolicy"] == "Never"
    assert priority_class["globalDefault"] is False
    assert not find(render(set_values=["headroom.priorityClass.create=false"]), "PriorityClass")


@pytest.mark.helm
def test_crd_policy(render: Render, default_objects: list[Manifest]) -> None:
    crd = one(default_objects, "CustomResourceDefinition", "inferencepools.warmpool.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"

    not_kept = render(set_values=["crds.keep=false"])
    crd = one(not_kept, "CustomResourceDefinition", "inferencepools.warmpool.dev")
    assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})

    assert not find(render(set_values=["crds.enabled=false"]), "CustomResourceDefinition")


@pytest.mark.helm
def test_rendered_crd_is_the_generated_one(default_objects: list[Manifest]) -> None:
    """The template adds labels and annotations only: the schema arrives intact."""
    generated = yaml.safe_load((CHART / "files/crds/warmpool.dev_inferencepools.yaml").read_text())
    rendered = one(default_objects, "CustomResourceDefinition", "inferencepools.warmpool.dev")
    assert rendered["spec"] == generated["spec"]
    assert rendered["apiVersion"] == generated["apiVersion"]
    assert generated["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()


@pytest.mark.helm
def test_monitoring(all_on_objects: list[Manifest]) -> None:
    monitors = {m["metadata"]["name"]: m for m in find(all_on_objects, "ServiceMonitor")}
    assert set(monitors) == {FULLNAME, ACTIVATOR}
    for name, monitor in monitors.items():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = one(
            all_on_objects, "Service", f"{FULLNAME}-metrics" if name == FULLNAME else name
        )
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        )
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"

    pod_monitor = one(all_on_objects, "PodMonitor", f"{FULLNAME}-pools")
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics"
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_warmpool_dev_pool"],
        "targetLabel": "pool",
        "action": "replace",
    } in endpoint["relabelings"]
    # Labels the pools' Triton pods carry (docs/contracts: warmpool.render).
    selector = pod_monitor["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/part-of": "warmpool",
        "app.kubernetes.io/component": "inference-server",
    }


@pytest.mark.helm
def test_network_policy(all_on_objects: list[Manifest]) -> None:
    policy = one(all_on_objects, "NetworkPolicy", FULLNAME)
    operator = one(all_on_objects, "Deployment", FULLNAME)
    assert policy["spec"]["podSelector"] == operator["spec"]["selector"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress = policy["spec"]["egress"]
    cidrs = [
        peer["ipBlock"]["cidr"]
        for rule in egress
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]
    assert cidrs == ["10.0.0.1/32", "172.18.0.2/32"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert ports == {53, 443, 6443, 9090}


@pytest.mark.helm
def test_namespaced_objects_live_in_the_release_namespace(all_on_objects: list[Manifest]) -> None:
    for obj in all_on_objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] == "RoleBinding" and namespace == "ml":
            continue
        cluster_scoped = {
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "PriorityClass",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
        expected = None if obj["kind"] in cluster_scoped else NAMESPACE
        assert namespace == expected, f"{obj['kind']}/{obj['metadata']['name']}"
