"""Benchmark: from a request at zero to its answer, end to end on a real node, phase by phase.

    .venv/bin/python benchmarks/coldstart.py [--rounds 2] [--shards 4] [--shard-mib 256]

One LocalCluster with one real node (warmpool.envtest: kubelet, containerd, runc, CNI,
kube-proxy; GPUs stood in by a device plugin), the real S3 server (versitygw) holding one
model, the real `warmpool operator` and `warmpool activator`, the built agent and CPU Triton
images. The model, ``big_curve``, is tests/models/warmup_curve (a Python-backend model with a
genuine warm-up curve: lazy weights, per-shape kernel compilation, autotuning) plus
``--shards`` x ``--shard-mib`` MiB of weight shards (random bytes, 1 GiB by default) that the
model reads in full when it loads, as a server reads its weights.

Three ways to serve it, run interleaved (each round: b, a, c) on the same node:

(a) warmpool, weights already in the node cache: a pool at zero; the request goes to the
    activator, which wakes the pool and holds the request until a replica is warm;
(b) warmpool, cold node cache (the cache directory emptied first): the same, so the prefetch
    init container downloads the weights from S3;
(c) the baseline a user would otherwise write: a plain Deployment (replicas 0 -> 1 when the
    request arrives) whose init container downloads the weights with one stream per file
    (obstore, sequentially, as KServe's storage initializer does per object), no warm-up gate:
    the pod is Ready when Triton says the model is ready, and the client retries through the
    Service until it is answered.

Phases: (a, b) from the pool's status.lastColdStart (scheduling, prefetch, server start,
warm-up) plus the wake (request -> pod created) and the answer after the pod turned warm;
(c) from the kubelet's timestamps (scheduling, download = the init container's run, server
start = init end -> Ready, then Ready -> answer). Timestamps from the API have 1 s resolution.

Writes benchmarks/results/coldstart.md; the last line printed is
``first_answer_s_cached=<s> first_answer_s_cold=<s> first_answer_s_baseline=<s>
ratio_cached_vs_baseline=<r>`` (medians over the rounds).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

import kubernetes  # noqa: E402
from operator_support import (  # noqa: E402
    GROUP,
    PLURAL,
    VERSION,
    OperatorProcess,
    install_crd,
)
from real_node_support import infer, start_activator  # noqa: E402
from test_warmup_gate import installed_gate_policy  # noqa: E402

from support.s3 import S3Server, model_files, running_s3  # noqa: E402
from warmpool.envtest import LocalCluster, RealNode, poll_until  # noqa: E402
from warmpool.envtest.images import built_image  # noqa: E402

MODEL = "big_curve"
CURVE = ROOT / "tests" / "models" / "warmup_curve"
INPUTS = [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}]
RESULTS = ROOT / "benchmarks" / "results" / "coldstart.md"
TIMEOUT = 900.0

MODEL_PY = '''"""big_curve: warmup_curve (curve.py, tests/models/warmup_curve/1/model.py)
whose weights are the shards beside it, read in full when the model loads, as a server reads
its weights."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from curve import TritonPythonModel as _Curve  # noqa: E402


class TritonPythonModel(_Curve):
    def initialize(self, args):
        super().initialize(args)
        here = os.path.dirname(__file__)
        total = 0
        for name in sorted(os.listdir(here)):
            if name.startswith("weights-"):
                data = np.memmap(os.path.join(here, name), dtype=np.uint8, mode="r")
                for start in range(0, data.size, 64 << 20):
                    total += int(data[start : start + (64 << 20)].sum(dtype=np.uint64))
        self.weights_checksum = total
'''

# The baseline's init container: every object of the model, one GET stream per file, in turn.
DOWNLOAD_PY = """
import os, obstore
from obstore.store import S3Store
env = os.environ
store = S3Store(env["BUCKET"], prefix=env["PREFIX"], endpoint=env["ENDPOINT"],
    access_key_id=env["AWS_ACCESS_KEY_ID"], secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    region="us-east-1", virtual_hosted_style_request=False, client_options={"allow_http": True})
for meta in obstore.list(store).collect():
    dest = os.path.join("/models", os.environ["PREFIX"], meta["path"])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as out:
        for chunk in obstore.get(store, meta["path"]).stream():
            out.write(chunk)
    print("downloaded", meta["path"], meta["size"], flush=True)
"""


@dataclass
class Run:
    variant: str
    round: int
    first_answer_s: float
    phases: dict[str, float] = field(default_factory=dict)


def write_model(directory: Path, shards: int, shard_mib: int) -> Path:
    """big_curve's repository directory: config, model.py, curve.py and the weight shards."""
    model = directory / MODEL
    version = model / "1"
    version.mkdir(parents=True)
    config = (CURVE / "config.pbtxt").read_text().replace('"warmup_curve"', f'"{MODEL}"')
    (model / "config.pbtxt").write_text(config)
    shutil.copy(CURVE / "1" / "model.py", version / "curve.py")
    (version / "model.py").write_text(MODEL_PY)
    chunk = 16 << 20
    for index in range(shards):
        with (version / f"weights-{index}.bin").open("wb") as out:
            for _ in range(shard_mib * (1 << 20) // chunk):
                out.write(os.urandom(chunk))
    return model


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


class Bench:
    def __init__(self, cluster: LocalCluster, node: RealNode, s3: S3Server) -> None:
        self.cluster = cluster
        self.node = node
        self.s3 = s3
        self.endpoint = f"http://{node.expose_host_port(s3.port)}"
        self.api = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.agent = built_image("agent").ref
        self.triton = built_image("triton-cpu").ref
        self.answers: list[list[float]] = []

    # ---- shared --------------------------------------------------------------------

    @contextmanager
    def namespace(self, name: str) -> Iterator[str]:
        self.core.create_namespace({"metadata": {"name": name}})
        poll_until(
            lambda: any(
                sa.metadata.name == "default"
                for sa in self.core.list_namespaced_service_account(name).items
            ),
            what=f"{name}/default ServiceAccount",
            timeout=60,
        )
        secret = {
            "metadata": {"name": "s3"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            },
        }
        self.core.create_namespaced_secret(name, secret)
        try:
            yield name
        finally:
            self.core.delete_namespace(name)
            poll_until(
                lambda: not self.core.list_namespaced_pod(name).items,
                what=f"the pods of {name} gone",
                timeout=TIMEOUT,
            )

    def check(self, answer: list[float]) -> None:
        """Every variant serves the same model: the same input gives the same output."""
        assert len(answer) == 4096
        if self.answers:
            # Equal up to float rounding: each server's autotuner may pick another tiling.
            worst = max(abs(a - b) for a, b in zip(answer, self.answers[0], strict=True))
            assert worst < 1e-4, f"a variant answered differently (max difference {worst})"
        self.answers.append(answer)

    # ---- warmpool --------------------------------------------------------------------

    def warmpool(self, activator_port: int, round_: int, *, cold: bool) -> Run:
        variant = "cold" if cold else "cached"
        with self.namespace(f"bench-{variant}-{round_}") as ns:
            pool = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "InferencePool",
                "metadata": {"name": MODEL.replace("_", "-"), "namespace": ns},
                "spec": {
                    "model": {
                        "uri": f"s3://models/{MODEL}",
                        "name": MODEL,
                        "endpoint": self.endpoint,
                        "credentialsSecret": "s3",
                    },
                    "server": {"image": self.triton, "gpu": {"count": 1}},
                    "warmup": {"inputs": INPUTS, "tolerance": 0.25},
                    "scaling": {
                        "warmFloor": 0,
                        "maxReplicas": 1,
                        "scaleToZeroAfterSeconds": 3600,
                    },
                },
            }
            name = pool["metadata"]["name"]
            custom = kubernetes.client.CustomObjectsApi(self.api)
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, pool)
            poll_until(
                lambda: (
                    (
                        custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name).get(
                            "status", {}
                        )
                    ).get("phase")
                    == "ScaledToZero"
                ),
                what=f"{ns}/{name} at zero",
                timeout=TIMEOUT,
            )
            if cold:
                cache = self.node.layout.var_cache / "warmpool"
                for entry in cache.iterdir():
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            sent_wall, sent = time.time(), time.monotonic()
            self.check(infer(activator_port, MODEL, 0.25, pool=f"{ns}/{name}", timeout=TIMEOUT))
            first_answer = time.monotonic() - sent
            answered_wall = sent_wall + first_answer
            status = poll_until(
                lambda: (
                    custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name).get(
                        "status", {}
                    )
                ).get("lastColdStart"),
                what="the cold start reported",
                timeout=120,
            )
            created = stamp(status["startedAt"])
            warm = created + status["totalSeconds"]
            pod = self.api.sanitize_for_serialization(
                self.core.read_namespaced_pod(status["pod"], ns)
            )
            ready = max(warm, stamp(condition(pod, "Ready")["lastTransitionTime"]))  # type: ignore[index]
            phases = {
                "wake (request -> pod created)": max(0.0, created - sent_wall),
                "scheduling": status["schedulingSeconds"],
                "weights (prefetch / download)": status["prefetchSeconds"],
                "server start": status["serverStartSeconds"],
                "warm-up": status["warmupSeconds"],
                "gate open -> pod Ready (kubelet)": ready - warm,
                "answer after Ready": max(0.0, answered_wall - ready),
            }
            return Run(variant, round_, first_answer, phases)

    # ---- baseline --------------------------------------------------------------------

    def baseline(self, round_: int) -> Run:
        with self.namespace(f"bench-baseline-{round_}") as ns:
            labels = {"app": "baseline"}
            env = [
                {"name": "BUCKET", "value": "models"},
                {"name": "PREFIX", "value": MODEL},
                {"name": "ENDPOINT", "value": self.endpoint},
                *(
                    {"name": key, "valueFrom": {"secretKeyRef": {"name": "s3", "key": key}}}
                    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                ),
            ]
            mounts = [{"name": "models", "mountPath": "/models"}]
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "baseline", "namespace": ns},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": {
                                "runAsUser": 1000,
                                "runAsGroup": 1000,
                                "fsGroup": 1000,
                            },
                            "initContainers": [
                                {
                                    "name": "storage-initializer",
                                    "image": self.agent,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["python3", "-c", DOWNLOAD_PY],
                                    "env": env,
                                    "volumeMounts": mounts,
                                }
                            ],
                            "containers": [
                                {
                                    "name": "triton",
                                    "image": self.triton,
                                    "imagePullPolicy": "IfNotPresent",
                                    "args": [
                                        "--model-repository=/models",
                                        "--model-control-mode=explicit",
                                        f"--load-model={MODEL}",
                                    ],
                                    "ports": [{"containerPort": 8000, "name": "http"}],
                                    # As often as a probe may run: the baseline's best case.
                                    "readinessProbe": {
                                        "httpGet": {"path": "/v2/health/ready", "port": 8000},
                                        "periodSeconds": 1,
                                        "failureThreshold": 1,
                                    },
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                    "volumeMounts": [
                                        *mounts,
                                        {"name": "dshm", "mountPath": "/dev/shm"},
                                    ],
                                }
                            ],
                            "volumes": [
                                {"name": "models", "emptyDir": {}},
                                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                            ],
                        },
                    },
                },
            }
            service = {
                "metadata": {"name": "baseline"},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": 8000}]},
            }
            apps = kubernetes.client.AppsV1Api(self.api)
            apps.create_namespaced_deployment(ns, deployment)
            created_service = self.core.create_namespaced_service(ns, service)
            port = self.node.forward(str(created_service.spec.cluster_ip), 8000)
            sent_wall, sent = time.time(), time.monotonic()
            apps.patch_namespaced_deployment_scale("baseline", ns, {"spec": {"replicas": 1}})

            def answered() -> list[float] | None:
                try:
                    return infer(port, MODEL, 0.25, timeout=60)
                except (urllib.error.URLError, ConnectionError, OSError):
                    return None

            answer = poll_until(answered, what="the baseline answered", timeout=TIMEOUT)
            first_answer = time.monotonic() - sent
            self.check(answer)
            (pod,) = [
                self.api.sanitize_for_serialization(p)
                for p in self.core.list_namespaced_pod(ns, label_selector="app=baseline").items
            ]
            created = stamp(pod["metadata"]["creationTimestamp"])
            scheduled = stamp(condition(pod, "PodScheduled")["lastTransitionTime"])  # type: ignore[index]
            init = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
            ready = stamp(condition(pod, "Ready")["lastTransitionTime"])  # type: ignore[index]
            phases = {
                "wake (request -> pod created)": max(0.0, created - sent_wall),
                "scheduling": max(0.0, scheduled - created),
                "weights (prefetch / download)": stamp(init["finishedAt"])
                - stamp(init["startedAt"]),
                "server start": max(0.0, ready - stamp(init["finishedAt"])),
                "warm-up": 0.0,
                "gate open -> pod Ready (kubelet)": 0.0,
                "answer after Ready": max(0.0, sent_wall + first_answer - ready),
            }
            return Run("baseline", round_, first_answer, phases)


PHASES = (
    "wake (request -> pod created)",
    "scheduling",
    "weights (prefetch / download)",
    "server start",
    "warm-up",
    "gate open -> pod Ready (kubelet)",
    "answer after Ready",
)


def report(runs: list[Run], args: argparse.Namespace, setup: dict[str, float]) -> str:
    def median(variant: str, pick: Callable[[Run], float]) -> float:
        return statistics.median(pick(r) for r in runs if r.variant == variant)

    lines = [
        "# Cold start end to end on a real node: a request at zero to its answer",
        "",
        f"`benchmarks/coldstart.py --rounds {args.rounds} --shards {args.shards} "
        f"--shard-mib {args.shard_mib}`, run {datetime.now().strftime('%Y-%m-%d %H:%M')} UTC on "
        f"{platform.node()}: {os.cpu_count()} cores, Linux {platform.release()}, shared with other "
        "engineers' builds and tests (load varies). One real node (kubelet v1.34, containerd "
        "2.2, runc, CNI bridge, kube-proxy; GPUs stood in by a device plugin), versitygw on "
        "loopback, the CPU Triton image; model `big_curve` = tests/models/warmup_curve + "
        f"{args.shards * args.shard_mib} MiB of weight shards read in full at load.",
        "",
        f"Node start (cluster + node + image import): {setup}.",
        "",
        "Medians over the rounds (seconds); phases from the pool's status.lastColdStart "
        "(warmpool) or the kubelet's timestamps (baseline), 1 s resolution:",
        "",
        "| phase | (a) warmpool, cached | (b) warmpool, cold cache | (c) baseline |",
        "|---|---|---|---|",
    ]
    variants = ("cached", "cold", "baseline")
    for phase in PHASES:
        cells = [f"{median(v, lambda r, p=phase: r.phases[p]):.1f}" for v in variants]
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    cells = [f"**{median(v, lambda r: r.first_answer_s):.1f}**" for v in variants]
    lines.append("| **request -> first answer** | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every run (interleaved in this order):",
        "",
        "| round | variant | first answer s |",
    ]
    lines += ["|---|---|---|"]
    lines += [f"| {r.round} | {r.variant} | {r.first_answer_s:.1f} |" for r in runs]
    cached, cold, base = (median(v, lambda r: r.first_answer_s) for v in variants)
    last = (
        f"first_answer_s_cached={cached:.1f} first_answer_s_cold={cold:.1f} "
        f"first_answer_s_baseline={base:.1f} ratio_cached_vs_baseline={cached / base:.2f}"
    )
    lines += ["", "```", last, "```", ""]
    RESULTS.write_text("\n".join(lines))
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=256)
    args = parser.parse_args()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wp-coldstart-")))
        started = time.monotonic()
        model = write_model(workdir / "repository", args.shards, args.shard_mib)
        setup = {"model written": round(time.monotonic() - started, 1)}
        cluster = stack.enter_context(LocalCluster(workdir / "cluster"))
        node = cluster.add_real_node("bench-node", gpus=2, images=("agent", "triton-cpu"))
        setup["cluster and node"] = round(time.monotonic() - started, 1)
        s3 = stack.enter_context(
            running_s3(
                workdir,
                access_key="WPAK" + secrets.token_hex(6).upper(),
                secret_key=secrets.token_urlsafe(18),
                bucket="models",
                files=model_files(model, MODEL),
            )
        )
        install_crd(cluster, workdir)
        stack.enter_context(installed_gate_policy(cluster))
        agent = built_image("agent").ref
        operator = OperatorProcess(
            cluster, cluster.kubeconfig, cluster.logs_dir, extra=["--agent-image", agent]
        )
        stack.callback(operator.stop)
        activator, port = start_activator(cluster, node, cluster.logs_dir / "activator.log")
        stack.callback(activator.stop)
        bench = Bench(cluster, node, s3)
        for round_ in range(1, args.rounds + 1):
            for variant in ("cold", "cached", "baseline"):
                if variant == "baseline":
                    result = bench.baseline(round_)
                else:
                    result = bench.warmpool(port, round_, cold=variant == "cold")
                runs.append(result)
                print(
                    f"round {round_} {result.variant}: first answer "
                    f"{result.first_answer_s:.1f}s {result.phases}",
                    flush=True,
                )
    print(report(runs, args, setup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
