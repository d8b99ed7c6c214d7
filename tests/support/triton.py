"""Start a REAL Triton Inference Server for tests (installed by ``hack/install-triton.sh``).

Usage::

    from support.triton import TritonServer, require_triton

    def test_something(tmp_path):
        require_triton()                       # skip locally / fail under CI=true if missing
        with TritonServer(MODELS, http_address="127.0.1.5") as triton:
            triton.http_url                    # "127.0.1.5:<port>" (no scheme, tritonclient style)
            triton.grpc_url, triton.metrics_url

* Any loopback address works (``127.0.1.5``: KWOK pod IPs stand in for pods); HTTP, gRPC and
  metrics all bind to it. Ports default to free ones picked on that address.
* ``__enter__`` starts ``tritonserver`` directly (the real binary a pod would run, CPU, Python
  backend) and waits (bounded by ``startup_timeout``) for ``/v2/health/ready`` -- or only
  ``/v2/health/live`` with ``wait_ready=False`` (a repository with a model that never loads) --
  and for the metrics endpoint.
  If the process exits first, :class:`TritonStartError` carries its log tail.
* ``__exit__``/``stop()`` sends SIGTERM to the server's process group, then SIGKILL after
  ``stop_timeout``: no ``tritonserver`` or Python-backend stub is left behind.
* ``extra_args`` go to ``tritonserver`` verbatim (e.g. ``["--exit-on-error=false"]``);
  ``env`` adds environment variables. BLAS runs single-threaded unless ``env`` (or the
  caller's environment) sets ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``.
* The server's log is written to ``log_path`` (default: a temp file); :meth:`log_text` reads it.

``triton_available()`` returns the ``tritonserver`` path, or ``None`` when it is not installed.
The install lives in ``$WARMPOOL_TRITON_HOME`` (default ``$WARMPOOL_CACHE/triton``, with
``WARMPOOL_CACHE`` defaulting to ``~/.cache/warmpool``): ``bin/tritonserver`` and ``backends/``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from support.components import component_unavailable

__all__ = [
    "TritonServer",
    "TritonStartError",
    "free_port",
    "require_triton",
    "triton_available",
    "triton_home",
]


def triton_home() -> Path:
    """Where ``hack/install-triton.sh`` put Triton."""
    explicit = os.environ.get("WARMPOOL_TRITON_HOME")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))
    return cache / "triton"


def triton_available() -> str | None:
    """Path of the ``tritonserver`` launcher, or ``None`` when Triton is not installed."""
    binary = triton_home() / "bin" / "tritonserver"
    backend = triton_home() / "backends" / "python" / "triton_python_backend_stub"
    if binary.is_file() and os.access(binary, os.X_OK) and backend.is_file():
        return str(binary)
    return None


def require_triton() -> str:
    """The ``tritonserver`` path; skips the test (fails under ``CI=true``) when missing."""
    binary = triton_available()
    if binary is None:
        component_unavailable("triton", f"no tritonserver under {triton_home()}")
        raise AssertionError("unreachable")  # component_unavailable raises
    return binary


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


class TritonStartError(RuntimeError):
    """Triton exited or did not become ready in time; the message has its log tail."""


class TritonServer:
    """A real ``tritonserver`` process serving ``model_repository`` (a context manager)."""

    def __init__(
        self,
        model_repository: str | Path,
        *,
        http_address: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        grpc_address: str | None = None,
        wait_ready: bool = True,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        log_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_repository = Path(model_repository)
        self.address = http_address
        self.grpc_address = grpc_address or http_address
        self.http_port = http_port or free_port(self.address)
        self.grpc_port = grpc_port or free_port(self.grpc_address)
        self.metrics_port = metrics_port or free_port(self.address)
        self.wait_ready = wait_ready
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._log_path = Path(log_path) if log_path else None
        self._own_log = log_path is None
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    # --- addresses -----------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint (tritonclient style, no scheme)."""
        return f"{self.address}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint."""
        return f"{self.grpc_address}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """``http://host:port/metrics``: Triton's Prometheus endpoint."""
        return f"http://{self.address}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        assert self._log_path is not None, "not started"
        return self._log_path

    def command(self) -> list[str]:
        """The exact ``tritonserver`` command line."""
        binary = triton_available()
        if binary is None:
            raise TritonStartError(f"tritonserver not installed under {triton_home()}")
        return [
            binary,
            f"--model-repository={self.model_repository}",
            f"--backend-directory={triton_home() / 'backends'}",
            f"--http-address={self.address}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.grpc_address}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.address}",
            f"--metrics-port={self.metrics_port}",
            # No GPU here: do not ask DCGM for GPU metrics (CPU metrics stay on).
            "--allow-gpu-metrics=false",
            *self.extra_args,
        ]

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> TritonServer:
        """Start the server and wait until it answers (ready, or live with wait_ready=False)."""
        if self.process is not None:
            raise RuntimeError("already started")
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="triton-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        with open(self._log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Own process group: stop() signals the server AND its Python-backend stubs.
                start_new_session=True,
                env=self._environment(),
            )
        try:
            self._wait_started()
        except BaseException:
            self.stop()
            raise
        return self

    def _environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        # One BLAS thread per Python-backend stub unless asked otherwise: test machines have
        # 2 cores shared by many processes, where BLAS worker threads spin and turn model
        # latency into noise.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            environment.setdefault(name, "1")
        environment.update(self.env)
        return environment

    def _wait_started(self) -> None:
        path = "/v2/health/ready" if self.wait_ready else "/v2/health/live"
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.05
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise TritonStartError(f"tritonserver exited with {code}:\n{self.log_tail()}")
            # Triton opens its metrics port after HTTP: a test that reads /metrics right
            # after start() met "connection refused" once in CI, so wait for both.
            if self.health(path) and self.metrics_answer():
                return
            if time.monotonic() >= deadline:
                raise TritonStartError(
                    f"tritonserver not answering {path} and /metrics after "
                    f"{self.startup_timeout}s:\n" + self.log_tail()
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def health(self, path: str = "/v2/health/ready") -> bool:
        """True when ``GET path`` answers 200."""
        return _answers_200(f"http://{self.http_url}{path}")

    def metrics_answer(self) -> bool:
        """True when the metrics endpoint answers 200 (always, when metrics are turned off)."""
        return "--allow-metrics=false" in self.extra_args or _answers_200(self.metrics_url)

    def model_ready(self, model: str) -> bool:
        """True when Triton says ``model`` is ready."""
        return self.health(f"/v2/models/{model}/ready")

    def stop(self) -> None:
        """Stop the server and everything it started; idempotent."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Stubs that outlived the server (it was killed): end the rest of the group.
        self._signal_group(process.pid, signal.SIGKILL)
        self.process = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def log_text(self) -> str:
        """Everything the server logged so far."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def cleanup_log(self) -> None:
        """Remove the log file if this object created it."""
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.cleanup_log()


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
