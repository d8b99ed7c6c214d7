"""Benchmark: adaptive warm-up (``warmpool warmup``) vs Triton's fixed ``model_warmup`` vs none.

    .venv/bin/python benchmarks/warmup.py [--runs 3] [--user-requests 5] [--fixed-count 1]

On the REAL Triton (CPU, Python backend; ``hack/install-triton.sh``) with the
``tests/models/warmup_curve`` model, whose first requests are genuinely slow (lazy weights,
per-shape kernel compilation, autotuning: see its model.py). For each strategy and run a fresh
Triton starts, and we measure:

* time to Ready: from starting ``tritonserver`` to the moment a pod would turn Ready:
  - none: the model is ready (``/v2/models/<m>/ready``, polled every 10 ms);
  - fixed: the same, with a ``model_warmup`` block (``--fixed-count`` requests of the same
    shape, random data) appended to config.pbtxt: Triton runs it while loading;
  - adaptive: the warm-up program (started together with Triton, as a native sidecar is)
    exits with the gate open (``--once``);
* latency of the first ``--user-requests`` user requests after Ready (sequential, HTTP, the
  same shape the warm-up used, other data).

Medians over ``--runs``. Writes ``benchmarks/results/warmup.md``; the last line printed is
``first_request_ratio_vs_none=<x> first_request_ratio_vs_fixed=<y> time_to_ready_s=<t>``:
adaptive's first-user-request latency over none's and fixed's, and adaptive's time to Ready.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.triton import TritonServer, require_triton  # noqa: E402

MODEL = "warmup_curve"
SHAPE = [4, 1024]
INPUTS = f'[{{"name": "INPUT0", "datatype": "FP32", "shape": {SHAPE}}}]'
RESULTS = ROOT / "benchmarks" / "results" / "warmup.md"
STRATEGIES = ("none", "fixed", "adaptive")

FIXED_WARMUP_BLOCK = """
# Appended by benchmarks/warmup.py: Triton's fixed warm-up, run while the model loads.
model_warmup [
  {{
    name: "fixed"
    batch_size: 1
    inputs {{
      key: "INPUT0"
      value: {{ data_type: TYPE_FP32, dims: [ {dims} ], random_data: true }}
    }}
    count: {count}
  }}
]
"""


@dataclass
class Run:
    """One fresh server, one strategy."""

    strategy: str
    time_to_ready_s: float
    user_ms: list[float] = field(default_factory=list)
    warmup_requests: int | None = None


def model_repository(workdir: Path, strategy: str, fixed_count: int) -> Path:
    """A repository holding only the benchmark model, with the fixed warm-up if asked."""
    repo = workdir / f"models-{strategy}"
    if not repo.exists():
        shutil.copytree(ROOT / "tests" / "models" / MODEL, repo / MODEL)
        if strategy == "fixed":
            block = FIXED_WARMUP_BLOCK.format(dims=", ".join(map(str, SHAPE)), count=fixed_count)
            with open(repo / MODEL / "config.pbtxt", "a") as config:
                config.write(block)
    return repo


def user_requests(url: str, count: int) -> list[float]:
    """Latencies (ms) of ``count`` sequential user requests (data unlike the warm-up's)."""
    client = httpclient.InferenceServerClient(url)
    try:
        data = np.linspace(-1.0, 1.0, int(np.prod(SHAPE)), dtype=np.float32).reshape(SHAPE)
        tensor = httpclient.InferInput("INPUT0", SHAPE, "FP32")
        tensor.set_data_from_numpy(data, binary_data=True)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            client.infer(MODEL, [tensor])
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies
    finally:
        client.close()


def wait_model_ready(triton: TritonServer, deadline: float) -> None:
    while not triton.model_ready(MODEL):
        if time.monotonic() > deadline:
            raise RuntimeError(f"model not ready:\n{triton.log_tail()}")
        time.sleep(0.01)


def run_once(strategy: str, repo: Path, users: int, address: str) -> Run:
    triton = TritonServer(repo, http_address=address, wait_ready=False, startup_timeout=300)
    program: subprocess.Popen[bytes] | None = None
    started = time.monotonic()
    if strategy == "adaptive":
        # The sidecar starts with the pod, before the server answers; it waits by itself.
        program = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "warmpool.warmup",
                "--once",
                "--health-port",
                "0",
                "--url",
                triton.http_url,
                "--model",
                MODEL,
                "--inputs",
                INPUTS,
                "--timeout",
                "300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    try:
        triton.start()
        if program is None:
            wait_model_ready(triton, started + 300)
            ready_s = time.monotonic() - started
            requests = None
        else:
            _, err = program.communicate(timeout=300)
            ready_s = time.monotonic() - started
            if program.returncode != 0:
                raise RuntimeError(f"warm-up failed ({program.returncode}):\n{err.decode()}")
            requests = _requests_from_log(err.decode())
        return Run(strategy, ready_s, user_requests(triton.http_url, users), requests)
    finally:
        if program is not None and program.poll() is None:
            program.kill()
            program.wait()
        triton.stop()
        triton.cleanup_log()


def _requests_from_log(log: str) -> int | None:
    for token in log.split():
        if token.startswith("requests="):
            return int(token.split("=", 1)[1])
    return None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores, load average {load} (shared machine)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--user-requests", type=int, default=5)
    parser.add_argument("--fixed-count", type=int, default=1)
    parser.add_argument("--address", default="127.0.3.1")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    require_triton_or_exit()

    runs: dict[str, list[Run]] = {s: [] for s in STRATEGIES}
    with tempfile.TemporaryDirectory(prefix="warmup-bench-") as tmp:
        workdir = Path(tmp)
        for index in range(args.runs):
            # Interleaved, so that all strategies see the same machine load over time.
            for strategy in STRATEGIES:
                repo = model_repository(workdir, strategy, args.fixed_count)
                run = run_once(strategy, repo, args.user_requests, args.address)
                runs[strategy].append(run)
                print(
                    f"run {index + 1} {strategy:8s} ready {run.time_to_ready_s:6.2f}s  users ms "
                    + " ".join(f"{x:.1f}" for x in run.user_ms),
                    flush=True,
                )

    def med(values: list[float]) -> float:
        return statistics.median(values)

    summary = {
        s: {
            "ready": med([r.time_to_ready_s for r in rs]),
            "first": med([r.user_ms[0] for r in rs]),
            "mean": med([statistics.fmean(r.user_ms) for r in rs]),
            "max": med([max(r.user_ms) for r in rs]),
            "tail": med([statistics.fmean(r.user_ms[1:]) for r in rs if len(r.user_ms) > 1] or [0]),
        }
        for s, rs in runs.items()
    }
    adaptive = summary["adaptive"]
    ratio_none = adaptive["first"] / summary["none"]["first"]
    ratio_fixed = adaptive["first"] / summary["fixed"]["first"]
    warm_requests = [r.warmup_requests for r in runs["adaptive"] if r.warmup_requests is not None]
    final = (
        f"first_request_ratio_vs_none={ratio_none:.3f} "
        f"first_request_ratio_vs_fixed={ratio_fixed:.3f} "
        f"time_to_ready_s={adaptive['ready']:.2f}"
    )
    median_warm = statistics.median(warm_requests) if warm_requests else "?"
    about = (
        f"Machine: {machine()}. Triton from nvidia-pytriton (CPU, Python backend), model "
        f"`tests/models/{MODEL}` (lazy weights + per-shape kernel compilation + autotuning of "
        f"6 tilings), input FP32 {SHAPE}. {args.runs} fresh servers per strategy, interleaved; "
        f"medians over runs. Fixed = Triton `model_warmup` with count {args.fixed_count} (same "
        "shape, random data), run by Triton while the model loads. Adaptive = `warmpool warmup` "
        "with its defaults (window 5, tolerance 0.1, history 4, min 10 requests), started with "
        f"the server like a native sidecar; it sent {median_warm} warm-up requests (median)."
    )
    how = (
        "Time to Ready: server start until a pod would turn Ready (model ready for none and "
        "fixed; gate open for adaptive). User requests: the first "
        f"{args.user_requests} sequential requests after Ready (other data than the warm-up's)."
    )
    note = (
        "A fixed count covers this model only if it is at least its curve's length (7 "
        "requests here); the adaptive gate needs no such knowledge and stops when latency is "
        "flat, at the price of a later Ready."
    )
    lines = [
        "# Warm-up benchmark: adaptive vs fixed `model_warmup` vs none",
        "",
        f"Generated by `benchmarks/warmup.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        *textwrap.wrap(about, 100),
        "",
        *textwrap.wrap(how, 100),
        "",
        "| strategy | time to Ready (s) | 1st user request (ms) | mean of the rest (ms) | "
        "worst (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for strategy in STRATEGIES:
        s = summary[strategy]
        lines.append(
            f"| {strategy} | {s['ready']:.2f} | {s['first']:.1f} | {s['tail']:.1f} | "
            f"{s['max']:.1f} |"
        )
    lines += ["", *textwrap.wrap(note, 100), "", "Per run (user request latencies, ms):", ""]
    for strategy in STRATEGIES:
        for index, run in enumerate(runs[strategy], start=1):
            latencies = ", ".join(f"{x:.1f}" for x in run.user_ms)
            lines.append(
                f"- {strategy} #{index}: ready {run.time_to_ready_s:.2f} s; users {latencies}"
            )
    lines += ["", final, ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines[:-2]))
    print(final)
    return 0


def require_triton_or_exit() -> None:
    try:
        require_triton()
    except BaseException as error:  # pytest's skip outside pytest: say why and stop
        raise SystemExit(f"Triton is not installed (hack/install-triton.sh): {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
