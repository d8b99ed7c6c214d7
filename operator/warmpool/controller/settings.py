"""The operator's settings: command-line flags with `WARMPOOL_*` environment fallbacks.

Parsing is pure (argv and an environment mapping in, a frozen `OperatorSettings` out), so the
flag surface is unit-tested without starting anything.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from warmpool import __version__

LogFormat = Literal["json", "text"]


@dataclass(frozen=True)
class ActivatorRef:
    """The activator's Service, whose endpoints a pool at zero routes to."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, value: str) -> ActivatorRef:
        namespace, sep, name = value.partition("/")
        if not sep or not namespace or not name or "/" in name:
            raise ValueError(f"--activator-service must be <namespace>/<name>, got {value!r}")
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator process is configured with."""

    namespaces: tuple[str, ...] = ()
    """Namespaces watched; empty watches the whole cluster."""
    prometheus_url: str | None = None
    """Default Prometheus of the traffic-driven scaler (a pool may override it)."""
    traffic_query: str | None = None
    """Default PromQL of a pool's demand ({namespace}, {pool}, {window} are substituted); None
    uses the scaler's built-in query for the pool's target type."""
    agent_image: str = f"ghcr.io/warmpool/agent:{__version__}"
    """Image of the prefetch init container and the warm-up sidecar."""
    activator: ActivatorRef | None = None
    """Activator Service; None disables the activator mode of the pools' Services."""
    log_format: LogFormat = "text"
    log_level: str = "INFO"
    health_port: int = 8080
    """Port of the liveness endpoint /healthz."""
    metrics_port: int = 9090
    """Port of the operator's Prometheus metrics (0 disables)."""
    kubeconfig: str | None = None
    """Kubeconfig file; None uses the in-cluster ServiceAccount, then the default kubeconfig."""
    standalone: bool = True
    """True: no peering (one replica). False: kopf peering for an active/standby pair."""
    peering_name: str = "warmpool"
    """Name of the kopf peering object when peering is on."""
    scaling_interval_seconds: float = 10.0
    """How often each pool's scaling decision is evaluated."""
    refresh_debounce_seconds: float = 0.2
    """Pod and Deployment events that arrive within this window refresh a pool once."""
    workers: int = 8
    """Pools refreshed concurrently by the status/scaling loop."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _env(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = environ.get(f"WARMPOOL_{name}")
    return value if value not in (None, "") else default


def _env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _env(environ, name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The `warmpool operator` argument parser; defaults come from `environ`."""
    parser = argparse.ArgumentParser(
        prog="warmpool operator",
        description="Run the warmpool operator (reconciles InferencePools).",
    )
    env_namespaces = _env(environ, "NAMESPACE")
    parser.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="namespace to watch (repeatable; default: all). Env WARMPOOL_NAMESPACE "
        f"(comma-separated){' = ' + env_namespaces if env_namespaces else ''}",
    )
    parser.add_argument("--prometheus-url", default=_env(environ, "PROMETHEUS_URL"))
    parser.add_argument(
        "--traffic-query",
        default=_env(environ, "TRAFFIC_QUERY"),
        help="default demand PromQL ({namespace}, {pool}, {window}); default: built in per "
        "target type",
    )
    parser.add_argument(
        "--agent-image", default=_env(environ, "AGENT_IMAGE", OperatorSettings.agent_image)
    )
    parser.add_argument(
        "--activator-service",
        default=_env(environ, "ACTIVATOR_SERVICE", ""),
        help="<namespace>/<name> of the activator Service; empty disables the activator mode",
    )
    parser.add_argument(
        "--log-format", choices=["json", "text"], default=_env(environ, "LOG_FORMAT", "text")
    )
    parser.add_argument("--log-level", default=_env(environ, "LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--health-port", type=int, default=int(_env(environ, "HEALTH_PORT", "8080") or 8080)
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(_env(environ, "METRICS_PORT", "9090") or 9090)
    )
    parser.add_argument("--kubeconfig", default=_env(environ, "KUBECONFIG"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--standalone",
        dest="standalone",
        action="store_true",
        default=None,
        help="run without peering (default)",
    )
    mode.add_argument(
        "--peering",
        dest="standalone",
        action="store_false",
        help="use kopf peering so that only one of several replicas is active",
    )
    parser.add_argument("--peering-name", default=_env(environ, "PEERING_NAME", "warmpool"))
    parser.add_argument(
        "--scaling-interval",
        type=float,
        default=float(_env(environ, "SCALING_INTERVAL", "10") or 10),
        help="seconds between two scaling decisions of a pool",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env(environ, "WORKERS", "8") or 8),
        help="pools refreshed concurrently",
    )
    return parser


def parse_settings(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """Parse `warmpool operator` flags; raises SystemExit (argparse) on bad input."""
    env = os.environ if environ is None else environ
    parser = build_parser(env)
    args = parser.parse_args(list(argv))
    namespaces: list[str] = list(args.namespaces or [])
    if not namespaces:
        env_namespaces = _env(env, "NAMESPACE", "") or ""
        namespaces = [item.strip() for item in env_namespaces.split(",") if item.strip()]
    try:
        activator = ActivatorRef.parse(args.activator_service) if args.activator_service else None
    except ValueError as error:
        parser.error(str(error))
    if args.scaling_interval <= 0:
        parser.error("--scaling-interval must be > 0")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    standalone = (
        args.standalone if args.standalone is not None else _env_bool(env, "STANDALONE", True)
    )
    return OperatorSettings(
        namespaces=tuple(dict.fromkeys(namespaces)),
        prometheus_url=args.prometheus_url or None,
        traffic_query=args.traffic_query or None,
        agent_image=args.agent_image,
        activator=activator,
        log_format=args.log_format,
        log_level=str(args.log_level).upper(),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        kubeconfig=args.kubeconfig or None,
        standalone=standalone,
        peering_name=args.peering_name,
        scaling_interval_seconds=args.scaling_interval,
        workers=args.workers,
    )
