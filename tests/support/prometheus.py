"""Start a REAL Prometheus server for tests (Debian package, ``hack/install-prometheus.sh``).

Usage::

    from support.prometheus import PrometheusServer, require_prometheus, static_job

    def test_something(tmp_path):
        require_prometheus()          # skip locally / fail under CI=true when not installed
        job = static_job("triton", ["127.0.0.1:8002"], {"namespace": "ml", "pool": "llama"})
        with PrometheusServer([job], tmp_path) as prometheus:
            prometheus.url            # "http://127.0.0.1:<free port>"

* The server listens on a free loopback port, keeps its TSDB in ``workdir`` and scrapes every
  ``scrape_interval`` (1 s by default: tests wait for data, they never sleep a fixed time).
* ``__enter__`` waits (bounded by ``startup_timeout``) for ``/-/ready``; if the process exits
  first, :class:`PrometheusStartError` carries its log tail.
* ``stop()``/``__exit__`` sends SIGTERM to the process group, then SIGKILL after
  ``stop_timeout``: no process is left behind. ``stop()`` is idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml

from support.components import component_unavailable

T = TypeVar("T")

__all__ = [
    "PrometheusServer",
    "PrometheusStartError",
    "exposition_series",
    "free_port",
    "prometheus_binary",
    "promtool",
    "require_prometheus",
    "require_promtool",
    "static_job",
    "wait_for",
]


class PrometheusStartError(RuntimeError):
    """Prometheus exited or never became ready."""


def prometheus_binary() -> str | None:
    """Path of the ``prometheus`` binary, or None when it is not installed."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )


def require_prometheus() -> str:
    """The binary's path; skips (or fails under CI=true) when Prometheus is not installed."""
    binary = prometheus_binary()
    if binary is None:
        component_unavailable("prometheus", "no prometheus binary (hack/install-prometheus.sh)")
        raise AssertionError("unreachable")  # component_unavailable always raises
    return binary


def require_promtool() -> str:
    """`promtool` of the same Prometheus install (the Debian package ships both)."""
    binary = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None
    )
    if binary is None:
        component_unavailable("promtool", "no promtool binary (hack/install-prometheus.sh)")
        raise AssertionError("unreachable")
    return binary


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real promtool in `cwd` (rule files are named relative to it)."""
    return subprocess.run(
        [require_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def exposition_series(text: str) -> dict[str, float]:
    """{series in PromQL notation: value} of a /metrics exposition, as Prometheus stores it."""
    from prometheus_client.parser import text_string_to_metric_families

    series: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            series[f"{sample.name}{{{labels}}}"] = sample.value
    return series


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def static_job(
    name: str,
    targets: Sequence[str],
    labels: dict[str, str] | None = None,
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """A scrape job with static targets; `labels` are attached to every scraped series (the
    way the chart's relabelling attaches `namespace` and `pool` to a pod's series)."""
    config: dict[str, Any] = {"targets": list(targets)}
    if labels:
        config["labels"] = dict(labels)
    return {"job_name": name, "metrics_path": metrics_path, "static_configs": [config]}


def wait_for(
    probe: Callable[[], T | None], timeout: float, interval: float = 0.2, what: str = ""
) -> T:
    """Poll `probe` until it returns a value other than None/False; TimeoutError after
    `timeout` seconds (with `what` in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or probe!r}")
        time.sleep(interval)


class PrometheusServer:
    """A Prometheus process scraping the given jobs; a context manager."""

    def __init__(
        self,
        jobs: Sequence[dict[str, Any]],
        workdir: Path,
        *,
        scrape_interval: str = "1s",
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.jobs = list(jobs)
        self.workdir = Path(workdir)
        self.scrape_interval = scrape_interval
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": self.jobs,
        }

    def start(self) -> PrometheusServer:
        binary = require_prometheus()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address={self.host}:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends all of it
            )
        try:
            wait_for(self._ready, self.startup_timeout, what=f"prometheus ready at {self.url}")
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise PrometheusStartError(
                f"prometheus exited with {self.process.returncode}: {self.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises on HTTP errors)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        return list(body["data"]["result"])

    def wait_scraped(self, scrapes: int = 6, timeout: float = 60.0) -> None:
        """Wait until every configured target is up and was scraped `scrapes` times.

        Prometheus applies new targets after a discovery delay of about 5 s: data written
        by a test before the first scrape would be invisible to rate().
        """
        jobs = len(self.jobs)

        def scraped() -> bool:
            result = self.query("count_over_time(up[1m]) and up == 1")
            return len(result) >= jobs and all(float(r["value"][1]) >= scrapes for r in result)

        wait_for(scraped, timeout, what=f"{scrapes} scrapes of every target of {self.url}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=self.stop_timeout)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
