"""The pool's Deployment `<pool>`: prefetch init container, warm-up native sidecar, Triton (pure).

Pod lifecycle, in order: `prefetch` fills the verified cache and links the model into Triton's
repository (an emptyDir); the `warmup` sidecar starts and waits for the server; `triton` loads the
model; the sidecar drives inference until latency is steady and opens the readiness gate
`warmpool.dev/warm`. Only then is the pod Ready and in the Services' endpoints.
"""

from __future__ import annotations

import math

from warmpool.api.resource import WARM_CONDITION, InferencePool
from warmpool.render.common import (
    Obj,
    container_security_context,
    gpu_resources,
    image_pull_secrets,
    object_meta,
    placement,
    pod_security_context,
    resources,
)
from warmpool.render.config import RenderConfig
from warmpool.render.disruption import (
    cold_start_hints,
    deployment_strategy,
    drain_seconds,
    progress_deadline_seconds,
    termination_grace_seconds,
)
from warmpool.render.labels import (
    BACKEND_LABEL,
    INFERENCE_SERVER,
    MODEL_FINGERPRINT_ANNOTATION,
    MODEL_SPEC_ANNOTATION,
    REVISION_ANNOTATION,
    model_fingerprint,
    model_spec_annotation,
    object_labels,
    prepull_node_label_key,
    server_selector,
    template_revision,
)
from warmpool.render.prefetch_args import (
    PREFETCH_COMMAND,
    TERMINATION_LOG,
    credentials_env_from,
    prefetch_args,
    prefetch_env,
)
from warmpool.render.volumes import (
    CACHE_VOLUME,
    CREDENTIALS_MOUNT_PATH,
    CREDENTIALS_VOLUME,
    PROMPTS_MOUNT_PATH,
    PROMPTS_VOLUME,
    REF_MOUNT_PATH,
    REF_VOLUME,
    REPOSITORY_VOLUME,
    SAMPLES_MOUNT_PATH,
    SAMPLES_VOLUME,
    SHM_VOLUME,
    SOURCE_VOLUME,
    TMP_VOLUME,
    TOKEN_MOUNT_PATH,
    TOKEN_VOLUME,
    ModelSource,
    cache_volume,
    credentials_file_volume,
    model_source,
    prompts_volume,
    samples_volume,
    scratch_volumes,
    token_volume,
)
from warmpool.render.warmup_args import (
    HEALTH_PORT,
    HEALTH_PORT_NAME,
    WARMUP_COMMAND,
    warmup_args,
    warmup_env,
    warmup_probes,
)

SERVER_CONTAINER = "triton"
PREFETCH_CONTAINER = "prefetch"
WARMUP_CONTAINER = "warmup"
CACHE_OWNER_CONTAINER = "cache-owner"


def server_deployment_name(pool_name: str) -> str:
    """Name of the pool's server Deployment: the pool's own (the watch cache tells it from the
    pool's other labelled Deployments by this)."""
    return pool_name


def warmup_service_account(pool: InferencePool) -> str:
    """Name of the pool's ServiceAccount (and RoleBinding): `<pool>-warmup`."""
    return f"{pool.metadata.name}-warmup"


def _tmp_mount() -> Obj:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}


def prefetch_container(
    pool: InferencePool,
    config: RenderConfig,
    *,
    source: ModelSource,
    dest: str | None,
) -> Obj:
    """`warmpool prefetch` as an init container (also the pre-pull DaemonSet's)."""
    mounts: list[Obj] = [{"name": CACHE_VOLUME, "mountPath": config.cache_mount_path}]
    ref_dir = None
    if dest is not None:
        mounts.append({"name": REPOSITORY_VOLUME, "mountPath": config.model_repository_path})
    else:
        ref_dir = REF_MOUNT_PATH
        mounts.append({"name": REF_VOLUME, "mountPath": REF_MOUNT_PATH})
    if source.mount_path is not None:
        mounts.append({"name": SOURCE_VOLUME, "mountPath": source.mount_path, "readOnly": True})
    if credentials_file_volume(pool) is not None:
        mounts.append(
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_MOUNT_PATH, "readOnly": True}
        )
    mounts.append(_tmp_mount())
    container: Obj = {
        "name": PREFETCH_CONTAINER,
        "image": config.agent_image,
        "imagePullPolicy": config.agent_image_pull_policy,
        "command": PREFETCH_COMMAND,
        "args": prefetch_args(pool, config, source_uri=source.uri, dest=dest, ref_dir=ref_dir),
        "env": prefetch_env(pool),
    }
    env_from = credentials_env_from(pool)
    if env_from:
        container["envFrom"] = env_from
    container |= {
        "resources": resources(config.prefetch_resources),
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    return container


def cache_owner_container(pool: InferencePool, config: RenderConfig) -> Obj | None:
    """`chown` of the node cache directory to the agents' user (RenderConfig.prepare_node_cache).

    The only container that runs as root: no other capability than CHOWN, no privilege
    escalation, and it only touches the cache root (the prefetcher creates everything below).
    """
    if not (config.prepare_node_cache and pool.spec.cache.kind == "node"):
        return None
    context = container_security_context()
    context |= {
        "capabilities": {"add": ["CHOWN"], "drop": ["ALL"]},
        "runAsNonRoot": False,
        "runAsUser": 0,
    }
    return {
        "name": CACHE_OWNER_CONTAINER,
        "image": config.agent_image,
        "imagePullPolicy": config.agent_image_pull_policy,
        "command": [
            "chown",
            f"{config.run_as_user}:{config.run_as_group}",
            config.cache_mount_path,
        ],
        "resources": resources(config.hold_resources),
        "securityContext": context,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": config.cache_mount_path}],
    }


def warmup_container(pool: InferencePool, config: RenderConfig) -> Obj:
    """`warmpool warmup` as a native sidecar: it outlives the init phase and keeps serving its
    health port; the only container with API credentials."""
    mounts: list[Obj] = [{"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": True}]
    if pool.spec.warmup.samples_config_map:
        mounts.append({"name": SAMPLES_VOLUME, "mountPath": SAMPLES_MOUNT_PATH, "readOnly": True})
    if pool.spec.warmup.llm.prompts_config_map:
        mounts.append({"name": PROMPTS_VOLUME, "mountPath": PROMPTS_MOUNT_PATH, "readOnly": True})
    mounts.append(_tmp_mount())
    return {
        "name": WARMUP_CONTAINER,
        "image": config.agent_image,
        "imagePullPolicy": config.agent_image_pull_policy,
        "restartPolicy": "Always",
        "command": WARMUP_COMMAND,
        "args": warmup_args(pool),
        "env": warmup_env(),
        "ports": [{"name": HEALTH_PORT_NAME, "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        **warmup_probes(),
        "resources": resources(config.warmup_resources),
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def server_args(pool: InferencePool, config: RenderConfig) -> list[str]:
    """tritonserver's arguments: warmpool's first, spec.server.args appended (and so winning)."""
    ports = pool.spec.server.ports
    args = [f"--model-repository={config.model_repository_path}"]
    args.append(f"--model-control-mode={config.model_control_mode}")
    if config.model_control_mode == "explicit":
        args.append(f"--load-model={pool.model_name}")
    args += [
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        f"--exit-timeout-secs={config.server_exit_timeout_seconds}",
        # Never report ready with a model that failed to load.
        "--strict-readiness=true",
        "--exit-on-error=true",
    ]
    return args + list(pool.spec.server.args)


def _server_env(pool: InferencePool) -> list[Obj]:
    user = [
        e.model_dump(by_alias=True, exclude_none=True, mode="json") for e in pool.spec.server.env
    ]
    names = {e["name"] for e in user}
    env: list[Obj] = []
    if "HOME" not in names:
        # The root filesystem is read-only; backends (PyTorch, vLLM) write caches under $HOME.
        env.append({"name": "HOME", "value": "/tmp"})
    if pool.spec.server.gpu.count == 0 and "NVIDIA_VISIBLE_DEVICES" not in names:
        # The CUDA images default to every GPU of the node; a CPU replica must not take any.
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    return env + user


def _server_resources(pool: InferencePool) -> Obj:
    spec = pool.spec.server.resources
    gpus = gpu_resources(pool)
    requests = {k: str(v) for k, v in spec.requests.items()} | gpus
    limits = {k: str(v) for k, v in spec.limits.items()} | gpus
    return resources({"requests": requests, "limits": limits})


def _probe(path: str, *, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def server_container(pool: InferencePool, config: RenderConfig) -> Obj:
    """Triton serving the model repository the prefetcher linked; holds the GPUs."""
    server = pool.spec.server
    period = config.startup_probe_period_seconds
    return {
        "name": SERVER_CONTAINER,
        "image": server.image,
        "imagePullPolicy": server.image_pull_policy,
        "command": ["tritonserver"],
        "args": server_args(pool, config),
        "env": _server_env(pool),
        "ports": [
            {"name": "http", "containerPort": server.ports.http, "protocol": "TCP"},
            {"name": "grpc", "containerPort": server.ports.grpc, "protocol": "TCP"},
            {"name": "metrics", "containerPort": server.ports.metrics, "protocol": "TCP"},
        ],
        # Triton opens its HTTP port only after the model has loaded: the startup probe allows
        # the whole warm-up timeout for that, then liveness takes over.
        "startupProbe": _probe(
            "/v2/health/live",
            period=period,
            failures=max(3, math.ceil(pool.spec.warmup.timeout_seconds / period)),
        ),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        # Probed every second: the kubelet marks the container ready only at a probe, and the
        # pod joins the Service no sooner (on a real kubelet, 10 s startup and 5 s readiness
        # periods held warm pods out 4.8-8.8 s: benchmarks/results/coldstart.md).
        "readinessProbe": _probe("/v2/health/ready", period=1, failures=5),
        "lifecycle": {"preStop": {"sleep": {"seconds": drain_seconds(pool, config)}}},
        "resources": _server_resources(pool),
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {
                "name": REPOSITORY_VOLUME,
                "mountPath": config.model_repository_path,
                "readOnly": True,
            },
            {"name": CACHE_VOLUME, "mountPath": config.cache_mount_path, "readOnly": True},
            _tmp_mount(),
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }


def affinity(pool: InferencePool) -> Obj:
    """Prefer nodes holding a verified pre-pulled copy; spread replicas across nodes."""
    out: Obj = {}
    if pool.spec.cache.prepull:
        out["nodeAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    # A cached node saves the whole download: it outweighs spreading.
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {
                                "key": prepull_node_label_key(
                                    pool.metadata.namespace, pool.metadata.name
                                ),
                                "operator": "In",
                                "values": [model_fingerprint(pool.spec.model)],
                            }
                        ]
                    },
                }
            ]
        }
    out["podAntiAffinity"] = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 10,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": server_selector(pool.metadata.name)},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
    return out


def pod_labels(pool: InferencePool) -> dict[str, str]:
    """Labels of a replica's pod: recommended, the pool label, the backend when known."""
    extra = {BACKEND_LABEL: pool.spec.server.backend} if pool.spec.server.backend else {}
    return object_labels(pool.metadata.name, INFERENCE_SERVER, **extra)


def pod_spec(pool: InferencePool, config: RenderConfig) -> Obj:
    """The replica pod's spec."""
    source = model_source(pool, config)
    dest = f"{config.model_repository_path.rstrip('/')}/{pool.model_name}"
    owner = cache_owner_container(pool, config)
    init_containers = [owner] if owner is not None else []
    init_containers.append(prefetch_container(pool, config, source=source, dest=dest))
    warm = pool.spec.warmup.enabled
    if warm:
        init_containers.append(warmup_container(pool, config))
    volumes = [cache_volume(pool), {"name": REPOSITORY_VOLUME, "emptyDir": {}}]
    if source.volume is not None:
        volumes.append(source.volume)
    credentials = credentials_file_volume(pool)
    if credentials is not None:
        volumes.append(credentials)
    volumes += scratch_volumes(config)
    if warm:
        volumes.append(token_volume())
        if pool.spec.warmup.samples_config_map:
            volumes.append(samples_volume(pool.spec.warmup.samples_config_map))
        if pool.spec.warmup.llm.prompts_config_map:
            volumes.append(prompts_volume(pool.spec.warmup.llm.prompts_config_map))

    spec: Obj = {
        "serviceAccountName": warmup_service_account(pool),
        # Only the warm-up sidecar talks to the API, through its own projected token.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(config),
    }
    if pool.spec.server.priority_class_name:
        spec["priorityClassName"] = pool.spec.server.priority_class_name
    pull_secrets = image_pull_secrets(pool)
    if pull_secrets:
        spec["imagePullSecrets"] = pull_secrets
    spec |= placement(pool)
    spec["affinity"] = affinity(pool)
    # The drain sleep, then Triton's own exit timeout for in-flight requests.
    spec["terminationGracePeriodSeconds"] = termination_grace_seconds(pool, config)
    if warm:
        spec["readinessGates"] = [{"conditionType": WARM_CONDITION}]
    spec |= {
        "initContainers": init_containers,
        "containers": [server_container(pool, config)],
        "volumes": volumes,
    }
    return spec


def build_deployment(
    pool: InferencePool,
    config: RenderConfig,
    *,
    replicas: int,
    replace_revision: str | None = None,
) -> Obj:
    """Deployment `<pool>` with `replicas` replicas (the operator decides how many).

    `replace_revision`: the revision strategy Auto fell back to replacing in place for; the
    strategy is Replace only while the template still has that revision, so the next revision
    surges again."""
    name = server_deployment_name(pool.metadata.name)
    extra = {BACKEND_LABEL: pool.spec.server.backend} if pool.spec.server.backend else {}
    meta = object_meta(pool, name, INFERENCE_SERVER, labels=extra)
    meta["annotations"] = {MODEL_FINGERPRINT_ANNOTATION: model_fingerprint(pool.spec.model)}
    if pool.spec.cache.prepull:
        meta["annotations"][MODEL_SPEC_ANNOTATION] = model_spec_annotation(pool.spec.model)
    template: Obj = {
        "metadata": {
            "labels": pod_labels(pool),
            "annotations": {
                "kubectl.kubernetes.io/default-container": SERVER_CONTAINER,
                **cold_start_hints(pool),
            },
        },
        "spec": pod_spec(pool, config),
    }
    revision = template_revision(template)
    template["metadata"]["annotations"][REVISION_ANNOTATION] = revision
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": server_selector(name)},
            "strategy": deployment_strategy(pool, fell_back=revision == replace_revision),
            "revisionHistoryLimit": config.revision_history_limit,
            "progressDeadlineSeconds": progress_deadline_seconds(pool, config),
            "template": template,
        },
    }
