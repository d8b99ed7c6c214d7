"""The pre-pull gate: a new revision of the weights waits for its pre-pull before it rolls out.

Pure decisions first (controller/prepull/gate.py), then the pool reconciler over the in-memory
API of test_controller_reconcile.py: what it applies while held (the Deployment keeps its
weights, the DaemonSet fetches the new ones, replicas still change), that an idle resync writes
nothing, and the release. The same on the real control plane: tests/e2e/test_prepull.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_builders import make_pod
from test_controller_reconcile import NOW, MemoryApi
from test_controller_status import conditions, inputs
from test_prepull_state import pool_body, prepull_pod

from warmpool.api.resource import InferencePool
from warmpool.api.status import RolloutPrepull, RolloutStatus
from warmpool.contract import PoolKey
from warmpool.controller.kube.apply import Applier
from warmpool.controller.kube.events import EventRecorder
from warmpool.controller.kube.watch import WatchCache, slim_deployment
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.reconcile import Reconciler
from warmpool.controller.pool.status import compute_status
from warmpool.controller.prepull.gate import (
    PREPULLED,
    PREPULLING,
    TIMED_OUT,
    PrepullNodes,
    decide,
    needed_nodes,
    prepull_condition,
    served_model,
)
from warmpool.controller.prepull.state import (
    cached_node_count,
    desired_node_labels,
    parse_prepull_pod,
    pool_view,
    prepull_nodes,
)
from warmpool.controller.settings import OperatorSettings
from warmpool.render.children import build_children
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import build_deployment
from warmpool.render.labels import (
    MODEL_FINGERPRINT_ANNOTATION,
    MODEL_SPEC_ANNOTATION,
    REVISION_ANNOTATION,
    model_fingerprint,
)
from warmpool.scaling.service import Scaler

KEY = PoolKey("ml", "llama")
CONFIG = RenderConfig()


def pool_of(revision: str, **cache: Any) -> InferencePool:
    body = pool_body(revision=revision)
    body["spec"]["cache"].update(cache)
    return InferencePool.from_manifest(body)


def fp(revision: str) -> str:
    return model_fingerprint(pool_of(revision).spec.model)


def gate(
    pool: InferencePool,
    served: str | None = "r1",
    *,
    verified: int = 0,
    eligible: int = 3,
    previous: RolloutPrepull | None = None,
    replicas: int = 2,
    now: datetime = NOW,
) -> Any:
    return decide(
        pool,
        served=pool_of(served).spec.model if served else None,
        nodes=PrepullNodes(verified=verified, eligible=eligible),
        previous=previous,
        replicas=replicas,
        default_timeout=600,
        now=now,
    )


def rendered(pool: InferencePool, kind: str) -> dict[str, Any]:
    children = build_children(pool, CONFIG, replicas=2)
    return next(child for child in children if child["kind"] == kind)


# ---- the decision --------------------------------------------------------------------------


def test_a_new_fingerprint_is_held_while_no_node_holds_it() -> None:
    pool = pool_of("r2")
    hold = gate(pool)
    assert hold.held
    assert hold.kept_model is not None
    assert hold.kept_model.revision == "r1"  # the Deployment renders the served weights
    assert hold.record == RolloutPrepull(
        fingerprint=fp("r2"),
        previous_fingerprint=fp("r1"),
        held=True,
        verified_nodes=0,
        needed_nodes=2,
        since=NOW,
    )
    assert hold.event is None
    children = build_children(pool, CONFIG, replicas=2, kept_model=hold.kept_model)
    by_kind = {child["kind"]: child for child in children}
    # The DaemonSet pre-pulls the NEW weights; the Deployment keeps the old ones.
    daemonset = by_kind["DaemonSet"]["spec"]["template"]["metadata"]["annotations"]
    assert daemonset[MODEL_FINGERPRINT_ANNOTATION] == fp("r2")
    assert by_kind["DaemonSet"] == rendered(pool, "DaemonSet")
    assert by_kind["Deployment"] == rendered(pool_of("r1"), "Deployment")


def test_no_hold_without_prepull_a_served_model_or_a_change() -> None:
    pool = pool_of("r2")
    off = InferencePool.from_manifest(pool_body(prepull=False, revision="r2"))
    for hold in (gate(off), gate(pool, served=None), gate(pool, served="r2")):
        assert not hold.held and hold.kept_model is None and hold.record is None
        assert hold.signature == "" and hold.event is None
    assert not gate(pool_of("r2", prepullTimeoutSeconds=0)).held  # 0: roll out at once


def test_enough_verified_nodes_release_the_roll_out() -> None:
    pool = pool_of("r2")
    held = gate(pool, verified=1)
    assert held.held and held.record.verified_nodes == 1
    released = gate(pool, verified=2, previous=held.record, now=NOW + timedelta(seconds=30))
    assert not released.held and released.kept_model is None
    assert released.record == held.record.model_copy(update={"held": False, "verified_nodes": 2})
    assert released.event is not None
    assert (released.event.type, released.event.reason) == ("Normal", PREPULLED)
    assert "verified on 2/2 node(s)" in released.event.note
    # Once the Deployment carries the new weights, the released record stays as it is.
    after = gate(pool, served="r2", verified=3, previous=released.record)
    assert after.record == released.record and after.event is None
    # Until then (the release's apply did not land in the watch cache yet): no second hold.
    again = gate(pool, verified=0, previous=released.record)
    assert not again.held and again.record == released.record and again.event is None


def test_the_timeout_counts_from_the_first_hold_and_rolls_out_anyway() -> None:
    pool = pool_of("r2", prepullTimeoutSeconds=120)
    first = gate(pool, verified=1)
    later = gate(pool, verified=1, previous=first.record, now=NOW + timedelta(seconds=119))
    assert later.held and later.record == first.record  # since kept: no write while waiting
    late = gate(pool, verified=1, previous=later.record, now=NOW + timedelta(seconds=120))
    assert not late.held and late.record is not None and late.record.timed_out
    assert late.event is not None and (late.event.type, late.event.reason) == ("Warning", TIMED_OUT)
    assert "not done after 120s (verified on 1/2 node(s))" in late.event.note
    # The default timeout is the roll-out's progress deadline.
    assert gate(
        pool_of("r2"),
        now=NOW,
        previous=first.record.model_copy(update={"since": NOW - timedelta(seconds=600)}),
    ).record.timed_out


def test_a_further_change_while_held_restarts_the_hold() -> None:
    first = gate(pool_of("r2"))
    moved = gate(pool_of("r3"), previous=first.record, now=NOW + timedelta(seconds=50))
    assert moved.held and moved.record.fingerprint == fp("r3")
    assert moved.record.since == NOW + timedelta(seconds=50)
    assert moved.kept_model is not None and moved.kept_model.revision == "r1"
    back = gate(pool_of("r1"), previous=moved.record)  # back to the served weights
    assert not back.held and back.record is None


@pytest.mark.parametrize(
    ("replicas", "eligible", "needed"), [(2, 3, 2), (0, 3, 1), (5, 3, 3), (2, 0, 0)]
)
def test_needed_nodes(replicas: int, eligible: int, needed: int) -> None:
    assert needed_nodes(replicas, eligible) == needed


def test_no_eligible_node_releases_at_once() -> None:
    hold = gate(pool_of("r2"), eligible=0)
    assert not hold.held and hold.event is not None
    assert "no node runs the pre-pull DaemonSet" in hold.event.note


def test_served_model_is_read_back_from_the_rendered_deployment() -> None:
    pool = pool_of("r1")
    deployment = build_deployment(pool, CONFIG, replicas=1)
    assert served_model(deployment) == pool.spec.model
    assert served_model(slim_deployment(deployment)) == pool.spec.model  # the watch cache's
    no_prepull = InferencePool.from_manifest(pool_body(prepull=False))
    assert served_model(build_deployment(no_prepull, CONFIG, replicas=1)) is None
    broken = copy.deepcopy(deployment)
    broken["metadata"]["annotations"][MODEL_SPEC_ANNOTATION] = "{not json"
    assert served_model(broken) is None
    assert served_model(None) is None


def test_prepull_nodes_counts_verified_nodes_of_a_fingerprint_among_all() -> None:
    old, new = pool_body(revision="r1"), pool_body(revision="r2")
    pods = [
        parse_prepull_pod(prepull_pod(new, "gpu-0", uid="a")),
        parse_prepull_pod(prepull_pod(new, "gpu-1", uid="b", ready=False)),
        parse_prepull_pod(prepull_pod(old, "gpu-2", uid="c")),
        parse_prepull_pod(prepull_pod(old, "gpu-3", uid="d", deleting=True)),
    ]
    assert prepull_nodes(pods, fp("r2")) == PrepullNodes(verified=1, eligible=4)
    assert prepull_nodes(pods, fp("r1")) == PrepullNodes(verified=1, eligible=4)


# ---- status ----------------------------------------------------------------------------------


def held_record(**update: Any) -> RolloutPrepull:
    record = gate(pool_of("r2")).record
    return record.model_copy(update=update)


def deployment_at(revision: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {"template": {"metadata": {"annotations": {REVISION_ANNOTATION: revision}}}},
        "status": {},
    }


WARM = {
    "initialized": "2026-01-01T00:00:30Z",
    "containers_ready": "2026-01-01T00:00:35Z",
    "warm": "2026-01-01T00:00:40Z",
}


def warm_pod(name: str, revision: str) -> dict[str, Any]:
    made = make_pod(name, **WARM)
    made["metadata"]["annotations"] = {REVISION_ANNOTATION: revision}
    return made


def test_status_while_held_is_in_progress_and_names_the_pending_weights() -> None:
    record = held_record(verified_nodes=1)
    status = compute_status(
        inputs([warm_pod("a", "rev1")], deployment=deployment_at("rev1"), prepull=record)
    )
    got = conditions(status)
    # kstatus: Reconciling=True is InProgress; the old replica still serves.
    assert got["Reconciling"] == ("True", PREPULLING)
    assert got["Progressing"] == ("True", PREPULLING)
    assert got["Ready"] == ("True", "Serving")
    assert got["Stalled"] == ("False", "Progressing")
    message = next(c.message for c in status.conditions if c.type == "Progressing")
    assert f"new weights {fp('r2')} verified on 1/2 node(s)" in message
    assert status.rollout == RolloutStatus(
        revision="rev1", updated_replicas=1, ready_replicas=1, warm_replicas=1, prepull=record
    )


def test_a_roll_out_released_by_the_timeout_says_so_while_it_rolls() -> None:
    record = held_record(held=False, timed_out=True, verified_nodes=1)
    pods = [warm_pod("a", "rev1"), make_pod("b", initialized="2026-01-01T00:00:30Z")]
    pods[1]["metadata"]["annotations"] = {REVISION_ANNOTATION: "rev2"}
    status = compute_status(inputs(pods, deployment=deployment_at("rev2"), prepull=record))
    got = conditions(status)
    assert got["Progressing"] == ("True", TIMED_OUT)
    assert got["Reconciling"] == ("True", "RollingOut")
    # Rolled out: the conditions are the roll-out's again, the record stays.
    done = compute_status(
        inputs([warm_pod("b", "rev2")], deployment=deployment_at("rev2"), prepull=record)
    )
    assert conditions(done)["Progressing"] == ("True", "RolloutComplete")
    assert done.rollout is not None and done.rollout.prepull == record
    assert prepull_condition(None, True) is None


# ---- the pool reconciler ---------------------------------------------------------------------


class EventsApi(MemoryApi):
    """MemoryApi that keeps the Events it is asked to create."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.events.append(manifest)
        return await super().create(manifest)


class Nodes:
    """Stands in for PrepullReconciler.nodes (tested in test_prepull_state.py)."""

    def __init__(self) -> None:
        self.verified: dict[str, int] = {}

    def __call__(self, key: tuple[str, str], fingerprint: str) -> PrepullNodes:
        return PrepullNodes(verified=self.verified.get(fingerprint, 0), eligible=3)


def pool_with(revision: str, replicas: int) -> dict[str, Any]:
    body = pool_body(revision=revision, generation=1)
    body["spec"]["replicas"] = replicas
    return body


def reconciler_with(nodes: Nodes) -> tuple[Reconciler, EventsApi, WatchCache, list[datetime]]:
    api = EventsApi()
    cache = WatchCache()
    api._store(pool_with("r1", 2))
    cache.observe_pool(None, api.objects[("InferencePool", "ml", "llama")])
    clock = [NOW]
    reconciler = Reconciler(
        settings=OperatorSettings(),
        client=api,  # type: ignore[arg-type]
        cache=cache,
        applier=Applier(api),  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
        events=EventRecorder(api, instance="test"),  # type: ignore[arg-type]
        scaler=Scaler(None, interval_seconds=10),
        clock=lambda: clock[0],
        prepull_nodes=nodes,
    )
    return reconciler, api, cache, clock


def live(api: EventsApi, kind: str, name: str = "llama") -> dict[str, Any]:
    return api.objects[(kind, "ml", name)]


def edit(api: MemoryApi, watch: WatchCache, **spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(live(api, "InferencePool"))
    body["spec"].update(spec)
    body["metadata"]["generation"] += 1
    stored = api._store(body)
    watch.observe_pool(None, stored)
    return stored


def template_fingerprint(deployment: dict[str, Any]) -> str:
    return str(deployment["metadata"]["annotations"][MODEL_FINGERPRINT_ANNOTATION])


async def test_reconciler_holds_the_template_applies_replicas_and_releases() -> None:
    nodes = Nodes()
    reconciler, api, cache, clock = reconciler_with(nodes)
    await reconciler.sync(KEY, "create")
    cache.observe_deployment(None, live(api, "Deployment"))
    revision_r1 = live(api, "Deployment")["spec"]["template"]["metadata"]["annotations"]

    # New weights, no node holds them: the DaemonSet fetches them, the Deployment keeps r1.
    edit(api, cache, model={"uri": "s3://models/llama", "revision": "r2"})
    clock[0] = NOW + timedelta(seconds=10)
    await reconciler.sync(KEY, "update")
    assert template_fingerprint(live(api, "Deployment")) == fp("r1")
    assert live(api, "Deployment")["spec"]["template"]["metadata"]["annotations"] == revision_r1
    ds = live(api, "DaemonSet", "llama-prepull")["spec"]["template"]["metadata"]["annotations"]
    assert ds[MODEL_FINGERPRINT_ANNOTATION] == fp("r2")
    status = live(api, "InferencePool")["status"]
    assert status["rollout"]["prepull"]["held"] is True
    assert status["rollout"]["prepull"]["since"] == "2026-01-01T12:00:10Z"
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons["Reconciling"] == reasons["Progressing"] == PREPULLING

    # An idle resync while held: no write, no read.
    cache.observe_deployment(None, live(api, "Deployment"))
    cache.observe_pool(None, live(api, "InferencePool"))
    api.calls.clear()
    clock[0] = NOW + timedelta(seconds=40)
    await reconciler.sync(KEY, "tick")
    assert api.calls == []

    # A scale change while held applies; the template still waits.
    edit(api, cache, replicas=3)
    await reconciler.sync(KEY, "update")
    assert live(api, "Deployment")["spec"]["replicas"] == 3
    assert template_fingerprint(live(api, "Deployment")) == fp("r1")
    assert live(api, "InferencePool")["status"]["rollout"]["prepull"]["neededNodes"] == 3

    # Three nodes verified: released, with an Event; the Deployment gets the r2 template.
    cache.observe_deployment(None, live(api, "Deployment"))
    cache.observe_pool(None, live(api, "InferencePool"))
    nodes.verified[fp("r2")] = 3
    api.calls.clear()
    api.events.clear()
    await reconciler.sync(KEY, "tick")
    assert template_fingerprint(live(api, "Deployment")) == fp("r2")
    assert [(e["type"], e["reason"]) for e in api.events] == [("Normal", PREPULLED)]
    assert f"new weights {fp('r2')} verified on 3/3 node(s)" in api.events[0]["note"]
    record = live(api, "InferencePool")["status"]["rollout"]["prepull"]
    assert (record["held"], record["verifiedNodes"], record["neededNodes"]) == (False, 3, 3)

    # Converged again: nothing more.
    cache.observe_deployment(None, live(api, "Deployment"))
    cache.observe_pool(None, live(api, "InferencePool"))
    api.calls.clear()
    await reconciler.sync(KEY, "tick")
    assert api.writes() == []


async def test_reconciler_rolls_out_after_the_timeout_with_a_warning() -> None:
    nodes = Nodes()
    reconciler, api, cache, clock = reconciler_with(nodes)
    await reconciler.sync(KEY, "create")
    cache.observe_deployment(None, live(api, "Deployment"))
    edit(
        api,
        cache,
        model={"uri": "s3://models/llama", "revision": "r2"},
        cache={"kind": "node", "prepull": True, "prepullTimeoutSeconds": 60},
    )
    await reconciler.sync(KEY, "update")
    assert template_fingerprint(live(api, "Deployment")) == fp("r1")
    cache.observe_pool(None, live(api, "InferencePool"))
    clock[0] = NOW + timedelta(seconds=61)
    api.events.clear()
    await reconciler.sync(KEY, "tick")
    assert template_fingerprint(live(api, "Deployment")) == fp("r2")
    assert [(e["type"], e["reason"]) for e in api.events] == [("Warning", TIMED_OUT)]
    record = live(api, "InferencePool")["status"]["rollout"]["prepull"]
    assert (record["held"], record["timedOut"]) == (False, True)


def test_a_released_record_survives_the_status_round_trip() -> None:
    record = held_record(held=False, timed_out=True)
    dumped = RolloutStatus(revision="x", prepull=record).model_dump(by_alias=True, mode="json")
    assert RolloutStatus.model_validate(dumped).prepull == record
    assert dumped["prepull"]["since"] == NOW.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(dumped["prepull"]["since"]).tzinfo == UTC


# ---- node labels while held ----------------------------------------------------------------


def test_nodes_holding_the_kept_weights_stay_labelled_while_held() -> None:
    old, new = pool_body(revision="r1"), pool_body(revision="r2")
    pods = [
        parse_prepull_pod(prepull_pod(new, "gpu-0", uid="a")),
        parse_prepull_pod(prepull_pod(old, "gpu-1", uid="b")),
        parse_prepull_pod(prepull_pod(old, "gpu-2", uid="c", ready=False)),
        parse_prepull_pod(prepull_pod(old, "gpu-3", uid="d", deleting=True)),
    ]
    assert desired_node_labels(pods, fp("r2"), fp("r1")) == {"gpu-0": fp("r2"), "gpu-1": fp("r1")}
    assert desired_node_labels(pods, fp("r2")) == {"gpu-0": fp("r2")}  # released: new only
    assert cached_node_count(desired_node_labels(pods, fp("r2"), fp("r1")), fp("r2")) == 1


def test_pool_view_keeps_the_held_fingerprint_only_while_held() -> None:
    record = gate(pool_of("r2")).record
    body = pool_body(revision="r2")
    body["status"] = {
        "rollout": {"revision": "x", "prepull": record.model_dump(by_alias=True, mode="json")}
    }
    assert pool_view(body).held_fingerprint == fp("r1")
    body["status"]["rollout"]["prepull"]["held"] = False
    assert pool_view(body).held_fingerprint is None
    assert pool_view(pool_body(revision="r2")).held_fingerprint is None
