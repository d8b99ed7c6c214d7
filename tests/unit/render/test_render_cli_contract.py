"""The rendered command lines parse with the real programs' own parsers.

The builders render flags for `warmpool prefetch` and `warmpool warmup`; these tests run those
programs' argument handling (no download, no server) on the rendered arguments, so a renamed or
removed flag fails here rather than in a pod.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render_cases import (
    CONFIG,
    container,
    example_names,
    load_pool,
    make_pool,
    pod_spec,
    server_deployment,
)

from warmpool.prefetch import cli as prefetch_cli
from warmpool.render import build_children
from warmpool.warmup import cli as warmup_cli

POD_ENV = {"POD_NAME": "llama-5d9c-abcde", "POD_NAMESPACE": "ml"}


@pytest.mark.parametrize("example", example_names())
def test_prefetch_args_parse(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in prefetch_cli.ENV.values():
        monkeypatch.delenv(name, raising=False)
    pool = load_pool(example)
    deployment = server_deployment(build_children(pool, CONFIG, replicas=1), pool)
    prefetch = container(pod_spec(deployment), "prefetch")
    assert prefetch["command"] == ["warmpool", "prefetch"]
    config, termination = prefetch_cli.config_from(prefetch["args"])
    model = pool.spec.model
    assert config.revision == model.revision
    assert config.include == tuple(model.include)
    assert config.sha256 == model.sha256
    assert config.sha256_file == model.sha256_file
    assert config.cache_dir == Path(CONFIG.cache_mount_path)
    assert config.dest == Path(CONFIG.model_repository_path) / pool.model_name
    assert termination == Path(prefetch["terminationMessagePath"])


def test_prefetch_reads_s3_endpoint_region_and_size(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in prefetch_cli.ENV.values():
        monkeypatch.delenv(name, raising=False)
    pool = load_pool("llama-s3-prepull")
    deployment = server_deployment(build_children(pool, CONFIG, replicas=1), pool)
    config, _ = prefetch_cli.config_from(container(pod_spec(deployment), "prefetch")["args"])
    assert config.uri == "s3://models/llama-3-8b-instruct"
    assert config.s3_endpoint == "https://objects.example.internal"
    assert config.s3_region == "eu-central-1"
    assert config.size_limit == 500 * 1024**3


@pytest.mark.parametrize("example", example_names())
def test_warmup_args_parse(example: str) -> None:
    pool = load_pool(example)
    deployment = server_deployment(build_children(pool, CONFIG, replicas=1), pool)
    warmup = container(pod_spec(deployment), "warmup")
    assert warmup["command"] == ["warmpool", "warmup"]
    env_names = {e["name"] for e in warmup["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env_names
    args = warmup_cli.build_parser().parse_args(warmup["args"])
    settings = warmup_cli.settings(args, POD_ENV)
    spec = pool.spec.warmup
    assert settings.model == pool.model_name
    assert settings.protocol == spec.protocol
    port = pool.spec.server.ports.http if spec.protocol == "http" else pool.spec.server.ports.grpc
    assert settings.url == f"127.0.0.1:{port}"
    assert settings.rule().window == spec.window
    assert settings.min_requests == spec.min_requests
    assert settings.max_requests == spec.max_requests
    assert settings.tolerance == spec.tolerance
    assert settings.timeout == spec.timeout_seconds
    assert settings.condition_type == "warmpool.dev/warm"
    assert settings.pod_name == POD_ENV["POD_NAME"]
    # The probes point at the port the program serves its health endpoints on.
    ports = {p["name"]: p["containerPort"] for p in warmup["ports"]}
    assert ports[warmup["startupProbe"]["httpGet"]["port"]] == settings.health_port
    inputs = warmup_cli.warmup_requests(settings)
    if spec.inputs:
        assert [t.name for t in inputs[0]] == [i.name for i in spec.inputs]
    else:  # from the model's metadata once it is ready
        assert inputs == []
    # The streaming warm-up (a decoupled model) gets the spec's prompts and sampling.
    assert settings.mode == spec.mode
    prompts = warmup_cli.stream_requests(settings)
    if spec.llm.prompts:
        assert [p.prompt for p in prompts] == spec.llm.prompts
    assert {p.max_tokens for p in prompts} == {spec.llm.max_tokens}
    sampling = {k: json.loads(v) for k, v in spec.llm.sampling_parameters.items()}
    assert all(p.sampling == sampling for p in prompts)


def test_warmup_with_samples_reads_the_mounted_config_map() -> None:
    pool = make_pool(
        {
            "model": {"uri": "s3://models/llama"},
            "warmup": {
                "samplesConfigMap": "llama-samples",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}],
            },
        }
    )
    deployment = server_deployment(build_children(pool, CONFIG, replicas=1), pool)
    pod = pod_spec(deployment)
    warmup = container(pod, "warmup")
    settings = warmup_cli.settings(warmup_cli.build_parser().parse_args(warmup["args"]), POD_ENV)
    assert settings.inputs is None
    mount = next(m for m in warmup["volumeMounts"] if m["name"] == "warmup-samples")
    assert settings.samples_dir == Path(mount["mountPath"])
    volume = next(v for v in pod["volumes"] if v["name"] == "warmup-samples")
    assert volume["configMap"]["name"] == "llama-samples"


def test_prepull_prefetch_args_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in prefetch_cli.ENV.values():
        monkeypatch.delenv(name, raising=False)
    pool = load_pool("llama-s3-prepull")
    children = build_children(pool, CONFIG, replicas=1)
    daemonset = next(o for o in children if o["kind"] == "DaemonSet")
    pod = pod_spec(daemonset)
    prefetch = container(pod, "prefetch")
    config, _ = prefetch_cli.config_from(prefetch["args"])
    # Only fills the cache; keeps its use reference in a volume of its own pod.
    assert config.dest is None
    mount = next(m for m in prefetch["volumeMounts"] if m["name"] == "model-ref")
    assert config.ref_dir == Path(mount["mountPath"])
    volume = next(v for v in pod["volumes"] if v["name"] == "model-ref")
    assert volume == {"name": "model-ref", "emptyDir": {}}
    assert config.cache_dir == Path(CONFIG.cache_mount_path)
