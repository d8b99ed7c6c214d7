"""The operator's settings: command-line flags with `WARMPOOL_*` environment fallbacks.

Parsing is pure (argv and an environment mapping in, a frozen `OperatorSettings` out), so the
flag surface is unit-tested without starting anything.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from warmpool import __version__
from warmpool.render.config import PullPolicy, RenderConfig

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
class LeaderElectionSettings:
    """Where the Lease lives and how long a leader holds it (controller-runtime's defaults: a
    crashed leader is replaced at most lease_duration after its last renewal; docs/ha.md)."""

    namespace: str | None = None
    """Namespace of the Lease; None: POD_NAMESPACE, else the ServiceAccount's namespace."""
    lease_name: str = "warmpool-operator"
    """Name of the Lease (`--leader-election-id`)."""
    lease_duration_seconds: float = 15.0
    """How long a standby waits after the last renewal it saw before it takes the Lease."""
    renew_deadline_seconds: float = 10.0
    """How long the leader keeps retrying a failed renewal before it exits (crash-only)."""
    retry_period_seconds: float = 2.0
    """Seconds between a standby's attempts to acquire, and between the leader's renewals."""

    def problems(self) -> list[str]:
        """Why these timings are unsafe ([] when they are safe).

        The leader must give up (renew deadline) before a standby may take over (lease
        duration), and must get several renewal attempts into its deadline: client-go checks
        the same (leaseDuration > renewDeadline > 1.2 * retryPeriod)."""
        found = []
        if self.retry_period_seconds <= 0:
            found.append("--retry-period must be > 0")
        if self.renew_deadline_seconds <= 1.2 * self.retry_period_seconds:
            found.append("--renew-deadline must be > 1.2 x --retry-period")
        if self.lease_duration_seconds <= self.renew_deadline_seconds:
            found.append("--lease-duration must be > --renew-deadline")
        if self.lease_duration_seconds != int(self.lease_duration_seconds):
            # The Lease stores leaseDurationSeconds as an integer.
            found.append("--lease-duration must be a whole number of seconds")
        return found


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
    agent_image_pull_policy: PullPolicy = RenderConfig.agent_image_pull_policy
    """Pull policy of the agent image."""
    pause_image: str = RenderConfig.pause_image
    """Image of the containers that only hold a place (headroom, pre-pull pods)."""
    prepare_node_cache: bool = RenderConfig.prepare_node_cache
    """Hand a node cache's directory to the pods' user with a CAP_CHOWN init container."""
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
    leader_elect: bool = False
    """Elect one active replica on a coordination.k8s.io Lease (controller/leader.py); off:
    this process is the only operator and runs at once."""
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    """The Lease and its timings (used when `leader_elect` is on)."""
    scaling_interval_seconds: float = 10.0
    """How often each pool's scaling decision is evaluated."""
    refresh_debounce_seconds: float = 0.2
    """Pod and Deployment events that arrive within this window refresh a pool once."""
    workers: int = 8
    """Pools refreshed concurrently by the status/scaling loop."""

    def render_config(self) -> RenderConfig:
        """The builders' operator-wide settings: those with a flag from it, the rest the
        design's defaults (docs/render.md)."""
        return RenderConfig(
            agent_image=self.agent_image,
            agent_image_pull_policy=self.agent_image_pull_policy,
            pause_image=self.pause_image,
            prepare_node_cache=self.prepare_node_cache,
        )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def standalone(self) -> bool:
        """One replica that runs at once, without leader election. kopf itself never peers:
        its peering pauses kopf's handlers but not the operator's own refresh loop."""
        return not self.leader_elect


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
        "--agent-image-pull-policy",
        choices=get_args(PullPolicy),
        default=_env(environ, "AGENT_IMAGE_PULL_POLICY", OperatorSettings.agent_image_pull_policy),
    )
    parser.add_argument(
        "--pause-image",
        default=_env(environ, "PAUSE_IMAGE", OperatorSettings.pause_image),
        help="image of the headroom placeholders and pre-pull pods (a mirror in air-gapped "
        "clusters)",
    )
    parser.add_argument(
        "--prepare-node-cache",
        action="store_true",
        default=_env_bool(environ, "PREPARE_NODE_CACHE", False),
        help="chown a node cache's directory to the pods' user in a CAP_CHOWN init container "
        "(when node bootstrap does not create it with that owner)",
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
        dest="leader_elect",
        action="store_false",
        default=None,
        help="run at once as the only operator, without leader election (default)",
    )
    mode.add_argument(
        "--leader-elect",
        dest="leader_elect",
        action="store_true",
        help="run several replicas: only the holder of a coordination.k8s.io Lease works, the "
        "others wait as standbys. Env WARMPOOL_LEADER_ELECT",
    )
    # kopf peering is not an HA mode here (it pauses kopf's handlers, not the refresh loop):
    # the old flags fail with a pointer instead of silently running two writers.
    mode.add_argument("--peering", dest="peering", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peering-name", help=argparse.SUPPRESS)
    defaults = LeaderElectionSettings()
    parser.add_argument(
        "--leader-election-namespace",
        default=_env(environ, "LEADER_ELECTION_NAMESPACE"),
        help="namespace of the Lease (default: POD_NAMESPACE, else the ServiceAccount's)",
    )
    parser.add_argument(
        "--leader-election-id",
        default=_env(environ, "LEADER_ELECTION_ID", defaults.lease_name),
        help="name of the Lease",
    )
    for flag, env_name, default, what in (
        (
            "--lease-duration",
            "LEASE_DURATION",
            defaults.lease_duration_seconds,
            "seconds a standby waits after the leader's last renewal before taking over",
        ),
        (
            "--renew-deadline",
            "RENEW_DEADLINE",
            defaults.renew_deadline_seconds,
            "seconds the leader retries a failed renewal before it exits",
        ),
        (
            "--retry-period",
            "RETRY_PERIOD",
            defaults.retry_period_seconds,
            "seconds between attempts to acquire or renew the Lease",
        ),
    ):
        parser.add_argument(
            flag,
            type=float,
            default=float(_env(environ, env_name, str(default)) or default),
            help=f"{what} (default {default:g}). Env WARMPOOL_{env_name}",
        )
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
    if args.peering or args.peering_name:
        parser.error(
            "kopf peering was replaced by leader election on a Lease: use --leader-elect "
            "(see docs/ha.md)"
        )
    leader_elect = (
        args.leader_elect
        if args.leader_elect is not None
        else _env_bool(env, "LEADER_ELECT", False)
    )
    election = LeaderElectionSettings(
        namespace=args.leader_election_namespace or None,
        lease_name=args.leader_election_id,
        lease_duration_seconds=args.lease_duration,
        renew_deadline_seconds=args.renew_deadline,
        retry_period_seconds=args.retry_period,
    )
    if not args.leader_election_id:
        parser.error("--leader-election-id must not be empty")
    for problem in election.problems() if leader_elect else ():
        parser.error(problem)
    return OperatorSettings(
        namespaces=tuple(dict.fromkeys(namespaces)),
        prometheus_url=args.prometheus_url or None,
        traffic_query=args.traffic_query or None,
        agent_image=args.agent_image,
        agent_image_pull_policy=args.agent_image_pull_policy,
        pause_image=args.pause_image,
        prepare_node_cache=args.prepare_node_cache,
        activator=activator,
        log_format=args.log_format,
        log_level=str(args.log_level).upper(),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        kubeconfig=args.kubeconfig or None,
        leader_elect=leader_elect,
        leader_election=election,
        scaling_interval_seconds=args.scaling_interval,
        workers=args.workers,
    )
