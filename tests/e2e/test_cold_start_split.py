"""Node provisioning and image pulls split out of a cold start, on the real control plane.

The pod is created while no node can take it (its GPU product exists on no node): the real
scheduler marks it Unschedulable; then a node appears (as an autoscaler would add one) and the
pod starts there. The node's creation time splits node provisioning out of scheduling.

Mocked: KWOK plays the kubelet and pulls no image, so the test posts the core/v1 `Pulled` Event a
kubelet posts after a pull (same reason, source and message format as the kubelet's
`Successfully pulled image "..." in 1s (1s including waiting)`); and the warm-up sidecar (the
test opens the warm gate as it does).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes
import pytest
import yaml
from node_support import OwnGpuNodes
from operator_support import (
    ROOT,
    TIMEOUT,
    OperatorProcess,
    condition,
    open_gate,
    pool_pods,
)
from pool_support import operator_fixture  # noqa: F401  (fixture `operator`)
from rollout_support import one_gpu_nodes, pool_manifest
from test_operator import create_pool, now_rfc3339, pool_events, wait_pool
from test_operator_helm import helm

from support.prometheus import exposition_series, promtool, require_promtool
from warmpool.contract import parse_time
from warmpool.envtest import LocalCluster, poll_until


@pytest.fixture
def gpu_nodes(cluster: LocalCluster, k8s: kubernetes.client.ApiClient) -> Iterator[OwnGpuNodes]:
    with one_gpu_nodes(cluster, k8s, "split", 0) as nodes:
        yield nodes


def seconds_past(moment: datetime, seconds: float) -> bool:
    """Whether the wall clock is `seconds` past `moment` (condition times have 1 s resolution)."""
    return datetime.now(UTC) >= moment + timedelta(seconds=seconds)


def test_node_provisioning_and_image_pull_are_their_own_phases(
    cluster: LocalCluster,
    k8s: kubernetes.client.ApiClient,
    namespace: str,
    gpu_nodes: OwnGpuNodes,
    operator: OperatorProcess,
) -> None:
    create_pool(k8s, pool_manifest("llama", namespace, server=gpu_nodes.server_spec()))

    def unschedulable() -> dict[str, Any] | None:
        for pod in pool_pods(k8s, namespace, "llama"):
            scheduled = condition(pod, "PodScheduled") or {}
            if scheduled.get("reason") == "Unschedulable":
                return pod
        return None

    pod = poll_until(unschedulable, what="the pod Unschedulable", timeout=TIMEOUT)
    created = parse_time(pod["metadata"]["creationTimestamp"])
    assert created is not None
    poll_until(lambda: seconds_past(created, 2), what="2 s after the pod", timeout=TIMEOUT)
    gpu_nodes.add("a", gpus=1)

    def running() -> dict[str, Any] | None:
        for found in pool_pods(k8s, namespace, "llama"):
            ready = condition(found, "ContainersReady") or {}
            initialized = condition(found, "Initialized") or {}
            if ready.get("status") == "True" and initialized.get("status") == "True":
                return found
        return None

    pod = poll_until(running, what="the pod running on the new node", timeout=TIMEOUT)
    initialized_at = parse_time(condition(pod, "Initialized")["lastTransitionTime"])  # type: ignore[index]
    assert initialized_at is not None
    poll_until(lambda: seconds_past(initialized_at, 2), what="2 s after init", timeout=TIMEOUT)
    pulled_at = now_rfc3339()  # whole seconds, as the kubelet's Event times are
    kubernetes.client.CoreV1Api(k8s).create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": f"{pod['metadata']['name']}."},
            "involvedObject": {
                "kind": "Pod",
                "namespace": namespace,
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
                "apiVersion": "v1",
                "fieldPath": "spec.containers{triton}",
            },
            "reason": "Pulled",
            "message": (
                'Successfully pulled image "nvcr.io/nvidia/tritonserver:25.01-py3" in 1s '
                "(1s including waiting). Image size: 1000 bytes."
            ),
            "source": {"component": "kubelet", "host": pod["spec"]["nodeName"]},
            "firstTimestamp": pulled_at,
            "lastTimestamp": pulled_at,
            "count": 1,
            "type": "Normal",
        },
    )
    pulled = parse_time(pulled_at)
    assert pulled is not None
    poll_until(lambda: seconds_past(pulled, 1), what="1 s after the pull", timeout=TIMEOUT)
    open_gate(k8s, namespace, pod["metadata"]["name"], now_rfc3339())

    pool = wait_pool(
        k8s,
        namespace,
        "llama",
        "the cold start reported",
        lambda p: (p.get("status") or {}).get("lastColdStart"),
        operator,
    )
    cold = pool["status"]["lastColdStart"]
    assert cold["nodeProvisioningSeconds"] >= 1.0  # the node came 2+ s after the pod
    assert cold["imagePullSeconds"] == 1.0
    phases = [
        "nodeProvisioningSeconds",
        "imagePullSeconds",
        "schedulingSeconds",
        "prefetchSeconds",
        "serverStartSeconds",
        "warmupSeconds",
    ]
    assert abs(sum(cold[p] for p in phases) - cold["totalSeconds"]) < 0.01
    notes = [
        e["note"] for e in pool_events(cluster, namespace, "llama") if e["reason"] == "ColdStart"
    ]
    assert notes and "node provisioning" in notes[0] and "image pull 1.0s" in notes[0]
    assert operator.metric("warmpool_cold_start_seconds_count", phase="node_provisioning") == 1
    assert (
        operator.metric(
            "warmpool_cold_start_seconds_sum", namespace=namespace, pool="llama", phase="image_pull"
        )
        == 1.0
    )

    # The operator's real series: a valid exposition (promtool check metrics), on which the
    # chart's cold-start alert fires for this pool once the SLO is below this cold start.
    scraped = operator.metrics()
    workdir = cluster.logs_dir / f"promtool-{namespace}"
    workdir.mkdir()
    (workdir / "metrics.txt").write_text(scraped)
    lint = subprocess.run(
        ["sh", "-c", f"{require_promtool()} check metrics < metrics.txt"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    slo = cold["totalSeconds"] / 2
    rendered = helm(
        cluster,
        "template",
        "wp",
        str(ROOT / "charts" / "warmpool"),
        "--kube-version",
        "1.34.4",
        "--show-only",
        "templates/prometheusrule.yaml",
        "--set",
        "prometheus.prometheusRule.enabled=true",
        "--set-json",  # --set makes a float a string
        f"prometheus.prometheusRule.coldStartSLOSeconds={slo}",
    )
    assert rendered.returncode == 0, rendered.stderr
    groups = yaml.safe_load(rendered.stdout)["spec"]["groups"]
    for group in groups:  # annotations are test_chart_monitoring.py's; here: does it fire
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    series = {
        name: value
        for name, value in exposition_series(scraped).items()
        if name.startswith(("warmpool_cold_start_seconds", "warmpool_pool_condition"))
        and f'namespace="{namespace}"' in name
    }
    assert series, "the operator exported no per-pool series"
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                # before the cold start (0), then the scraped values for 10 minutes
                "input_series": [
                    {"series": name, "values": f"0 {value:g}x10"} for name, value in series.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "WarmpoolColdStartSLO",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": namespace,
                                    "pool": "llama",
                                }
                            }
                        ],
                    },
                    {"eval_time": "5m", "alertname": "WarmpoolPoolStalled", "exp_alerts": []},
                ],
            }
        ],
    }
    (workdir / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = promtool("test", "rules", "tests.yaml", cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
