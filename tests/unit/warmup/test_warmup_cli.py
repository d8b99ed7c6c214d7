"""Flags, their environment fallbacks and validation (warmpool.warmup.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warmpool.warmup.cli import (
    FLAGS,
    build_parser,
    main,
    settings,
    stream_requests,
    warmup_requests,
)

INPUTS = json.dumps([{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}])


def parse(argv: list[str], environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return settings(build_parser().parse_args(argv), environ)


def test_defaults() -> None:
    config = parse(["--model", "m", "--inputs", INPUTS], {})
    assert config.protocol == "http"
    assert config.url == "localhost:8000"
    assert config.condition_type == "warmpool.dev/warm"
    assert (config.window, config.tolerance, config.min_requests) == (5, 0.1, 10)
    assert config.pod_name == "" and config.once is False


def test_every_flag_has_an_environment_fallback() -> None:
    environ = {
        "WARMUP_PROTOCOL": "grpc",
        "WARMUP_URL": "127.0.1.5:8001",
        "WARMUP_MODEL": "llama",
        "WARMUP_MODEL_VERSION": "3",
        "WARMUP_INPUTS": INPUTS,
        "WARMUP_CONCURRENCY": "4",
        "WARMUP_MIN_REQUESTS": "20",
        "WARMUP_MAX_REQUESTS": "300",
        "WARMUP_WINDOW": "7",
        "WARMUP_TOLERANCE": "0.2",
        "WARMUP_HISTORY": "6",
        "WARMUP_TIMEOUT": "90",
        "POD_NAME": "llama-0",
        "POD_NAMESPACE": "ml",
        "WARMUP_KUBECONFIG": "/tmp/kubeconfig",
        "WARMUP_CONDITION_TYPE": "example.com/warm",
        "WARMUP_HEALTH_PORT": "9000",
        "WARMUP_HEALTH_ADDRESS": "127.0.0.1",
        "WARMUP_WATCH_INTERVAL": "2.5",
        "WARMUP_WATCH_FAILURES": "3",
        "WARMUP_ONCE": "true",
        "WARMUP_MODE": "stream",
        "WARMUP_PROMPTS": '["hello"]',
        "WARMUP_MAX_TOKENS": "8",
        "WARMUP_SAMPLING": '{"temperature": "0"}',
    }
    # WARMUP_SAMPLES_DIR excludes WARMUP_INPUTS (test_requests_come_from_samples_dir uses it),
    # WARMUP_PROMPTS_DIR excludes WARMUP_PROMPTS (test_prompts_come_from_a_config_map_dir).
    exclusive = {"WARMUP_SAMPLES_DIR", "WARMUP_PROMPTS_DIR"}
    assert {env for _, env, _, _ in FLAGS} - exclusive <= set(environ)
    config = parse([], environ)
    assert config.protocol == "grpc" and config.url == "127.0.1.5:8001"
    assert config.model == "llama" and config.model_version == "3"
    assert (config.concurrency, config.min_requests, config.max_requests) == (4, 20, 300)
    assert (config.window, config.tolerance, config.timeout) == (7, 0.2, 90.0)
    assert config.history == 6 and config.rule().history == 6
    assert (config.pod_name, config.pod_namespace) == ("llama-0", "ml")
    assert config.kubeconfig == "/tmp/kubeconfig"
    assert config.condition_type == "example.com/warm"
    assert (config.health_port, config.health_address) == (9000, "127.0.0.1")
    assert (config.watch_interval, config.watch_failures) == (2.5, 3)
    assert config.once is True
    assert (config.mode, config.max_tokens) == ("stream", 8)
    assert [r.prompt for r in stream_requests(config)] == ["hello"]
    assert stream_requests(config)[0].sampling_parameters() == {"temperature": 0, "max_tokens": 8}


def test_prompts_come_from_a_config_map_dir(tmp_path: Path) -> None:
    (tmp_path / "a-question").write_text("Why is the sky blue?\n")
    (tmp_path / "b.json").write_text('["one", "two"]')
    (tmp_path / "..data").mkdir()  # a mounted ConfigMap's bookkeeping is skipped
    config = parse(["--model", "m", "--prompts-dir", str(tmp_path)], {})
    assert [r.prompt for r in stream_requests(config)] == ["Why is the sky blue?", "one", "two"]
    assert stream_requests(config)[0].max_tokens == 16


def test_streaming_flags_are_checked() -> None:
    with pytest.raises(ValueError, match="exclusive"):
        parse(["--model", "m", "--prompts", '["a"]', "--prompts-dir", "/x"], {})
    with pytest.raises(ValueError, match="mode"):
        parse(["--model", "m", "--mode", "chat"], {})
    config = parse(["--model", "m", "--sampling", '{"max_tokens": 3}'], {})
    with pytest.raises(ValueError, match="--max-tokens"):
        stream_requests(config)
    config = parse(["--model", "m", "--prompts", '["a", ""]'], {})
    with pytest.raises(ValueError, match="non-empty"):
        stream_requests(config)


def test_flags_win_over_the_environment() -> None:
    config = parse(
        ["--model", "a", "--inputs", INPUTS, "--window", "3"],
        {"WARMUP_MODEL": "b", "WARMUP_WINDOW": "9"},
    )
    assert config.model == "a" and config.window == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--inputs", INPUTS],  # no model
        ["--model", "m", "--inputs", INPUTS, "--samples-dir", "/x"],  # both
        ["--model", "m", "--inputs", INPUTS, "--protocol", "ftp"],
        ["--model", "m", "--inputs", INPUTS, "--pod-name", "p"],  # namespace missing
        ["--model", "m", "--inputs", INPUTS, "--window", "10", "--max-requests", "15"],
        ["--model", "m", "--inputs", "[{]"],
    ],
)
def test_bad_usage_exits_64_without_contacting_anything(argv: list[str]) -> None:
    assert main(argv, environ={}) == 64


def test_without_inputs_or_samples_requests_come_from_metadata_later() -> None:
    # Neither --inputs nor --samples-dir: no request is built up front; the runner generates
    # them from the model's metadata once the model is ready.
    assert warmup_requests(parse(["--model", "m"], {})) == []


def test_requests_come_from_samples_dir(tmp_path: Path) -> None:
    body = {"inputs": [{"name": "A", "datatype": "INT32", "shape": [2], "data": [1, 2]}]}
    (tmp_path / "one.json").write_text(json.dumps(body))
    config = parse(["--model", "m"], {"WARMUP_SAMPLES_DIR": str(tmp_path)})
    requests = warmup_requests(config)
    assert len(requests) == 1 and requests[0][0].array.tolist() == [1, 2]
