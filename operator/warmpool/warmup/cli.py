"""``warmpool warmup``: the warm-up readiness-gate sidecar.

Every flag falls back to an environment variable (the operator's renderer sets those); a flag
given on the command line wins. Exit codes: 0 = warm (only with ``--once``; otherwise the
program keeps running), 1 = warm-up failed (condition False written), 2 = the condition could
not be written, 64 = bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from warmpool.warmup import health
from warmpool.warmup.condition import ConditionSink, LogSink, PodConditionWriter
from warmpool.warmup.inputs import WarmupRequest, generate_request, load_samples, parse_input_specs
from warmpool.warmup.llm import (
    DEFAULT_PROMPTS,
    StreamRequest,
    load_prompts,
    parse_prompts,
    parse_sampling,
)
from warmpool.warmup.runner import GateState, run
from warmpool.warmup.settings import WarmupSettings
from warmpool.warmup.triton import connect

log = logging.getLogger("warmpool.warmup")

EXIT_USAGE = 64

# (flag, environment variable, settings field, help)
FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--protocol", "WARMUP_PROTOCOL", "protocol", "http or grpc (default http)"),
    ("--url", "WARMUP_URL", "url", "server host:port, no scheme (default localhost:8000)"),
    ("--model", "WARMUP_MODEL", "model", "model name (required)"),
    ("--model-version", "WARMUP_MODEL_VERSION", "model_version", "model version (default: any)"),
    ("--inputs", "WARMUP_INPUTS", "inputs", "JSON list [{name, datatype, shape}]"),
    ("--samples-dir", "WARMUP_SAMPLES_DIR", "samples_dir", "directory of *.json requests"),
    ("--mode", "WARMUP_MODE", "mode", "auto, unary or stream (default auto: from the config)"),
    ("--prompts", "WARMUP_PROMPTS", "prompts", "streaming: JSON list of prompts"),
    ("--prompts-dir", "WARMUP_PROMPTS_DIR", "prompts_dir", "streaming: directory of prompts"),
    ("--max-tokens", "WARMUP_MAX_TOKENS", "max_tokens", "streaming: tokens per request (16)"),
    ("--sampling", "WARMUP_SAMPLING", "sampling", "streaming: JSON sampling parameters"),
    ("--concurrency", "WARMUP_CONCURRENCY", "concurrency", "requests in flight (default 1)"),
    ("--min-requests", "WARMUP_MIN_REQUESTS", "min_requests", "never steady before (10)"),
    ("--max-requests", "WARMUP_MAX_REQUESTS", "max_requests", "NotSteady after (500)"),
    ("--window", "WARMUP_WINDOW", "window", "k, requests per window median (5)"),
    ("--tolerance", "WARMUP_TOLERANCE", "tolerance", "relative tolerance (0.1)"),
    ("--history", "WARMUP_HISTORY", "history", "earlier windows compared for drift (4)"),
    ("--timeout", "WARMUP_TIMEOUT", "timeout", "seconds for readiness + warm-up (600)"),
    ("--pod-name", "POD_NAME", "pod_name", "pod to write the condition on (downward API)"),
    ("--pod-namespace", "POD_NAMESPACE", "pod_namespace", "its namespace (downward API)"),
    ("--kubeconfig", "WARMUP_KUBECONFIG", "kubeconfig", "kubeconfig (tests); else in-cluster"),
    ("--condition-type", "WARMUP_CONDITION_TYPE", "condition_type", "(warmpool.dev/warm)"),
    ("--health-port", "WARMUP_HEALTH_PORT", "health_port", "health endpoints port, 0 = off"),
    ("--health-address", "WARMUP_HEALTH_ADDRESS", "health_address", "(0.0.0.0)"),
    ("--watch-interval", "WARMUP_WATCH_INTERVAL", "watch_interval", "seconds between checks"),
    ("--watch-failures", "WARMUP_WATCH_FAILURES", "watch_failures", "failed checks to close"),
)
ONCE_ENV = "WARMUP_ONCE"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults are resolved from the environment in :func:`settings`."""
    parser = argparse.ArgumentParser(
        prog="warmpool warmup",
        description="Drive warm-up inference until latency is steady, then open the pod's "
        "readiness gate. Every flag falls back to the environment variable in brackets.",
    )
    for flag, env, _, text in FLAGS:
        parser.add_argument(flag, default=None, help=f"{text} [{env}]")
    parser.add_argument(
        "--once",
        action="store_true",
        default=None,
        help=f"exit 0 once warm instead of watching (init-container mode) [{ONCE_ENV}]",
    )
    parser.add_argument("--log-level", default=os.environ.get("WARMUP_LOG_LEVEL", "INFO"))
    return parser


def settings(args: argparse.Namespace, environ: Mapping[str, str]) -> WarmupSettings:
    """Flags first, then environment variables, then the settings' defaults."""
    values: dict[str, object] = {}
    for flag, env, field, _ in FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is None:
            value = environ.get(env) or None
        if value is not None:
            values[field] = value
    once = args.once if args.once is not None else environ.get(ONCE_ENV, "").lower()
    values["once"] = once in {True, "1", "true", "yes"}
    return WarmupSettings.model_validate(values)


def warmup_requests(config: WarmupSettings) -> list[WarmupRequest]:
    """The warm-up requests: generated from ``--inputs`` or read from ``--samples-dir``; empty
    when neither is given (the runner then generates them from the model's metadata)."""
    if config.inputs is not None:
        return [generate_request(parse_input_specs(config.inputs))]
    if config.samples_dir is not None:
        return load_samples(Path(config.samples_dir))
    return []


def stream_requests(config: WarmupSettings) -> list[StreamRequest]:
    """The streaming warm-up requests (used when the model is decoupled): every prompt with
    the sampling parameters and ``--max-tokens``."""
    if config.prompts is not None:
        prompts = parse_prompts(config.prompts)
    elif config.prompts_dir is not None:
        prompts = load_prompts(Path(config.prompts_dir))
    else:
        prompts = list(DEFAULT_PROMPTS)
    sampling = parse_sampling(config.sampling) if config.sampling else {}
    return [StreamRequest(prompt, config.max_tokens, sampling) for prompt in prompts]


async def _main(
    config: WarmupSettings, requests: list[WarmupRequest], prompts: list[StreamRequest]
) -> int:
    state = GateState()
    site = None
    if config.health_port:
        site = await health.start(state, config.health_address, config.health_port)
    sink: ConditionSink = LogSink(config.condition_type)
    if config.pod_name:
        sink = await PodConditionWriter.create(
            config.pod_name, config.pod_namespace, config.condition_type, config.kubeconfig
        )
    driver = connect(
        config.protocol, config.url, config.model, config.model_version, config.timeout
    )
    try:
        return await run(config, driver, sink, requests, state, prompts)
    finally:
        await driver.close()
        await sink.close()
        if site is not None:
            await site.cleanup()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of ``warmpool warmup``; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = settings(args, os.environ if environ is None else environ)
        requests = warmup_requests(config)
        prompts = stream_requests(config)
    except (ValidationError, ValueError) as error:
        print(f"warmpool warmup: {error}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_main(config, requests, prompts))
