"""The operator's metrics: the per-pool condition series are what a labelled Gauge exported."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from warmpool.controller.metrics import CONDITION_STATUSES, OperatorMetrics, PoolConditions


class GaugeConditions:
    """The labelled Gauge `warmpool_pool_condition` was before it became a collector: the
    oracle the collector's exposition must match, series for series and in order."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            PoolConditions.NAME,
            PoolConditions.HELP,
            list(PoolConditions.LABELS),
            registry=self.registry,
        )

    def set(self, namespace: str, pool: str, conditions: Mapping[str, str]) -> None:
        for kind, current in conditions.items():
            for value in CONDITION_STATUSES:
                self.gauge.labels(namespace=namespace, pool=pool, condition=kind, status=value).set(
                    1 if value == current else 0
                )

    def forget(self, namespace: str, pool: str) -> None:
        for labels in list(self.gauge._metrics):
            if labels[0] == namespace and labels[1] == pool:
                self.gauge.remove(*labels)


def collector_registry(conditions: PoolConditions) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(conditions)
    return registry


def test_pool_conditions_export_what_the_gauge_exported_through_sets_changes_and_forgets() -> None:
    oracle, collector = GaugeConditions(), PoolConditions()
    registry = collector_registry(collector)
    steps: list[tuple[str, str, str, dict[str, str]]] = [
        ("set", "ml", "llama", {"Ready": "False", "Stalled": "False", "Warm": "Unknown"}),
        ("set", "ml", "mistral", {"Ready": "True", "Stalled": "False"}),
        ("set", "ops", "llama", {"Ready": "True"}),
        # a status changes
        ("set", "ml", "llama", {"Ready": "True", "Stalled": "True", "Warm": "True"}),
        # a condition missing from a later status keeps its series, as the Gauge's did
        ("set", "ml", "llama", {"Ready": "False"}),
        # a condition seen for the first time
        ("set", "ml", "mistral", {"Degraded": "True"}),
        ("forget", "ml", "mistral", {}),
        ("forget", "ml", "absent", {}),
        # a pool set again after it was forgotten has only its new series
        ("set", "ml", "mistral", {"Ready": "Unknown"}),
    ]
    for step, (action, namespace, pool, conditions) in enumerate(steps):
        if action == "set":
            oracle.set(namespace, pool, conditions)
            collector.set(namespace, pool, conditions)
        else:
            oracle.forget(namespace, pool)
            collector.forget(namespace, pool)
        # The same series with the same values (a condition first seen later is listed with
        # its pool, where the Gauge listed it last: order within a family carries no meaning).
        ours, theirs = generate_latest(registry), generate_latest(oracle.registry)
        assert sorted(ours.splitlines()) == sorted(theirs.splitlines()), step
        assert ours.splitlines()[:2] == theirs.splitlines()[:2]  # HELP and TYPE lead


def test_pool_conditions_exposition_is_byte_for_byte_the_gauges_when_statuses_are_whole() -> None:
    """The operator sets every condition of a pool's status at once: then even the order, in
    both exposition formats, is the Gauge's."""
    oracle, collector = GaugeConditions(), PoolConditions()
    registry = collector_registry(collector)
    kinds = ("Ready", "WeightsCached", "Warm", "ScaledToZero", "Stalled")
    for index in range(6):
        current = CONDITION_STATUSES[index % 3]
        conditions = {kind: current for kind in kinds}
        key = (f"team-{index % 2}", f"pool-{index}")
        oracle.set(*key, conditions)
        collector.set(*key, conditions)
    for index in (1, 4):
        key = (f"team-{index % 2}", f"pool-{index}")
        oracle.set(*key, dict.fromkeys(kinds, "True"))
        collector.set(*key, dict.fromkeys(kinds, "True"))
    oracle.forget("team-0", "pool-2")
    collector.forget("team-0", "pool-2")
    assert generate_latest(registry) == generate_latest(oracle.registry)
    assert generate_openmetrics(registry) == generate_openmetrics(oracle.registry)


def test_operator_metrics_set_and_forget_a_pools_condition_series() -> None:
    metrics = OperatorMetrics()
    metrics.set_pool_conditions("ml", "llama", {"Stalled": "True"})
    metrics.set_pool_conditions("ml", "other", {"Stalled": "False"})
    labels = {"namespace": "ml", "pool": "llama", "condition": "Stalled"}
    value = metrics.registry.get_sample_value
    assert value(PoolConditions.NAME, labels | {"status": "True"}) == 1.0
    assert value(PoolConditions.NAME, labels | {"status": "False"}) == 0.0
    metrics.set_pool_conditions("ml", "llama", {"Stalled": "False"})
    assert value(PoolConditions.NAME, labels | {"status": "True"}) == 0.0
    assert value(PoolConditions.NAME, labels | {"status": "False"}) == 1.0
    metrics.forget_pool("ml", "llama")
    assert value(PoolConditions.NAME, labels | {"status": "False"}) is None
    other = labels | {"pool": "other", "status": "False"}
    assert value(PoolConditions.NAME, other) == 1.0


def test_a_scrape_filtered_by_name_collects_no_condition_series() -> None:
    """The benchmark counts ticks with `/metrics?name[]=warmpool_reconcile_total`: the
    registry must know the collector's name without collecting it."""
    metrics = OperatorMetrics()
    metrics.set_pool_conditions("ml", "llama", {"Stalled": "True"})
    metrics.reconciles.labels(trigger="tick", result="ok").inc()
    text = generate_latest(metrics.registry.restricted_registry(["warmpool_reconcile_total"]))
    assert b"warmpool_reconcile_total{" in text
    assert PoolConditions.NAME.encode() not in text
