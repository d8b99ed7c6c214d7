"""Benchmark of the activator: proxy overhead on a warm pool, and the wake-up timeline from zero.

    .venv/bin/python benchmarks/activator.py [--upstream auto|triton|echo] [--requests 500]
        [--held 200] [--kubeconfig PATH]

1. Overhead: the same request sent N times directly to the upstream and N times through an
   activator process (``python -m warmpool.activator --endpoints-file``, pool warm), interleaved
   one by one so both see the same machine load; p50/p99 of each and of the difference.
   Upstream: a real Triton (``tests/support/triton.py``, KServe v2 infer of a small model) when
   available, else an aiohttp echo server; the output says which.
2. Wake-up timeline: ``--held`` clients arrive at a pool at zero (an in-process activator);
   the timeline is first held request -> wake signal acknowledged -> endpoint appears ->
   first response -> last response. The "operator" here is the benchmark itself: it publishes
   the (already running) upstream as the pool's endpoint the moment the wake arrives, so no
   scale-up time is included. With ``--kubeconfig`` (a real apiserver holding the pool's
   InferencePool ``ml/llama``) the wake is the real merge patch and its ack is the apiserver's.

Last line: ``wake_to_scaled_s=<t> held_requests_dropped=<n> proxy_overhead_p99_ms=<x>`` where
wake_to_scaled_s is first held request (in the activator) -> wake acknowledged (the operator's
scale-up is not part of it: there is no operator here), held_requests_dropped counts held requests
without their correct answer, proxy_overhead_p99_ms is p99(through activator) - p99(direct).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from warmpool.activator.endpoints import Endpoint, EndpointTable  # noqa: E402
from warmpool.activator.routing import PoolKey  # noqa: E402
from warmpool.activator.server import Activator, ActivatorConfig  # noqa: E402

POOL = PoolKey("ml", "llama")
HOST = "llama.ml.svc.cluster.local:8000"


@dataclass
class Upstream:
    """What the benchmark talks to: a base URL, one request, and how to check its answer."""

    kind: str
    http_port: int
    path: str
    body: Callable[[int], bytes]
    check: Callable[[int, bytes], bool]
    grpc_port: int | None = None


@contextlib.asynccontextmanager
async def echo_upstream() -> AsyncIterator[Upstream]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/echo/infer", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Upstream(
            kind="aiohttp echo server (no Triton available)",
            http_port=int(runner.addresses[0][1]),
            path="/v2/models/echo/infer",
            body=lambda i: json.dumps({"id": str(i)}).encode(),
            check=lambda i, raw: json.loads(raw).get("id") == str(i),
        )
    finally:
        await runner.cleanup()


MODELS = ROOT / "tests" / "integration" / "activator" / "models"


def affine_request(i: int) -> bytes:
    tensor = {"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [float(i)]}
    return json.dumps({"inputs": [tensor]}).encode()


def affine_answer_ok(i: int, raw: bytes) -> bool:
    return bool(json.loads(raw)["outputs"][0]["data"] == [2.0 * i + 1])


@contextlib.asynccontextmanager
async def triton_upstream() -> AsyncIterator[Upstream]:
    """A real Triton (CPU, Python backend) serving the ``affine`` model: y = 2x + 1."""
    from support.triton import TritonServer

    server = TritonServer(MODELS)
    await asyncio.to_thread(server.start)
    try:
        yield Upstream(
            kind="real Triton (CPU, Python backend), KServe v2 JSON infer of model 'affine'",
            http_port=server.http_port,
            path="/v2/models/affine/infer",
            body=affine_request,
            check=affine_answer_ok,
            grpc_port=server.grpc_port,
        )
    finally:
        await asyncio.to_thread(server.stop)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(direct_ms: list[float], proxied_ms: list[float]) -> dict[str, float]:
    return {
        "direct_p50_ms": percentile(direct_ms, 0.5),
        "direct_p99_ms": percentile(direct_ms, 0.99),
        "proxied_p50_ms": percentile(proxied_ms, 0.5),
        "proxied_p99_ms": percentile(proxied_ms, 0.99),
        "overhead_p50_ms": percentile(proxied_ms, 0.5) - percentile(direct_ms, 0.5),
        "overhead_p99_ms": percentile(proxied_ms, 0.99) - percentile(direct_ms, 0.99),
        "overhead_mean_ms": statistics.fmean(proxied_ms) - statistics.fmean(direct_ms),
    }


async def grpc_overhead(
    upstream: Upstream, activator_grpc_port: int, requests: int
) -> dict[str, float]:
    """The same measurement for gRPC: tritonclient.grpc.aio ModelInfer, direct vs proxied."""
    import numpy as np
    import tritonclient.grpc.aio as grpcclient

    direct = grpcclient.InferenceServerClient(f"127.0.0.1:{upstream.grpc_port}")
    proxied = grpcclient.InferenceServerClient(
        f"127.0.0.1:{activator_grpc_port}",
        channel_args=[("grpc.default_authority", "llama.ml.svc.cluster.local:8001")],
    )
    direct_ms: list[float] = []
    proxied_ms: list[float] = []
    try:
        for i in range(requests + 20):
            x = np.array([float(i)], dtype=np.float32)
            for client, into in ((direct, direct_ms), (proxied, proxied_ms)):
                tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
                tensor.set_data_from_numpy(x)
                start = time.perf_counter()
                result = await client.infer("affine", [tensor])
                elapsed = (time.perf_counter() - start) * 1000
                if result.as_numpy("OUTPUT0").tolist() != [2.0 * i + 1]:
                    raise SystemExit(f"wrong gRPC answer for {i}")
                if i >= 20:
                    into.append(elapsed)
    finally:
        await direct.close()
        await proxied.close()
    return summary(direct_ms, proxied_ms)


async def overhead(
    upstream: Upstream, requests: int, tmp: Path
) -> tuple[dict[str, float], dict[str, float] | None]:
    endpoints = tmp / "endpoints.json"
    entry = {"ip": "127.0.0.1", "http": upstream.http_port, "grpc": upstream.grpc_port}
    endpoints.write_text(json.dumps({"ml/llama": [entry]}))
    sys.path.insert(0, str(ROOT / "tests" / "integration" / "activator"))
    from activator_harness import ActivatorProcess

    process = ActivatorProcess(endpoints, "--log-level", "WARNING")
    await process.start()
    direct_ms: list[float] = []
    proxied_ms: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            direct = f"http://127.0.0.1:{upstream.http_port}{upstream.path}"
            proxied = f"http://127.0.0.1:{process.http_port}{upstream.path}"
            for i in range(requests + 20):  # 20 warm-up rounds, not counted
                for url, into in ((direct, direct_ms), (proxied, proxied_ms)):
                    start = time.perf_counter()
                    async with session.post(
                        url, data=upstream.body(i), headers={"Host": HOST}
                    ) as response:
                        raw = await response.read()
                    elapsed = (time.perf_counter() - start) * 1000
                    if response.status != 200 or not upstream.check(i, raw):
                        raise SystemExit(
                            f"wrong answer from {url}: {response.status} {raw[:200]!r}"
                        )
                    if i >= 20:
                        into.append(elapsed)
        grpc = None
        if upstream.grpc_port is not None:
            grpc = await grpc_overhead(upstream, process.grpc_port, requests)
    finally:
        await process.stop()
    return summary(direct_ms, proxied_ms), grpc


async def wake_timeline(upstream: Upstream, held: int, kubeconfig: str | None) -> dict[str, float]:
    table = EndpointTable()
    table.set_pool(POOL, [])
    marks: dict[str, float] = {}
    api_client: Any = None
    send_patch: Any = None
    if kubeconfig:
        from kubernetes_asyncio import config

        from warmpool.activator.wake import KubernetesWakeSender

        api_client = await config.new_client_from_config(config_file=kubeconfig)
        send_patch = KubernetesWakeSender(api_client)

    async def wake(pool: PoolKey, at: datetime) -> None:
        marks.setdefault("wake_sent", time.perf_counter())
        if send_patch is not None:
            await send_patch(pool, at)
        marks.setdefault("wake_acknowledged", time.perf_counter())
        # The stand-in operator: the replica is already warm, publish it at once.
        table.set_pool(pool, [Endpoint("127.0.0.1", upstream.http_port, None)])
        marks.setdefault("endpoint_appeared", time.perf_counter())

    config_ = ActivatorConfig(
        bind="127.0.0.1", http_port=0, grpc_port=None, metrics_port=None, queue_size=held
    )
    activator = Activator(
        config_,
        table,
        wake,
        on_hold=lambda _pool: marks.setdefault("first_held", time.perf_counter()),
    )
    ports = await activator.start()
    url = f"http://127.0.0.1:{ports.http}{upstream.path}"
    answers: list[bool] = []

    async def clients() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def client(i: int) -> None:
                marks.setdefault("first_request", time.perf_counter())
                try:
                    async with session.post(
                        url, data=upstream.body(i), headers={"Host": HOST}
                    ) as response:
                        raw = await response.read()
                    ok = response.status == 200 and upstream.check(i, raw)
                except aiohttp.ClientError:
                    ok = False
                marks.setdefault("first_response", time.perf_counter())
                marks["last_response"] = time.perf_counter()
                answers.append(ok)

            await asyncio.gather(*(client(i) for i in range(held)))

    try:
        # Clients on their own thread and loop, so they do not queue behind the activator.
        await asyncio.to_thread(asyncio.run, clients())
    finally:
        await activator.stop()
        if api_client is not None:
            await api_client.close()
    t0 = marks["first_held"]
    return {
        "client_start_s": marks["first_request"] - t0,
        "wake_sent_s": marks["wake_sent"] - t0,
        "wake_acknowledged_s": marks["wake_acknowledged"] - t0,
        "endpoint_appeared_s": marks["endpoint_appeared"] - t0,
        "first_response_s": marks["first_response"] - t0,
        "last_response_s": marks["last_response"] - t0,
        "dropped": float(answers.count(False) + (held - len(answers))),
    }


async def main_async(args: argparse.Namespace) -> int:
    factory = echo_upstream
    if args.upstream in ("auto", "triton"):
        from support.triton import triton_available

        if triton_available():
            factory = triton_upstream
        elif args.upstream == "triton":
            raise SystemExit("no Triton installed: run hack/install-triton.sh")
    async with factory() as upstream:
        print(f"upstream: {upstream.kind}")
        with tempfile.TemporaryDirectory() as tmp:
            over, grpc = await overhead(upstream, args.requests, Path(tmp))
        for protocol, result in (("HTTP", over), ("gRPC", grpc)):
            if result is None:
                continue
            print(
                f"{protocol} overhead on a warm pool ({args.requests} sequential requests each, "
                "interleaved):"
            )
            for label, key in (
                ("direct", "direct"),
                ("via activator", "proxied"),
                ("overhead", "overhead"),
            ):
                print(
                    f"  {label:<15} p50 {result[key + '_p50_ms']:.3f} ms"
                    f"  p99 {result[key + '_p99_ms']:.3f} ms"
                )
            print(f"  overhead mean {result['overhead_mean_ms']:.3f} ms")
        line = await wake_timeline(upstream, args.held, args.kubeconfig)
        patch = (
            "real merge patch, apiserver ack"
            if args.kubeconfig
            else "recorded in-process, no apiserver"
        )
        print(
            f"wake-up timeline, {args.held} clients at zero (wake: {patch}); seconds after the "
            f"first held request (clients started at {line['client_start_s']:+.4f}):\n"
            f"  wake patch sent     {line['wake_sent_s']:.4f}\n"
            f"  wake acknowledged   {line['wake_acknowledged_s']:.4f}\n"
            f"  endpoint appeared   {line['endpoint_appeared_s']:.4f}"
            "  (stand-in operator: instant)\n"
            f"  first response      {line['first_response_s']:.4f}\n"
            f"  last response       {line['last_response_s']:.4f}"
        )
    print(
        f"wake_to_scaled_s={line['wake_acknowledged_s']:.4f} "
        f"held_requests_dropped={int(line['dropped'])} "
        f"proxy_overhead_p99_ms={over['overhead_p99_ms']:.3f}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", choices=("auto", "triton", "echo"), default="auto")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--held", type=int, default=200)
    parser.add_argument(
        "--kubeconfig", default=None, help="a cluster holding InferencePool ml/llama (and its CRD)"
    )
    parser.add_argument(
        "--local-cluster",
        action="store_true",
        help="start warmpool.envtest's real control plane and patch a real InferencePool",
    )
    args = parser.parse_args()
    if not args.local_cluster:
        return asyncio.run(main_async(args))
    from warmpool.envtest import LocalCluster

    with LocalCluster() as cluster:
        prepare_pool(cluster.kubeconfig)
        args.kubeconfig = str(cluster.kubeconfig)
        return asyncio.run(main_async(args))


def prepare_pool(kubeconfig: Path) -> None:
    """Install the CRD and create InferencePool ml/llama on a fresh cluster."""
    import kubernetes
    import yaml

    from warmpool.envtest import poll_until

    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    ext = kubernetes.client.ApiextensionsV1Api(api)
    crd = yaml.safe_load((ROOT / "crds" / "warmpool.dev_inferencepools.yaml").read_text())
    try:
        ext.create_custom_resource_definition(crd)
    except kubernetes.client.ApiException as error:
        if error.status != 422:
            raise
        # Only the object's existence matters to the wake patch: an open schema stands in.
        print(f"WARNING: the checked-in CRD was refused ({error.reason}); using an open schema")
        version = {k: crd["spec"]["versions"][0][k] for k in ("name", "served", "storage")}
        version["schema"] = {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        }
        crd["spec"]["versions"] = [version]
        ext.create_custom_resource_definition(crd)

    def established() -> bool:
        status = ext.read_custom_resource_definition(crd["metadata"]["name"]).status
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    poll_until(established, what="CRD established", timeout=60)
    kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": "ml"}})
    pool = {
        "apiVersion": "warmpool.dev/v1alpha1",
        "kind": "InferencePool",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": {"model": {"uri": "s3://models/llama"}},
    }
    custom = kubernetes.client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("warmpool.dev", "v1alpha1", "ml", "inferencepools", pool)
    api.close()


if __name__ == "__main__":
    sys.exit(main())
