"""``warmpool activator``: the request-holding proxy for pools scaled to zero."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from warmpool.activator.endpoints import EndpointTable
from warmpool.activator.endpoints_file import EndpointsFileSource
from warmpool.activator.server import Activator, ActivatorConfig, WakeSend
from warmpool.activator.wake import log_wake_sender

log = logging.getLogger("warmpool.activator")


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"WARMPOOL_ACTIVATOR_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warmpool activator",
        description="Hold requests for InferencePools at zero, wake them, forward when warm. "
        "Every flag falls back to the environment variable WARMPOOL_ACTIVATOR_<FLAG>.",
    )
    p.add_argument("--http-port", type=int, default=int(_env("HTTP_PORT", "8000") or 8000))
    p.add_argument("--grpc-port", type=int, default=int(_env("GRPC_PORT", "8001") or 8001))
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "9090") or 9090))
    p.add_argument("--bind", default=_env("BIND", "0.0.0.0"))
    p.add_argument(
        "--queue-size",
        type=int,
        default=int(_env("QUEUE_SIZE", "1000") or 1000),
        help="requests held per pool; beyond it: 503 with Retry-After",
    )
    p.add_argument(
        "--hold-timeout",
        type=float,
        default=float(_env("HOLD_TIMEOUT", "600") or 600),
        help="seconds a request may wait for a warm replica (then 504)",
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=float(_env("SHUTDOWN_GRACE", "30") or 30),
        help="seconds forwarded requests may run on after SIGTERM",
    )
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG", None) or os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--namespace",
        default=_env("NAMESPACE", None),
        help="watch only this namespace (default: all namespaces)",
    )
    p.add_argument(
        "--endpoints-file",
        type=Path,
        default=_env("ENDPOINTS_FILE", None),
        help="no Kubernetes: read pools and endpoints from this JSON file (development/tests)",
    )
    p.add_argument(
        "--wake-through-api",
        dest="kubeconfig_for_wake",
        action="store_true",
        default=(_env("WAKE_THROUGH_API", "") or "").lower() in {"1", "true", "yes"},
        help="with --endpoints-file: still send wake signals through the Kubernetes API",
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = ActivatorConfig(
        bind=args.bind,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        queue_size=args.queue_size,
        hold_timeout=args.hold_timeout,
        shutdown_grace=args.shutdown_grace,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(config, args))
    return 0


async def _run(config: ActivatorConfig, args: argparse.Namespace) -> None:
    table = EndpointTable()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    api_client: Any = None
    source_task: asyncio.Task[None]
    wake_send: WakeSend
    if args.endpoints_file is not None:
        source = EndpointsFileSource(args.endpoints_file, table)
        source.load()
        source_task = loop.create_task(source.run())
        wake_send = log_wake_sender
        if args.kubeconfig_for_wake:
            # Endpoints from the file, wake through the API: the local end-to-end setup, where
            # pods have loopback IPs that EndpointSlices refuse.
            from warmpool.activator.wake import KubernetesWakeSender

            api_client = await _kube_client(args.kubeconfig)
            wake_send = KubernetesWakeSender(api_client)
    else:
        from warmpool.activator.discovery import EndpointSliceWatcher
        from warmpool.activator.wake import KubernetesWakeSender

        api_client = await _kube_client(args.kubeconfig)
        watcher = EndpointSliceWatcher(api_client, table, namespace=args.namespace)
        source_task = loop.create_task(watcher.run())
        # Routing refuses pools it does not know: serve only once the first list is in.
        await watcher.wait_synced()
        wake_send = KubernetesWakeSender(api_client)

    activator = Activator(config, table, wake_send)
    await activator.start()
    try:
        await stop.wait()
        log.info("stopping: refusing new requests, failing held ones")
    finally:
        await activator.stop()
        source_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await source_task
        if api_client is not None:
            await api_client.close()


async def _kube_client(kubeconfig: str | None) -> Any:
    from kubernetes_asyncio import client, config

    if kubeconfig:
        return await config.new_client_from_config(config_file=kubeconfig)
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)
