"""Bounded waits on component health endpoints and other conditions."""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from warmpool.envtest.process import ComponentProcess

T = TypeVar("T")


class ClusterStartError(RuntimeError):
    """A component did not become healthy in time, or exited; the message carries the
    tail of its log."""


def tls_context(ca_cert: Path | None, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_cert`` (or, when None, trusting nothing: only for
    the health probes of kube-controller-manager and kube-scheduler, which serve
    self-signed certificates on loopback)."""
    if ca_cert is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(ca_cert))
    if client is not None:
        context.load_cert_chain(certfile=str(client[0]), keyfile=str(client[1]))
    return context


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 5.0) -> bool:
    """True when GET ``url`` answers 200; False on any connection error or other status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return False


def wait_until(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: ComponentProcess | None = None,
    interval: float = 0.25,
) -> None:
    """Poll ``condition`` until it is true; raise ClusterStartError after ``timeout``
    seconds, or at once when ``process`` exits (with its log tail either way)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.exit_code() is not None:
            raise ClusterStartError(
                f"{process.name} exited with status {process.exit_code()} while waiting "
                f"for {what}; log {process.log_path}:\n{process.log_tail()}"
            )
        if condition():
            return
        if time.monotonic() >= deadline:
            detail = ""
            if process is not None:
                detail = f"; log {process.log_path}:\n{process.log_tail()}"
            raise ClusterStartError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


class ConditionTimeoutError(AssertionError):
    """A condition awaited by :func:`poll_until` did not hold in time (an AssertionError, so
    a test that waits on it fails rather than errors)."""


def poll_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value; after
    ``timeout`` seconds raise ConditionTimeoutError naming ``what`` (plus ``describe()``,
    e.g. the object's last state). A bounded wait-for-condition for tests and tools."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f": {describe()}" if describe is not None else ""
            raise ConditionTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}{detail}"
            )
        time.sleep(interval)
