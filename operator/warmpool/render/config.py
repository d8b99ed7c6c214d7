"""RenderConfig: the operator-wide settings the builders need besides the pool itself.

The operator builds one from its flags at startup; everything a user sets per pool lives in the
InferencePool spec instead. Defaults are what a fresh install gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from warmpool import __version__

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
Resources = Mapping[str, Mapping[str, str]]


def _prefetch_resources() -> Resources:
    # Peak RSS measured ~90 MiB for a 4 GiB model (benchmarks/results/prefetch.md: pieces are
    # written and hashed in place, not buffered); the limit leaves room for many-file models.
    return {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def _warmup_resources() -> Resources:
    return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def _hold_resources() -> Resources:
    return {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}


@dataclass(frozen=True)
class RenderConfig:
    """Operator-wide settings of the rendered children."""

    agent_image: str = f"ghcr.io/warmpool/agent:{__version__}"
    """Image with the `warmpool` console script (prefetch and warm-up programs)."""
    agent_image_pull_policy: PullPolicy = "IfNotPresent"
    """Pull policy of the agent image."""
    pause_image: str = "registry.k8s.io/pause:3.10"
    """Image of the containers that only hold a place (headroom placeholders, pre-pull pods)."""
    warmup_cluster_role: str = "warmpool-warmup"
    """ClusterRole (from the Helm chart) bound in the pool's namespace to the warm-up
    ServiceAccount: patch pods/status."""
    model_repository_path: str = "/models"
    """Triton's --model-repository inside the pod: an emptyDir where the prefetcher links the
    model into the cache."""
    cache_mount_path: str = "/var/cache/warmpool"
    """Where the cache volume is mounted, in the prefetch and server containers alike (the links
    in the model repository point there)."""
    source_mount_path: str = "/mnt/model-source"
    """Below it, a pvc:// model source is mounted (read-only) for the prefetcher at
    `pvc/<namespace>/<claim>`, a file:/// one at `node/<path>`."""
    run_as_user: int = 1000
    """UID of every container (the Triton images' `triton-server` user is 1000)."""
    run_as_group: int = 1000
    """GID of every container, and the pod's fsGroup."""
    prepare_node_cache: bool = False
    """For cache kind node: run an init container as root with only CAP_CHOWN that hands the
    cache directory to run_as_user. The kubelet creates a missing hostPath directory owned by
    root, where the non-root prefetcher cannot write; leave this off when node bootstrap
    creates the directory with the right owner. hostPath volumes already need a namespace
    outside the restricted and baseline Pod Security levels."""
    revision_history_limit: int = 3
    """Old ReplicaSets kept for `kubectl rollout undo`."""
    progress_deadline_seconds: int = 3600
    """Deployment progress deadline: prefetch and warm-up of a large model take long."""
    model_control_mode: Literal["none", "explicit"] = "explicit"
    """Triton's --model-control-mode; explicit loads only the pool's model (--load-model)."""
    startup_probe_period_seconds: int = 1
    """Period of the server's startup probe; its failure threshold covers spec.warmup's
    timeoutSeconds, model load included."""
    drain_seconds: int = 5
    """preStop sleep of the server: time for the endpoint removal to reach every proxy before
    Triton stops taking requests, so scaling down drops none."""
    server_exit_timeout_seconds: int = 30
    """Triton's --exit-timeout-secs: in-flight requests may finish within it after SIGTERM."""
    shm_size_limit: str = "1Gi"
    """Size of the memory-backed /dev/shm (Python backend, NCCL)."""
    prefetch_resources: Resources = field(default_factory=_prefetch_resources)
    """Resources of the prefetch init container."""
    warmup_resources: Resources = field(default_factory=_warmup_resources)
    """Resources of the warm-up sidecar."""
    hold_resources: Resources = field(default_factory=_hold_resources)
    """Resources of the pause container of a pre-pull pod."""
