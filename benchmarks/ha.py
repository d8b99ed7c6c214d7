"""HA takeover benchmark: how long pools go unreconciled when the leading operator dies.

Not a test. Starts warmpool.envtest's real control plane (etcd, kube-apiserver, controllers,
KWOK), then runs `warmpool operator --leader-elect` replicas with the DEFAULT timings (lease 15 s,
renew deadline 10 s, retry 2 s, as the chart ships them) and measures, per run:

    takeover = (new leader's first reconcile write, from the apiserver's audit log)
             - (the moment the leader was signalled)

A run: the leader works (a pool reconciled), a standby waits; the leader is SIGKILLed (a crash:
the standby must wait out the lease) or SIGTERMed (a rolling update: the leader releases the
Lease); a pool is created at once and the new leader's first write to it ends the run. The new
leader stays for the next run, with a fresh standby beside it. The split is reported too:
signal -> Lease taken (election) and Lease taken -> first write (kopf's start and the reconcile).

    python benchmarks/ha.py                  # 5 SIGKILL + 5 SIGTERM runs -> results/ha.md
    python benchmarks/ha.py --runs 2 --no-write
    python benchmarks/ha.py --only sigterm --no-write --keep /tmp/ha   # logs and audit kept

The audit log and this program read the same machine's clock, so the two are comparable.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import kubernetes  # noqa: E402
from ha_support import (  # noqa: E402
    Candidate,
    ElectionTimings,
    audit_time,
    first_work_write,
    holder_name,
    lease_writes,
    read_lease,
)
from operator_support import GROUP, PLURAL, VERSION, install_crd  # noqa: E402

from warmpool.envtest import LocalCluster, poll_until  # noqa: E402

DEFAULTS = ElectionTimings(lease_duration=15, renew_deadline=10, retry_period=2)
LEASE = "warmpool-operator"
NAMESPACE = "ha-bench"
RESULTS = ROOT / "benchmarks" / "results" / "ha.md"
TIMEOUT = 120.0


@dataclass(frozen=True)
class Run:
    how: str
    """sigkill | sigterm"""
    elected_s: float
    """Signal -> the standby's successful Lease write."""
    takeover_s: float
    """Signal -> the new leader's first reconcile write."""

    @property
    def startup_s(self) -> float:
        return self.takeover_s - self.elected_s


def create_pool(api: kubernetes.client.ApiClient, name: str) -> None:
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferencePool",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": {"uri": "s3://models/tiny"}, "scaling": {"warmFloor": 1}},
        },
    )


def wait_deployment(api: kubernetes.client.ApiClient, name: str) -> None:
    apps = kubernetes.client.AppsV1Api(api)

    def exists() -> bool:
        try:
            apps.read_namespaced_deployment(name, NAMESPACE)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    poll_until(exists, what=f"Deployment {name}", timeout=TIMEOUT)


def wait_holder(api: kubernetes.client.ApiClient, name: str) -> None:
    poll_until(
        lambda: holder_name(read_lease(api, NAMESPACE, LEASE)) == name,
        what=f"{name} holding the Lease",
        timeout=TIMEOUT,
    )


def one_run(
    cluster: LocalCluster,
    api: kubernetes.client.ApiClient,
    leader: Candidate,
    index: int,
    how: str,
) -> tuple[Run, Candidate]:
    standby = Candidate(cluster, f"op-{index + 1}", NAMESPACE, LEASE, DEFAULTS)
    # Let the standby see the leader's Lease once (it serves /healthz already: started).
    poll_until(
        lambda: standby.health().get("leader") is not None,
        what="standby sees the leader",
        timeout=TIMEOUT,
    )
    before = f"run{index}-before"
    create_pool(api, before)
    wait_deployment(api, before)
    signalled = datetime.now(UTC)
    if how == "sigkill":
        os.killpg(leader.process.process.pid, signal.SIGKILL)
    else:
        os.killpg(leader.process.process.pid, signal.SIGTERM)
    after = f"run{index}-after"
    create_pool(api, after)
    wait_deployment(api, after)
    leader.stop()  # reaps it (SIGTERM: it has exited by itself)
    events: list[dict[str, Any]] = []

    def audited() -> bool:
        nonlocal events
        events = cluster.audit_events()
        return first_work_write(events, standby.user) is not None

    poll_until(audited, what="the new leader's write in the audit log", timeout=TIMEOUT)
    first = first_work_write(events, standby.user)
    taken = lease_writes(events, standby.user, LEASE)
    assert first is not None and taken
    run = Run(
        how=how,
        elected_s=(audit_time(taken[0]) - signalled).total_seconds(),
        takeover_s=(audit_time(first) - signalled).total_seconds(),
    )
    print(
        f"{how} run {index}: elected {run.elected_s:.2f}s, first write {run.takeover_s:.2f}s",
        flush=True,
    )
    return run, standby


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), load average {load} (1/5/15 min) at the end"


def report(runs: list[Run], version: str, seconds: float) -> str:
    kills = [r for r in runs if r.how == "sigkill"]
    terms = [r for r in runs if r.how == "sigterm"]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    lines = [
        "# HA takeover (benchmarks/ha.py)",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/ha.py` in "
        f"{seconds:.0f} s. Control plane: warmpool.envtest ({version}), KWOK nodes. Machine: "
        f"{machine()}; shared with other engineers' builds and tests, so the numbers are noisy.",
        "",
        f"Timings: the defaults (lease {DEFAULTS.lease_duration} s, renew deadline "
        f"{DEFAULTS.renew_deadline} s, retry {DEFAULTS.retry_period} s). Takeover = signal to "
        "the new leader's first reconcile write (a pool created right after the signal), "
        "from the apiserver's audit log.",
        "",
        "| signal | run | Lease taken (s) | first write (s) | kopf start + reconcile (s) |",
        "|---|---|---|---|---|",
    ]
    for number, run in enumerate(runs):
        lines.append(
            f"| {run.how} | {number} | {run.elected_s:.2f} | {run.takeover_s:.2f} | "
            f"{run.startup_s:.2f} |"
        )
    for name, group in (("sigkill", kills), ("sigterm", terms)):
        if group:
            takeover = [r.takeover_s for r in group]
            lines.append(
                f"| **{name} median** | {len(group)} runs | "
                f"{median([r.elected_s for r in group]):.2f} | {median(takeover):.2f} "
                f"(max {max(takeover):.2f}) | {median([r.startup_s for r in group]):.2f} |"
            )
    lines += [
        "",
        "Reading it: after a crash the standby may take the Lease only once the dead leader's "
        "lease has run out on the standby's own clock: leaseDuration after the last renewal it "
        "saw (its watch on the Lease sees each renewal at once), i.e. leaseDuration minus the "
        "time from the last renewal to the kill, 13-15 s with the defaults. After SIGTERM the "
        "leader stops kopf, then clears holderIdentity; the standby's watch sees that at once. "
        "Then kopf starts (list + watch) and the new pool is reconciled. Pools keep serving "
        "throughout; only reconciling and scaling pause.",
        "",
        f"takeover_sigkill_s={median([r.takeover_s for r in kills]):.1f} "
        f"takeover_sigterm_s={median([r.takeover_s for r in terms]):.1f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per signal")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the cluster's files (logs) in this directory"
    )
    parser.add_argument(
        "--only", choices=["sigkill", "sigterm"], default=None, help="run one kind of signal"
    )
    args = parser.parse_args()
    started = time.monotonic()
    runs: list[Run] = []
    with LocalCluster(args.keep) as cluster:
        cluster.add_gpu_node("gpu-node-0", gpus=8)
        install_crd(cluster, cluster.root_dir)
        version = cluster.server_version()
        api = cluster.api_client()
        try:
            kubernetes.client.CoreV1Api(api).create_namespace(
                kubernetes.client.V1Namespace(
                    metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE)
                )
            )
            leader = Candidate(cluster, "op-0", NAMESPACE, LEASE, DEFAULTS)
            candidates = [leader]
            try:
                wait_holder(api, "op-0")
                kinds = [args.only] if args.only else ["sigkill", "sigterm"]
                plan = [kind for kind in kinds for _ in range(args.runs)]
                for index, how in enumerate(plan):
                    run, leader = one_run(cluster, api, leader, index, how)
                    candidates.append(leader)
                    runs.append(run)
            finally:
                for candidate in candidates:
                    candidate.stop()
        finally:
            api.close()  # type: ignore[no-untyped-call]
    text = report(runs, version, time.monotonic() - started)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
