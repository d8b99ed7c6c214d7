"""Strategy Auto (docs/disruption.md): surge, and replace in place once a surged replica found
no GPU within surgeTimeoutSeconds; the decision, its render, status, Event and writes.

The scheduler's verdicts are written into pods here as the real kube-scheduler writes them (its
message format is checked on the real control plane in tests/e2e/test_status_tools.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from controller_builders import make_pod, make_pool
from pydantic import ValidationError
from test_controller_reconcile import MemoryApi, setup
from test_controller_status import conditions, inputs
from test_controller_status_kstatus import WARM, deployment, pod

from warmpool.api.resource import InferencePool
from warmpool.api.spec import RolloutSpec
from warmpool.api.status import InferencePoolStatus, RolloutStatus
from warmpool.controller.kube.apply import Applier
from warmpool.controller.kube.events import EventRecorder
from warmpool.controller.kube.watch import WatchCache
from warmpool.controller.metrics import OperatorMetrics
from warmpool.controller.pool.fallback import RolloutPlan, gpu_starved_since, plan_rollout
from warmpool.controller.pool.reconcile import Reconciler
from warmpool.controller.pool.status import compute_status
from warmpool.controller.settings import OperatorSettings
from warmpool.render.config import RenderConfig
from warmpool.render.deployment import build_deployment
from warmpool.render.labels import REVISION_ANNOTATION
from warmpool.scaling.service import Scaler

SINCE = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
NO_GPU = (
    "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
    "available: 2 No preemption victims found for incoming pod."
)


def unschedulable(
    name: str, revision: str, message: str = NO_GPU, since: datetime = SINCE
) -> dict[str, Any]:
    made = pod(name, revision, scheduled=None)
    made["status"]["conditions"].insert(
        0,
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    return made


def spec(**rollout: Any) -> Any:
    return InferencePool.model_validate(make_pool(rollout=rollout)).spec


ROLLING = [pod("a", "r1", **WARM), pod("b", "r1", **WARM)]


def test_a_surged_replica_without_a_gpu_waits_then_falls_back() -> None:
    pods = [*ROLLING, unschedulable("new", "r2")]
    waiting = plan_rollout(spec(), deployment("r2"), pods, None, SINCE + timedelta(seconds=119))
    assert (waiting.strategy, waiting.fallback, waiting.replace_revision) == ("Surge", "", None)
    assert "nvidia.com/gpu" in waiting.waiting and "2026-01-01T00:03:00Z" in waiting.waiting
    fell = plan_rollout(spec(), deployment("r2"), pods, None, SINCE + timedelta(seconds=120))
    assert (fell.strategy, fell.replace_revision) == ("Replace", "r2")
    assert fell.fallback == (
        "no free nvidia.com/gpu for a surged replica after 120 s: replacing in place, warm "
        "replicas drop by up to 1 while each successor warms up"
    )


@pytest.mark.parametrize(
    "new_pod",
    [
        # another reason than GPUs: replacing frees no node that would fit
        unschedulable("new", "r2", "0/2 nodes are available: 2 node(s) didn't match selector."),
        # the pool's GPUs are another resource
        unschedulable("new", "r2", "0/2 nodes are available: 2 Insufficient amd.com/gpu."),
        # scheduled: the surge found a GPU
        pod("new", "r2"),
    ],
)
def test_only_a_lack_of_the_pools_gpu_counts(new_pod: dict[str, Any]) -> None:
    late = SINCE + timedelta(hours=1)
    plan = plan_rollout(spec(), deployment("r2"), [*ROLLING, new_pod], None, late)
    assert plan == RolloutPlan("Surge", "r2")


def test_a_preemption_in_flight_is_waited_for() -> None:
    """A headroom placeholder being preempted: the scheduler nominated a node for the replica."""
    preempting = unschedulable("new", "r2")
    preempting["status"]["nominatedNodeName"] = "gpu-c"
    preempting["metadata"]["labels"] = {"warmpool.dev/pool": "llama"}
    cache = WatchCache()  # what the operator reads: the watch cache keeps the nomination
    cache.observe_pod(None, preempting)
    (cached,) = cache.pods(("ml", "llama"))
    assert gpu_starved_since(cached, "nvidia.com/gpu") is None
    assert gpu_starved_since(unschedulable("new", "r2"), "nvidia.com/gpu") == SINCE


def test_no_fallback_without_a_roll_out_or_under_a_fixed_strategy() -> None:
    late = SINCE + timedelta(hours=1)
    scale_up = [pod("a", "r2", **WARM), unschedulable("b", "r2")]  # nothing old to replace
    assert plan_rollout(spec(), deployment("r2"), scale_up, None, late).fallback == ""
    rolling = [*ROLLING, unschedulable("new", "r2")]
    surge = plan_rollout(spec(strategy="Surge"), deployment("r2"), rolling, None, late)
    assert surge == RolloutPlan("Surge", "r2")
    replace = plan_rollout(spec(strategy="Replace"), deployment("r2"), rolling, None, late)
    assert replace == RolloutPlan("Replace", "r2")


def test_the_fallback_holds_for_its_revision_and_the_next_revision_surges() -> None:
    remembered = RolloutStatus(revision="r2", strategy="Replace", fallback="no free GPU")
    scheduled = [pod("a", "r1", **WARM), pod("new", "r2")]
    held = plan_rollout(spec(), deployment("r2"), scheduled, remembered, SINCE)
    assert (held.strategy, held.replace_revision, held.fallback) == ("Replace", "r2", "no free GPU")
    nxt = plan_rollout(spec(), deployment("r3"), scheduled, remembered, SINCE)
    assert nxt == RolloutPlan("Surge", "r3")


def test_render_replaces_only_while_the_template_is_the_fallen_back_revision() -> None:
    pool = InferencePool.model_validate(make_pool(rollout={"maxUnavailable": 2}))
    config = RenderConfig()
    surging = build_deployment(pool, config, replicas=2)
    revision = surging["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION]
    assert surging["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    replacing = build_deployment(pool, config, replicas=2, replace_revision=revision)
    assert replacing["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 2}
    assert replacing["spec"]["template"] == surging["spec"]["template"]  # same revision
    other = build_deployment(pool, config, replicas=2, replace_revision="older")
    assert other["spec"]["strategy"] == surging["spec"]["strategy"]
    fixed = InferencePool.model_validate(make_pool(rollout={"strategy": "Surge"}))
    kept = build_deployment(fixed, config, replicas=2, replace_revision=revision)
    assert kept["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_status_of_a_fallback_is_in_progress_not_stalled() -> None:
    pods = [pod("a", "r1", **WARM), unschedulable("new", "r2")]
    plan = RolloutPlan("Replace", "r2", fallback="no free nvidia.com/gpu ...")
    status = compute_status(inputs(pods, desired=1, deployment=deployment("r2"), plan=plan))
    got = conditions(status)
    assert got["Progressing"] == ("True", "ReplacingInPlace")
    assert got["Reconciling"] == ("True", "RollingOut")  # kstatus: InProgress
    assert got["Stalled"] == ("False", "Progressing")
    assert status.rollout is not None
    assert (status.rollout.strategy, status.rollout.fallback) == (
        "Replace",
        "no free nvidia.com/gpu ...",
    )
    waiting = RolloutPlan("Surge", "r2", waiting="a surged replica waits for a free GPU")
    status = compute_status(inputs(pods, desired=1, deployment=deployment("r2"), plan=waiting))
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.reason, progressing.message.endswith("waits for a free GPU")) == (
        "RollingOut",
        True,
    )


def test_a_degraded_pool_keeps_the_fallback_it_had() -> None:
    before = InferencePoolStatus(
        rollout=RolloutStatus(revision="r2", strategy="Replace", fallback="no free GPU")
    )
    pods = [pod("a", "r1", **WARM), pod("new", "r2")]
    status = compute_status(
        inputs(pods, deployment=deployment("r2"), degraded="spec: bad", previous=before)
    )
    assert status.rollout is not None and status.rollout.fallback == "no free GPU"


def test_the_surge_timeout_is_validated_against_the_deadline() -> None:
    with pytest.raises(ValidationError, match=r"spec\.rollout\.surgeTimeoutSeconds must be <"):
        RolloutSpec.model_validate({"surgeTimeoutSeconds": 60, "progressDeadlineSeconds": 60})
    RolloutSpec.model_validate(
        {"strategy": "Surge", "surgeTimeoutSeconds": 60, "progressDeadlineSeconds": 60}
    )
    with pytest.raises(ValidationError, match="surgeTimeoutSeconds"):
        RolloutSpec.model_validate({"surgeTimeoutSeconds": 0})


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pool_pod(name: str, revision: str, source: dict[str, Any]) -> dict[str, Any]:
    made = copy.deepcopy(source)
    made["metadata"]["name"] = name
    made["metadata"]["annotations"] = {REVISION_ANNOTATION: revision}
    return made


def recorded_events(api: MemoryApi) -> list[dict[str, Any]]:
    """Events the operator creates, kept (the in-memory API only records the call)."""
    posted: list[dict[str, Any]] = []
    create = api.create

    async def keep(manifest: dict[str, Any]) -> dict[str, Any]:
        posted.append(manifest)
        return await create(manifest)

    api.create = keep  # type: ignore[method-assign]
    return posted


async def test_the_operator_falls_back_once_writes_nothing_idle_and_survives_a_restart() -> None:
    key = ("ml", "llama")
    body = make_pool(
        scaling={"warmFloor": 2, "maxReplicas": 2}, rollout={"surgeTimeoutSeconds": 60}
    )
    reconciler, api, cache = setup(body=body)
    posted = recorded_events(api)
    clock = Clock(SINCE)
    reconciler._clock = clock
    await reconciler.sync(key, "create")
    cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])
    r1 = template(api)
    for name in ("a", "b"):
        cache.observe_pod(None, pool_pod(name, r1, make_pod(name, **WARM)))
    await reconciler.sync(key, "tick")

    # a new revision: rendered with the surge, and its surged replica finds no GPU
    changed = copy.deepcopy(api.objects[("InferencePool", "ml", "llama")])
    changed["spec"]["server"] = {"image": "tritonserver:next"}
    changed["metadata"]["generation"] = 3
    cache.observe_pool(None, api._store(changed))
    await reconciler.sync(key, "update")
    cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])
    r2 = template(api)
    assert r2 != r1 and strategy(api) == {"maxSurge": 1, "maxUnavailable": 0}
    cache.observe_pod(None, pool_pod("new", r2, unschedulable("new", r2)))
    await reconciler.sync(key, "observe")
    progressing = condition(api, "Progressing")
    assert (
        progressing["reason"] == "RollingOut" and "2026-01-01T00:02:00Z" in progressing["message"]
    )
    api.calls.clear()
    clock.now = SINCE + timedelta(seconds=59)
    await reconciler.sync(key, "tick")
    assert api.writes() == []  # waiting, idle: nothing written

    clock.now = SINCE + timedelta(seconds=60)
    await reconciler.sync(key, "tick")
    assert strategy(api) == {"maxSurge": 0, "maxUnavailable": 1}
    assert template(api) == r2  # the same revision, now replacing in place
    rollout = api.objects[("InferencePool", "ml", "llama")]["status"]["rollout"]
    assert (rollout["strategy"], rollout["revision"]) == ("Replace", r2)
    assert "after 60 s" in rollout["fallback"]
    assert condition(api, "Progressing")["reason"] == "ReplacingInPlace"
    assert [e["reason"] for e in posted if e["type"] == "Warning"] == ["RolloutFallback"]
    cache.observe_deployment(None, api.objects[("Deployment", "ml", "llama")])

    api.calls.clear()
    clock.now += timedelta(seconds=30)
    await reconciler.sync(key, "tick")
    assert api.writes() == []  # fallen back, idle: nothing written

    # Replacing freed a GPU: the new replica is scheduled now.
    cache.observe_pod(None, pool_pod("new", r2, make_pod("new")))
    # A restarted operator remembers nothing but what the cluster holds: the pool's status
    # keeps the fallback for r2, so it neither surges again nor posts the Event twice.
    restarted = fresh_reconciler(api, cache, clock)
    await restarted.sync(key, "resume")
    assert ("apply", "Deployment") not in api.writes()
    assert ("patch/status", "InferencePool") not in api.writes()
    assert strategy(api) == {"maxSurge": 0, "maxUnavailable": 1}
    assert [e["reason"] for e in posted if e["type"] == "Warning"] == ["RolloutFallback"]

    # the next revision surges again
    changed = copy.deepcopy(api.objects[("InferencePool", "ml", "llama")])
    changed["spec"]["server"] = {"image": "tritonserver:later"}
    changed["metadata"]["generation"] = 4
    cache.observe_pool(None, api._store(changed))
    await restarted.sync(key, "update")
    assert template(api) not in (r1, r2)
    assert strategy(api) == {"maxSurge": 1, "maxUnavailable": 0}
    rollout = api.objects[("InferencePool", "ml", "llama")]["status"]["rollout"]
    assert (rollout["strategy"], rollout.get("fallback", "")) == ("Surge", "")


def fresh_reconciler(api: MemoryApi, cache: WatchCache, clock: Clock) -> Reconciler:
    """A new Reconciler (nothing remembered) over the same API and watch cache."""
    return Reconciler(
        settings=OperatorSettings(),
        client=api,  # type: ignore[arg-type]
        cache=cache,
        applier=Applier(api),  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
        events=EventRecorder(api, instance="test"),  # type: ignore[arg-type]
        scaler=Scaler(None, interval_seconds=10),
        clock=clock,
    )


def template(api: MemoryApi) -> str:
    deployment = api.objects[("Deployment", "ml", "llama")]
    return str(deployment["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION])


def strategy(api: MemoryApi) -> dict[str, Any]:
    return dict(api.objects[("Deployment", "ml", "llama")]["spec"]["strategy"]["rollingUpdate"])


def condition(api: MemoryApi, kind: str) -> dict[str, Any]:
    status = api.objects[("InferencePool", "ml", "llama")]["status"]
    return next(dict(c) for c in status["conditions"] if c["type"] == kind)
