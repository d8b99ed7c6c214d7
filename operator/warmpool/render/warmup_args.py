"""The command line of `warmpool warmup` for a pool (pure).

The flags are exactly those of `warmpool.warmup.cli`. The pod's name and namespace reach the
program through its documented environment fallbacks POD_NAME / POD_NAMESPACE (downward API).
"""

from __future__ import annotations

import json

from warmpool.api.resource import WARM_CONDITION, InferencePool
from warmpool.render.common import Obj
from warmpool.render.volumes import PROMPTS_MOUNT_PATH, SAMPLES_MOUNT_PATH

WARMUP_COMMAND = ["warmpool", "warmup"]
#: Port of the warm-up program's health endpoints (/healthz, /readyz, /status).
HEALTH_PORT = 8089
HEALTH_PORT_NAME = "warmup-health"


def warmup_args(pool: InferencePool) -> list[str]:
    """Arguments after `warmpool warmup`: which server, which model, when latency is steady.

    Recorded samples (spec.warmup.samplesConfigMap) replace generated inputs when both are set.
    The streaming flags (prompts, answer length, sampling) are passed whatever the mode: with
    mode auto only the model's config decides whether they are used.
    """
    spec = pool.spec.warmup
    ports = pool.spec.server.ports
    port = ports.http if spec.protocol == "http" else ports.grpc
    args = [
        f"--protocol={spec.protocol}",
        f"--url=127.0.0.1:{port}",
        f"--model={pool.model_name}",
    ]
    if spec.samples_config_map:
        args.append(f"--samples-dir={SAMPLES_MOUNT_PATH}")
    elif spec.inputs:
        wire = [tensor.model_dump(by_alias=True, mode="json") for tensor in spec.inputs]
        args.append(f"--inputs={json.dumps(wire, separators=(',', ':'))}")
    if spec.mode != "auto":
        args.append(f"--mode={spec.mode}")
    llm = spec.llm
    if llm.prompts_config_map:
        args.append(f"--prompts-dir={PROMPTS_MOUNT_PATH}")
    elif llm.prompts:
        args.append(f"--prompts={json.dumps(llm.prompts, separators=(',', ':'))}")
    if "max_tokens" in llm.model_fields_set:
        args.append(f"--max-tokens={llm.max_tokens}")
    if llm.sampling_parameters:
        args.append(f"--sampling={json.dumps(llm.sampling_parameters, separators=(',', ':'))}")
    args += [
        f"--concurrency={spec.concurrency}",
        f"--min-requests={spec.min_requests}",
        f"--max-requests={spec.max_requests}",
        f"--window={spec.window}",
        f"--tolerance={spec.tolerance}",
        f"--timeout={spec.timeout_seconds}",
        f"--condition-type={WARM_CONDITION}",
        f"--health-port={HEALTH_PORT}",
    ]
    return args


def warmup_env() -> list[Obj]:
    """The pod the sidecar writes its condition on, from the downward API."""
    return [
        {
            "name": "POD_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
        {
            "name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
        },
    ]


def warmup_probes() -> Obj:
    """Startup and liveness probes on /healthz, which answers while the program runs.

    Never "warm" here: the kubelet starts the server container only after a native sidecar's
    startup probe passed, so waiting for warmth would deadlock. No readiness probe either: the
    readiness gate is what says warm.
    """
    healthz = {"path": "/healthz", "port": HEALTH_PORT_NAME}
    return {
        "startupProbe": {"httpGet": healthz, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"httpGet": healthz, "periodSeconds": 10, "failureThreshold": 3},
    }
