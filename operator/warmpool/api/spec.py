"""The desired state of an InferencePool: `spec`.

The CRD schema in crds/ is generated from these models (`warmpool crd`), so a field's docstring
is its `kubectl explain` text and its constraints are enforced by the apiserver. Cross-field rules
live twice on purpose: as CEL (`x-kubernetes-validations`, enforced at the door with a message
naming the field) and as model validators (so the operator refuses the same specs when the CRD
is older than the operator).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from warmpool.api.base import APIModel, cel
from warmpool.api.core import (
    EnvVar,
    LabelKey,
    LabelValue,
    ObjectName,
    Quantity,
    ResourceRequirements,
    Toleration,
)

MODEL_URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?"
    r"|gs://[a-z0-9][a-z0-9._\-]{1,221}(/.*)?"
    r"|hf://[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*"
    r"|https://[^\s/]+(/.*)?"
    r"|file:///.+"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?)$"
)
SHA256_PATTERN = r"^[a-f0-9]{64}$"
#: A `..` path segment. Refused in model URIs: a file:// path would climb out of the directory
#: it names (and the kubelet refuses such mount paths), an object key would mean another key.
DOT_DOT_SEGMENT = r"(^|/)[.][.](/|$)"
# Five whitespace-separated cron fields of the characters cron allows; semantic checks (ranges,
# names) happen in the operator, which reports them in the Degraded condition.
CRON_PATTERN = r"^\s*([0-9*/,\-A-Za-z?]+\s+){4}[0-9*/,\-A-Za-z?]+\s*$"
#: A list whose items are keyed by `name`: the apiserver refuses duplicate names
#: (`Duplicate value`) and server-side apply merges such lists by name, as core/v1 does for env.
LIST_KEYED_BY_NAME: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}


def unique_names(names: list[str], field: str) -> None:
    """Refuse a repeated name in a list keyed by name, naming the item (as the apiserver does)."""
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{field}[{index}].name: duplicate name {name!r}")
        seen.add(name)


RelativePath = Annotated[str, Field(min_length=1, max_length=1024)]
TritonBackend = Literal[
    "python", "onnxruntime", "pytorch", "tensorflow", "tensorrt", "tensorrtllm", "vllm", "openvino"
]
Sha256Hex = Annotated[str, Field(max_length=64, pattern=SHA256_PATTERN)]


class ModelSpec(APIModel):
    """Where the model's weights come from and how they are verified."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!(has(self.sha256) && size(self.sha256) > 0 && has(self.sha256File))",
            "set sha256 or sha256File, not both",
            ".sha256File",
        )
        | cel(
            f"!has(self.uri) || !self.uri.matches('{DOT_DOT_SEGMENT}')",
            "uri must not contain '..' path segments",
            ".uri",
        )
    )

    uri: str = Field(max_length=2048, pattern=MODEL_URI_PATTERN)
    """Location of the model repository: s3://bucket/prefix, gs://bucket/prefix,
    hf://org/name, https://host/path, file:///path (on the node) or pvc://claim/path."""
    name: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    """Name of the model in Triton's repository; defaults to the pool's name."""
    revision: str | None = Field(default=None, max_length=256)
    """Revision of the weights (a hub commit or tag, an object-store version label). Part of the
    node cache key: changing it fetches and caches the new weights."""
    include: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=64
    )
    """Glob patterns of the files to fetch, relative to the uri; empty fetches everything."""
    sha256: dict[RelativePath, Sha256Hex] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 512}
    )
    """Expected sha256 of files, by path relative to the uri. A mismatch fails the prefetch."""
    sha256_file: str | None = Field(default=None, min_length=1, max_length=1024)
    """Name of a sha256sum-format file at the source that lists the expected checksums."""
    endpoint: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    """Endpoint of an S3-compatible store or of a hub mirror (HF_ENDPOINT)."""
    region: str | None = Field(default=None, max_length=64)
    """Region of the object store."""
    credentials_secret: ObjectName | None = None
    """Secret in the pool's namespace whose keys become the prefetcher's environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, HF_TOKEN, GOOGLE_APPLICATION_CREDENTIALS...).
    Values are never logged."""

    @model_validator(mode="after")
    def _one_checksum_source(self) -> ModelSpec:
        if self.sha256 and self.sha256_file:
            raise ValueError("spec.model: set sha256 or sha256File, not both")
        if re.search(DOT_DOT_SEGMENT, self.uri):
            raise ValueError("spec.model.uri: uri must not contain '..' path segments")
        return self


class GPUSpec(APIModel):
    """The GPUs each replica needs."""

    count: int = Field(default=1, ge=0, le=16)
    """GPUs per replica; 0 runs on CPU."""
    product: str | None = Field(default=None, max_length=128)
    """Required GPU product, matched against the node label nvidia.com/gpu.product
    (e.g. NVIDIA-H100-80GB-HBM3)."""
    resource_name: str = Field(default="nvidia.com/gpu", max_length=253)
    """Extended resource that counts GPUs on nodes."""


class ServerPorts(APIModel):
    """Ports of the Triton server."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!(has(self.http) && has(self.grpc) && has(self.metrics))"
            " || (self.http != self.grpc && self.http != self.metrics"
            " && self.grpc != self.metrics)",
            "http, grpc and metrics ports must differ",
        )
    )

    http: int = Field(default=8000, ge=1, le=65535)
    """KServe v2 HTTP/REST port."""
    grpc: int = Field(default=8001, ge=1, le=65535)
    """KServe v2 gRPC port."""
    metrics: int = Field(default=8002, ge=1, le=65535)
    """Prometheus metrics port."""

    @model_validator(mode="after")
    def _distinct(self) -> ServerPorts:
        if len({self.http, self.grpc, self.metrics}) != 3:
            raise ValueError("spec.server.ports: http, grpc and metrics must differ")
        return self


class ServerSpec(APIModel):
    """The Triton Inference Server that serves the model."""

    image: str = Field(
        default="nvcr.io/nvidia/tritonserver:25.01-py3", min_length=1, max_length=512
    )
    """Triton container image."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image."""
    image_pull_secrets: list[ObjectName] = Field(default_factory=list, max_length=8)
    """Secrets for pulling the server and agent images."""
    backend: TritonBackend | None = None
    """Triton backend of the model; recorded as the pool's label warmpool.dev/backend."""
    args: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=64)
    """Extra tritonserver arguments, appended after the ones warmpool sets."""
    env: list[EnvVar] = Field(
        default_factory=list, max_length=64, json_schema_extra=LIST_KEYED_BY_NAME
    )
    """Environment of the server container; names are unique."""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    """CPU and memory of the server container; GPUs come from gpu."""
    gpu: GPUSpec = Field(default_factory=GPUSpec)
    """GPUs per replica."""
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 32}
    )
    """Labels a node must carry to run a replica."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Taints the replicas tolerate (GPU nodes are usually tainted)."""
    ports: ServerPorts = Field(default_factory=ServerPorts)
    """Server ports."""
    priority_class_name: str | None = Field(default=None, max_length=253)
    """PriorityClass of the replicas."""

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        unique_names([item.name for item in env], "spec.server.env")
        return env


class CacheSpec(APIModel):
    """Where the prefetched weights live."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.kind) || self.kind != 'pvc' || has(self.claimName)",
            "claimName is required when kind is pvc",
            ".claimName",
        )
        | cel(
            "!has(self.prepull) || !self.prepull || !has(self.kind) || self.kind == 'node'",
            "prepull needs kind: node",
            ".prepull",
        )
    )

    kind: Literal["node", "pvc", "ephemeral"] = "node"
    """node: a hostPath cache shared by every pod on the node (fetched once per node);
    pvc: a PersistentVolumeClaim; ephemeral: an emptyDir per pod."""
    path: str = Field(default="/var/cache/warmpool", max_length=1024, pattern=r"^/.*$")
    """Node path of the cache (kind node)."""
    claim_name: ObjectName | None = None
    """PersistentVolumeClaim holding the cache (kind pvc)."""
    size_limit: Quantity | None = None
    """Budget of the cache; least recently used models no pod uses are evicted beyond it.
    For kind ephemeral, the emptyDir's size limit."""
    prepull: bool = False
    """Fill the cache on every eligible GPU node ahead of need (a DaemonSet); replicas then
    prefer nodes that hold a verified copy. A change of the weights (a new fingerprint) is
    pre-pulled before it rolls out: the replicas keep the previous weights until the new ones
    are verified on enough nodes (docs/prepull-and-headroom.md)."""
    prepull_timeout_seconds: int | None = Field(default=None, ge=0, le=86400)
    """With prepull: seconds a new revision of the weights may wait for its pre-pull before it
    rolls out anyway (a Warning Event says so; new replicas on nodes without the copy then
    download it themselves). 0 rolls out at once, without waiting; unset takes the roll-out's
    progress deadline (spec.rollout.progressDeadlineSeconds, else the operator's)."""

    @model_validator(mode="after")
    def _claim_for_pvc(self) -> CacheSpec:
        if self.kind == "pvc" and not self.claim_name:
            raise ValueError("spec.cache.claimName is required when spec.cache.kind is pvc")
        if self.prepull and self.kind != "node":
            raise ValueError("spec.cache.prepull needs spec.cache.kind: node")
        return self


#: KServe v2 datatypes the warm-up program can generate data for (numpy has no bfloat16).
WarmupDatatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class WarmupInput(APIModel):
    """One input tensor of the warm-up requests; its data is generated."""

    name: str = Field(min_length=1, max_length=128)
    """Input name as the model declares it."""
    datatype: WarmupDatatype
    """KServe v2 datatype (BF16 is not generated: numpy has no bfloat16; give BF16 models
    recorded samples through samplesConfigMap)."""
    shape: list[Annotated[int, Field(ge=1, le=1 << 20)]] = Field(min_length=1, max_length=8)
    """Shape of the tensor, batch dimension included."""


class WarmupLLM(APIModel):
    """Streaming warm-up of a decoupled (LLM) model: prompts, answer length, sampling."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.prompts) || size(self.prompts) == 0 || !has(self.promptsConfigMap)",
            "set prompts or promptsConfigMap, not both",
            ".promptsConfigMap",
        )
    )

    prompts: list[Annotated[str, Field(min_length=1, max_length=8192)]] = Field(
        default_factory=list, max_length=64
    )
    """Prompts sent round-robin; empty (and no promptsConfigMap) uses a few built-in ones."""
    prompts_config_map: ObjectName | None = None
    """ConfigMap of prompts: each key is one prompt, or a JSON list of prompts in a key ending
    in .json."""
    max_tokens: int = Field(default=16, ge=1, le=4096)
    """Tokens generated per warm-up request: bounds each streamed answer."""
    sampling_parameters: dict[
        Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=256)]
    ] = Field(default_factory=dict, json_schema_extra={"maxProperties": 32})
    """Sampling parameters as the vLLM backend names them (temperature, top_p, top_k, seed,
    ...). Values are JSON scalars written as strings ("0.7", "42", "true"); max_tokens is
    maxTokens."""

    @model_validator(mode="after")
    def _one_source(self) -> WarmupLLM:
        if self.prompts and self.prompts_config_map:
            raise ValueError("spec.warmup.llm: set prompts or promptsConfigMap, not both")
        if "max_tokens" in self.sampling_parameters:
            raise ValueError("spec.warmup.llm.samplingParameters: use maxTokens for max_tokens")
        return self


class WarmupSpec(APIModel):
    """How a new replica is warmed before it receives traffic.

    A sidecar drives real inference until latency is steady, then opens the pod's readiness
    gate warmpool.dev/warm.
    """

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.minRequests) || !has(self.maxRequests)"
            " || self.minRequests <= self.maxRequests",
            "minRequests must be <= maxRequests",
            ".minRequests",
        )
        | cel(
            "!has(self.window) || !has(self.maxRequests) || self.window <= self.maxRequests",
            "window must be <= maxRequests",
            ".window",
        )
    )

    enabled: bool = True
    """Gate readiness on warm-up; false makes pods Ready as soon as Triton is."""
    protocol: Literal["http", "grpc"] = "http"
    """Protocol of the warm-up requests. For a streaming model: http uses Triton's
    generate_stream (Server-Sent Events), grpc a ModelStreamInfer stream."""
    mode: Literal["auto", "unary", "stream"] = "auto"
    """unary: one response per request, judged on latency; stream: a decoupled (LLM) model,
    driven with prompts and judged on time to first token and inter-token latency; auto:
    stream when the model's config says decoupled (vLLM, TensorRT-LLM), else unary."""
    llm: WarmupLLM = Field(default_factory=WarmupLLM)
    """Prompts and sampling of the streaming warm-up (mode stream, or auto on a decoupled
    model)."""
    inputs: list[WarmupInput] = Field(
        default_factory=list, max_length=16, json_schema_extra=LIST_KEYED_BY_NAME
    )
    """Input tensors of the warm-up requests (names unique); empty takes them from the model's
    metadata."""
    samples_config_map: ObjectName | None = None
    """ConfigMap of recorded sample requests to replay instead of generated inputs."""
    concurrency: int = Field(default=1, ge=1, le=256)
    """Concurrent warm-up requests (use the serving concurrency)."""
    min_requests: int = Field(default=10, ge=1, le=100000)
    """Requests sent before latency may be judged steady."""
    max_requests: int = Field(default=1000, ge=1, le=100000)
    """Requests after which warm-up fails as not steady."""
    window: int = Field(default=5, ge=2, le=1000)
    """Requests per window when comparing latency medians."""
    tolerance: float = Field(default=0.1, gt=0, le=1)
    """Relative tolerance: latency is steady when the last window's median is within it of the
    best window's median."""
    timeout_seconds: int = Field(default=900, ge=10, le=86400)
    """Total time warm-up may take, model load included."""

    @model_validator(mode="after")
    def _bounds(self) -> WarmupSpec:
        if self.min_requests > self.max_requests:
            raise ValueError("spec.warmup.minRequests must be <= spec.warmup.maxRequests")
        if self.window > self.max_requests:
            raise ValueError("spec.warmup.window must be <= spec.warmup.maxRequests")
        unique_names([item.name for item in self.inputs], "spec.warmup.inputs")
        return self


class Schedule(APIModel):
    """A recurring window during which the warm floor is raised."""

    cron: str = Field(max_length=128, pattern=CRON_PATTERN)
    """Start of each window, a five-field cron expression (minute hour day month weekday)."""
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    """IANA time zone the cron expression is read in, e.g. Europe/Berlin."""
    warm_floor: int = Field(ge=0, le=1000)
    """Warm floor during the window."""
    duration_minutes: int = Field(ge=1, le=10080)
    """Length of each window."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {value!r}") from error
        return value


#: What a replica is sized for. The first two fit any model; the rest are LLM signals read from
#: the metrics the vLLM and TensorRT-LLM backends export under Triton (docs/scaling.md).
TargetType = Literal[
    "Concurrency",
    "RequestsPerSecond",
    "QueueDepth",
    "KVCacheUtilization",
    "TokensPerSecond",
    "TimeToFirstToken",
]


class TrafficTarget(APIModel):
    """Load one replica is sized for."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.type) || self.type != 'KVCacheUtilization' || !has(self.value)"
            " || self.value <= 1.0",
            "value is a fraction of the KV cache for KVCacheUtilization: at most 1",
            ".value",
        )
    )

    type: TargetType = "Concurrency"
    """Concurrency: in-flight requests per replica; RequestsPerSecond: request rate per
    replica; QueueDepth: requests waiting for the engine per replica; KVCacheUtilization:
    KV-cache use per replica as a fraction (0.8 = 80 %); TokensPerSecond: generated tokens per
    second per replica; TimeToFirstToken: mean time to first token in seconds (replicas scale
    by the ratio of the measured to the target value, as the HPA does for a value metric)."""
    value: float = Field(default=4, gt=0, le=100000)
    """Target value per replica."""

    @model_validator(mode="after")
    def _fraction(self) -> TrafficTarget:
        if self.type == "KVCacheUtilization" and self.value > 1:
            raise ValueError(
                "spec.scaling.target.value: a fraction of the KV cache for KVCacheUtilization,"
                " at most 1"
            )
        return self


class PredictiveSpec(APIModel):
    """Cost-aware keep-alive and pre-warm from the pool's own traffic history."""

    enabled: bool = True
    """Learn when the pool's requests come (idle gaps, bursts, time of day and week) and keep
    or bring back one warm replica when that is cheaper than the cold starts it avoids."""
    cold_start_cost_seconds: float | None = Field(default=None, ge=0, le=1000000)
    """The knob: how many GPU-seconds one request that waits on a cold start is worth. The
    policy keeps, releases and pre-warms to minimise GPU-seconds + this x requests that wait.
    Higher: fewer cold starts, more GPU-seconds; 0: never spend GPU time to avoid one. Unset:
    derived from the deprecated `coverage` when that is set, else 300."""
    coverage: float | None = Field(default=None, ge=0.5, le=1)
    """Deprecated (the quantile knob of the percentile windows, replaced by
    coldStartCostSeconds): when set and coldStartCostSeconds is not, it maps to a cold-start
    cost of coldStart x coverage / (1 - coverage) GPU-seconds (coverage 1: 100 cold starts)."""


class MetricsSource(APIModel):
    """Where the scaler reads traffic."""

    prometheus_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    """Prometheus base URL; defaults to the operator's --prometheus-url."""
    query: str | None = Field(default=None, max_length=4096)
    """PromQL giving the pool's demand (in the target's unit). {namespace} and {pool} are
    substituted; defaults to the operator's query over Triton's nv_inference_* metrics."""


class ScalingSpec(APIModel):
    """How many replicas run: between the warm floor and maxReplicas, driven by traffic."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.warmFloor) || !has(self.maxReplicas) || self.warmFloor <= self.maxReplicas",
            "warmFloor must be <= maxReplicas",
            ".warmFloor",
        )
        | cel(
            "!has(self.schedules) || !has(self.maxReplicas)"
            " || self.schedules.all(s, s.warmFloor <= self.maxReplicas)",
            "every schedule's warmFloor must be <= maxReplicas",
            ".schedules",
        )
        | cel(
            "!has(self.scaleToZeroAfterSeconds) || (has(self.warmFloor) && self.warmFloor == 0)",
            "scaleToZeroAfterSeconds requires warmFloor: 0 (the floor outside schedules)",
            ".scaleToZeroAfterSeconds",
        )
    )

    warm_floor: int = Field(default=1, ge=0, le=1000)
    """Replicas kept warm whatever the traffic (outside schedules). 0 allows scale to zero."""
    max_replicas: int = Field(default=4, ge=1, le=1000)
    """Upper bound of replicas."""
    scale_to_zero_after_seconds: int | None = Field(default=None, ge=0, le=604800)
    """Idle time after which a pool with warmFloor 0 scales to zero; unset never scales to
    zero."""
    scale_down_delay_seconds: int = Field(default=300, ge=0, le=86400)
    """Stabilization window for scaling down: the highest recommendation within it wins."""
    target: TrafficTarget = Field(default_factory=TrafficTarget)
    """Load per replica."""
    schedules: list[Schedule] = Field(default_factory=list, max_length=32)
    """Windows that raise the warm floor, e.g. business hours."""
    predictive: PredictiveSpec = Field(default_factory=PredictiveSpec)
    """Predictive pre-warm and keep-alive."""
    metrics: MetricsSource = Field(default_factory=MetricsSource)
    """Traffic source."""

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSpec:
        if self.warm_floor > self.max_replicas:
            raise ValueError("spec.scaling.warmFloor must be <= spec.scaling.maxReplicas")
        for index, schedule in enumerate(self.schedules):
            if schedule.warm_floor > self.max_replicas:
                raise ValueError(
                    f"spec.scaling.schedules[{index}].warmFloor must be <= spec.scaling.maxReplicas"
                )
        if self.scale_to_zero_after_seconds is not None and self.warm_floor != 0:
            raise ValueError(
                "spec.scaling.scaleToZeroAfterSeconds requires spec.scaling.warmFloor: 0"
            )
        return self


class HeadroomSpec(APIModel):
    """Warm GPU node capacity kept for the pool by low-priority placeholder pods."""

    placeholders: int = Field(default=0, ge=0, le=64)
    """Placeholder pods with one replica's GPU request each, at a negative priority, so a
    cluster autoscaler keeps nodes for them; real replicas preempt them."""
    priority_class_name: str = Field(default="warmpool-headroom", max_length=253)
    """PriorityClass of the placeholders (negative value; created by the Helm chart)."""


class RolloutSpec(APIModel):
    """How a new revision of the replicas (a changed spec) replaces the running ones."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "self.strategy != 'Auto' || !has(self.progressDeadlineSeconds)"
            " || !has(self.surgeTimeoutSeconds)"
            " || self.surgeTimeoutSeconds < self.progressDeadlineSeconds",
            "surgeTimeoutSeconds must be < progressDeadlineSeconds",
            ".surgeTimeoutSeconds",
        )
    )

    strategy: Literal["Auto", "Surge", "Replace"] = "Auto"
    """Auto: surge while a GPU can be found for the new replica (a free one, a headroom
    placeholder's, or a node an autoscaler adds within surgeTimeoutSeconds), and when a surged
    replica stays unschedulable for lack of GPUs that long, replace in place for the rest of
    that revision's roll-out (status.rollout.fallback says why). Surge: start the new revision
    beside the old one and remove an old replica only once a new one is warm: warm replicas
    never drop below the floor, and with no spare GPU the roll-out waits until its progress
    deadline (Stalled). Replace: remove old replicas first and start their successors in the
    freed GPUs; warm replicas drop by up to maxUnavailable while the new revision warms up."""
    max_surge: int = Field(default=1, ge=1, le=100)
    """Surge and Auto: new replicas started beyond the desired count at once."""
    max_unavailable: int = Field(default=1, ge=1, le=100)
    """Replace, and Auto once it fell back: old replicas removed at once before their
    successors are warm."""
    surge_timeout_seconds: int = Field(default=120, ge=1, le=1800)
    """Auto: seconds a surged replica may stay unschedulable for lack of GPUs (the
    scheduler's "Insufficient <gpu resource>") before the roll-out falls back to replacing in
    place; room for a cluster autoscaler or Karpenter to bring a GPU node. Must be below
    progressDeadlineSeconds."""
    progress_deadline_seconds: int | None = Field(default=None, ge=30, le=86400)
    """Seconds a roll-out may go without progress (a new replica scheduled, fetched, warm)
    before the pool reports Stalled (reason RolloutStalled); unset takes the operator's
    default (3600: prefetch and warm-up of a large model take long)."""

    @model_validator(mode="after")
    def _timeout_within_deadline(self) -> RolloutSpec:
        deadline = self.progress_deadline_seconds
        if (
            self.strategy == "Auto"
            and deadline is not None
            and self.surge_timeout_seconds >= deadline
        ):
            raise ValueError(
                "spec.rollout.surgeTimeoutSeconds must be < spec.rollout.progressDeadlineSeconds"
            )
        return self


class DisruptionSpec(APIModel):
    """How the pool's replicas meet voluntary disruption: node drains, cluster autoscalers,
    Karpenter consolidation, and their own termination."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.drainSeconds) || !has(self.terminationGracePeriodSeconds)"
            " || self.drainSeconds < self.terminationGracePeriodSeconds",
            "drainSeconds must be < terminationGracePeriodSeconds",
            ".drainSeconds",
        )
    )

    pod_disruption_budget: bool = True
    """Keep a PodDisruptionBudget `<pool>` whose minAvailable is the effective warm floor, so
    evictions never take warm replicas below it; none while the floor is 0. Replicas that are
    not yet warm may always be evicted (unhealthyPodEvictionPolicy AlwaysAllow): a drain is
    not held up by a replica that serves nothing yet."""
    protect_cold_starts: bool = True
    """While a replica cold-starts, annotate it karpenter.sh/do-not-disrupt: "true" and
    cluster-autoscaler.kubernetes.io/safe-to-evict: "false", so an autoscaler does not remove
    its node mid-download; the operator removes both once the replica is warm."""
    termination_grace_period_seconds: int | None = Field(default=None, ge=1, le=3600)
    """Grace period of a replica's termination; unset: drainSeconds + Triton's exit timeout
    (the operator's --server-exit-timeout) + 5."""
    drain_seconds: int | None = Field(default=None, ge=0, le=600)
    """Seconds a stopping replica keeps serving (preStop) while its endpoint is removed from
    every proxy, before Triton stops taking requests and finishes the in-flight ones; unset
    takes the operator's --drain-seconds (5)."""

    @model_validator(mode="after")
    def _grace_covers_drain(self) -> DisruptionSpec:
        grace, drain = self.termination_grace_period_seconds, self.drain_seconds
        if grace is not None and drain is not None and drain >= grace:
            raise ValueError(
                "spec.disruption.drainSeconds must be < "
                "spec.disruption.terminationGracePeriodSeconds"
            )
        return self


class InferencePoolSpec(APIModel):
    """Desired state of an InferencePool."""

    model: ModelSpec
    """The model's weights."""
    server: ServerSpec = Field(default_factory=ServerSpec)
    """The Triton server."""
    cache: CacheSpec = Field(default_factory=CacheSpec)
    """The weight cache."""
    warmup: WarmupSpec = Field(default_factory=WarmupSpec)
    """Warm-up before readiness."""
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    """Automatic scaling."""
    headroom: HeadroomSpec = Field(default_factory=HeadroomSpec)
    """Warm node headroom."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    """How a changed spec rolls out."""
    disruption: DisruptionSpec = Field(default_factory=DisruptionSpec)
    """Disruption budget, autoscaler hints, termination and drain."""
    replicas: int | None = Field(default=None, ge=0, le=1000)
    """Replicas set by hand or by an external autoscaler through the scale subresource
    (kubectl scale, HPA, KEDA). While set, the built-in scaler stands aside; remove it
    (set it to null) to hand control back."""
