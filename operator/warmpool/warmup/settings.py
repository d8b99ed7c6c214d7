"""The warm-up program's settings (validated; built by :mod:`warmpool.warmup.cli`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from warmpool.contract import WARM_CONDITION
from warmpool.warmup.steady import SteadyRule
from warmpool.warmup.triton import Protocol


class WarmupSettings(BaseModel):
    """Everything ``warmpool warmup`` needs; one field per flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Protocol = "http"
    """Protocol to the model server: ``http`` or ``grpc``."""
    url: str = Field(default="localhost:8000", min_length=1)
    """``host:port`` of the server (no scheme): Triton's HTTP or gRPC port."""
    model: str = Field(min_length=1)
    """Name of the model to warm up."""
    model_version: str = ""
    """Model version; empty = the server's choice."""
    inputs: str | None = None
    """JSON list ``[{name, datatype, shape}]``: generate data (exclusive with samples_dir).
    With neither, the inputs are read from the model's metadata once it is ready."""
    samples_dir: Path | None = None
    """Directory of ``*.json`` sample requests (exclusive with inputs)."""
    concurrency: int = Field(default=1, ge=1, le=256)
    """Warm-up requests in flight at once."""
    min_requests: int = Field(default=10, ge=1)
    """Never steady before this many requests."""
    max_requests: int = Field(default=500, ge=1)
    """Not steady (failure) after this many requests."""
    window: int = Field(default=5, ge=1)
    """Requests per window median in the steady-state rule."""
    tolerance: float = Field(default=0.1, ge=0, le=10)
    """Relative tolerance of the steady-state rule."""
    history: int = Field(default=4, ge=1, le=100)
    """Earlier disjoint windows the last one is compared with (drift check)."""
    timeout: float = Field(default=600.0, gt=0)
    """Seconds for one warm-up: waiting for readiness plus the warm-up requests."""
    pod_name: str = ""
    """Pod whose condition is written; empty = write nothing, only log."""
    pod_namespace: str = ""
    """That pod's namespace."""
    kubeconfig: str | None = None
    """Kubeconfig file (tests); in-cluster service account otherwise."""
    condition_type: str = Field(default=WARM_CONDITION, min_length=1)
    """The readiness-gate condition type."""
    health_port: int = Field(default=8089, ge=0, le=65535)
    """Port of the health endpoints (``/healthz``, ``/readyz``, ``/status``); 0 = none."""
    health_address: str = "0.0.0.0"
    """Address the health endpoints bind to (the kubelet probes the pod IP)."""
    watch_interval: float = Field(default=5.0, gt=0)
    """Seconds between readiness checks once warm."""
    watch_failures: int = Field(default=2, ge=1)
    """Consecutive failed checks before the gate closes (``ServerNotReady``)."""
    once: bool = False
    """Exit 0 once warm instead of staying as a sidecar (init-container mode, benchmarks)."""

    @model_validator(mode="after")
    def _check(self) -> WarmupSettings:
        if self.inputs is not None and self.samples_dir is not None:
            raise ValueError("--inputs and --samples-dir are exclusive")
        if bool(self.pod_name) != bool(self.pod_namespace):
            raise ValueError("--pod-name and --pod-namespace go together")
        self.rule()  # validates window/min/max together
        return self

    def rule(self) -> SteadyRule:
        """The steady-state rule these settings describe."""
        return SteadyRule(
            window=self.window,
            tolerance=self.tolerance,
            min_requests=self.min_requests,
            max_requests=self.max_requests,
            history=self.history,
        )
