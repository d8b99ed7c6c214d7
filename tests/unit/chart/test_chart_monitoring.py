"""The chart's PrometheusRule and Grafana dashboard, checked by the real promtool against the
series the operator's own metrics code exports (OperatorMetrics, driven through the Reporter
as a sync drives it)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, Manifest
from prometheus_client import generate_latest

from support.prometheus import exposition_series, promtool
from warmpool.api.status import ColdStart
from warmpool.controller.metrics import OperatorMetrics

DASHBOARD = CHART / "files" / "monitoring" / "dashboard.json"
#: Grafana's variables, as a query with "All" selected sends them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$pool": ".*"}


def rule_groups(objects: list[Manifest]) -> list[dict[str, Any]]:
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable, value in GRAFANA_VARIABLES.items():
        exprs = [expr.replace(variable, value) for expr in exprs]
    return exprs


def cold_start(seconds: float) -> ColdStart:
    return ColdStart(
        pod="p",
        started_at=datetime(2026, 12, 4, tzinfo=UTC),
        total_seconds=seconds,
        scheduling_seconds=1,
        prefetch_seconds=seconds / 2,
        server_start_seconds=1,
        warmup_seconds=seconds / 2 - 2,
    )


def exported(metrics: OperatorMetrics) -> dict[str, float]:
    """{series in PromQL notation: value} as the operator's /metrics serves them."""
    return exposition_series(generate_latest(metrics.registry).decode())


@pytest.mark.helm
def test_the_rules_are_valid_prometheus_rules(all_on_objects: list[Manifest], tmp_path: Path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(all_on_objects)}))
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"warmpool:dashboard:{i}", "expr": e} for i, e in enumerate(dashboard_exprs())
    ]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    done = promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.helm
def test_every_metric_the_rules_and_dashboard_read_is_exported(
    all_on_objects: list[Manifest],
) -> None:
    metrics = OperatorMetrics()
    metrics.observe_cold_start("ml", "llama", cold_start(30))
    metrics.set_pool_conditions("ml", "llama", {"Stalled": "False"})
    metrics.set_pool_phases(["Ready"])
    metrics.count_write("apply", "Deployment")
    metrics.reconciles.labels(trigger="tick", result="ok").inc()
    metrics.reconcile_seconds.labels(trigger="tick").observe(0.01)
    metrics.scale_decisions.labels(direction="up").inc()
    names = {series.split("{")[0] for series in exported(metrics)}
    texts = dashboard_exprs() + [r["expr"] for g in rule_groups(all_on_objects) for r in g["rules"]]
    used = {name for text in texts for name in re.findall(r"\bwarmpool_[a-z_]+\b", text)}
    assert used - names == set()


@pytest.mark.helm
def test_the_alerts_fire_on_the_operators_own_series(
    all_on_objects: list[Manifest], tmp_path: Path
) -> None:
    """promtool test rules: 20 minutes of series taken from OperatorMetrics after a pool that
    cold-starts slowly, one that cold-starts fast, one Stalled and one whose traffic is
    unreadable; the SLO in values-all.yaml is 90 s."""
    before = OperatorMetrics()
    for pool in ("slow", "fast", "stuck", "blind"):
        before.set_pool_conditions("ml", pool, {"Stalled": "False", "MetricsAvailable": "True"})
    after = OperatorMetrics()
    for seconds in (150, 200, 170):
        after.observe_cold_start("ml", "slow", cold_start(seconds))
    after.observe_cold_start("ml", "fast", cold_start(12))
    after.set_pool_conditions("ml", "slow", {"Stalled": "False", "MetricsAvailable": "True"})
    after.set_pool_conditions("ml", "fast", {"Stalled": "False", "MetricsAvailable": "True"})
    after.set_pool_conditions("ml", "stuck", {"Stalled": "True", "MetricsAvailable": "True"})
    after.set_pool_conditions("ml", "blind", {"Stalled": "False", "MetricsAvailable": "False"})
    old, new = exported(before), exported(after)
    input_series = [
        # one minute at the "before" value (0 when the series did not exist), then 20 at "after"
        {"series": name, "values": f"{old.get(name, 0):g} {value:g}x20"}
        for name, value in new.items()
        if name.startswith(("warmpool_cold_start", "warmpool_pool_condition"))
    ]
    groups = rule_groups(all_on_objects)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    alert = {"severity": "warning", "namespace": "ml"}
    rules = {r["alert"]: r for g in groups for r in g["rules"]}

    def annotations(name: str, pool: str) -> dict[str, str]:
        """The rule's annotations with the pool's labels filled in (these have no $value)."""
        return {
            key: text.replace("{{ $labels.namespace }}", "ml").replace("{{ $labels.pool }}", pool)
            for key, text in rules[name]["annotations"].items()
        }

    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "WarmpoolColdStartSLO",
                        "exp_alerts": [
                            {
                                "exp_labels": {**alert, "pool": "slow"},
                                # 150, 200, 170 s in buckets 120/180/300: 264 s at 0.9
                                "exp_annotations": {
                                    "summary": "Cold starts of pool ml/slow are over the SLO",
                                    "description": (
                                        "The 0.9 quantile of the pool's cold starts over the "
                                        "last 1h is 4m 24s (SLO 90s). status.lastColdStart and "
                                        "the ColdStart Events say which phase took the time."
                                    ),
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "WarmpoolPoolStalled",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **alert,
                                    "pool": "stuck",
                                    "condition": "Stalled",
                                    "status": "True",
                                },
                                "exp_annotations": annotations("WarmpoolPoolStalled", "stuck"),
                            }
                        ],
                    },
                    # for: 15m, the condition turned False at minute 1
                    {
                        "eval_time": "10m",
                        "alertname": "WarmpoolMetricsUnavailable",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "WarmpoolMetricsUnavailable",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **alert,
                                    "pool": "blind",
                                    "condition": "MetricsAvailable",
                                    "status": "False",
                                },
                                "exp_annotations": annotations(
                                    "WarmpoolMetricsUnavailable", "blind"
                                ),
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.helm
def test_the_dashboard_configmap_carries_the_file(all_on_objects: list[Manifest]) -> None:
    (config_map,) = [
        o
        for o in all_on_objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Inference"}
    assert json.loads(config_map["data"]["warmpool.json"]) == json.loads(DASHBOARD.read_text())
