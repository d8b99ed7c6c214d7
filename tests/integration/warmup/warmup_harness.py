"""Run the REAL warm-up program (``python -m warmpool.warmup``) as a process and read its gate.

Without a pod (``--pod-name`` unset) the program logs every condition it would write as one
line ``condition <type>=<True|False> reason=<Reason> <message>``; :class:`WarmupProcess` parses
those lines. The pod-condition writer itself is exercised against a real apiserver in
``tests/e2e/test_warmup_gate.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warmpool.warmup.report import parse_message

MODELS = Path(__file__).resolve().parents[2] / "models"
CURVE_INPUTS = json.dumps([{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024]}])
DRIFT_INPUTS = json.dumps([{"name": "INPUT0", "datatype": "FP32", "shape": [4, 512]}])
SMALL_INPUTS = json.dumps([{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}])

_LINE = re.compile(
    r"condition (?P<type>\S+)=(?P<status>True|False) reason=(?P<reason>\S+) ?(?P<message>.*)$"
)


def triton_args(model: str) -> list[str]:
    """Load only ``model`` (strict readiness would otherwise tie them together)."""
    return ["--model-control-mode=explicit", f"--load-model={model}", "--exit-on-error=false"]


@dataclass(frozen=True)
class Gate:
    """One condition the program wrote (logged)."""

    status: str
    reason: str
    message: str

    @property
    def pairs(self) -> dict[str, str]:
        return parse_message(self.message)[0]

    @property
    def tail(self) -> str:
        return parse_message(self.message)[1]


def gates(log: str) -> list[Gate]:
    """Every condition in a program log, in order."""
    found = []
    for line in log.splitlines():
        match = _LINE.search(line)
        if match:
            found.append(Gate(match["status"], match["reason"], match["message"]))
    return found


class WarmupProcess:
    """The warm-up program as a child process (a context manager that always ends it)."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        self.args = [sys.executable, "-m", "warmpool.warmup", *args]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WarmupProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def gates(self) -> list[Gate]:
        return gates(self.log())

    def wait_for_gate(self, count: int, timeout: float) -> list[Gate]:
        """Wait (bounded) until the program has written ``count`` conditions."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.gates()
            if len(found) >= count:
                return found
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"program exited with {self.process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no condition #{count} after {timeout}s:\n{self.log()}")
            time.sleep(0.1)


def run_once(args: Sequence[str], log_path: Path, timeout: float) -> tuple[int, list[Gate], str]:
    """Run the program with ``--once`` to its end; exit code, conditions and log."""
    with WarmupProcess(["--once", "--health-port", "0", *args], log_path) as program:
        code = program.wait(timeout)
        return code, program.gates(), program.log()


def inference_count(http_url: str, model: str) -> int:
    """How many successful inferences Triton itself counted for ``model`` (statistics API)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}/stats", timeout=5) as reply:
        stats = json.load(reply)
    return int(stats["model_stats"][0]["inference_stats"]["success"]["count"])
