"""A real S3 API server for tests and benchmarks: versitygw (Apache-2.0; built by
hack/build-s3.sh) with its posix backend, so a test can also reach a stored object on disk.

    server = start_s3(versitygw_binary(), root)   # listening on a free loopback port
    server.client()                                # boto3
    server.env()                                   # AWS_* for a prefetch subprocess
    stop_process(server.process)
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.components import component_unavailable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def versitygw_binary() -> Path | None:
    cache = Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))
    binary = cache / "bin" / "versitygw"
    return binary if binary.exists() else None


@dataclass
class S3Server:
    """A running versitygw on loopback."""

    endpoint: str
    access_key: str
    secret_key: str
    root: Path
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def env(self) -> dict[str, str]:
        """Environment for a prefetch subprocess (as the pod gets it from a Secret)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def object_path(self, bucket: str, key: str) -> Path:
        """The file the posix backend stores an object in."""
        return self.root / bucket / key

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


def start_s3(
    binary: Path,
    root: Path,
    *,
    access_key: str = "warmpooltest",
    secret_key: str = "warmpool-test-secret-key",
) -> S3Server:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    access, secret = access_key, secret_key
    log = root.parent / f"versitygw-{port}.log"
    process = subprocess.Popen(
        [
            str(binary),
            "--access",
            access,
            "--secret",
            secret,
            "--port",
            f"127.0.0.1:{port}",
            "--quiet",
            "posix",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),  # a file, not a pipe: a full pipe would stall the server
    )
    server = S3Server(f"http://127.0.0.1:{port}", access, secret, root, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"versitygw exited: {log.read_text()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    try:
        wait_for(ready, 30, "versitygw to listen")
    except BaseException:
        stop_process(process)  # leave no server behind
        raise
    return server


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def running_s3(
    root: Path, *, access_key: str, secret_key: str, bucket: str, files: dict[str, Path]
) -> Iterator[S3Server]:
    """versitygw serving ``root`` on a free loopback port, with ``bucket`` holding ``files``
    (object key -> local file); stopped on exit. Fails (or skips outside CI) without the
    binary, like every real-component fixture."""
    binary = versitygw_binary()
    if binary is None:
        component_unavailable("s3", "no versitygw in the cache (hack/build-s3.sh)")
    assert binary is not None
    server = start_s3(binary, root / "s3", access_key=access_key, secret_key=secret_key)
    try:
        client = server.client()
        client.create_bucket(Bucket=bucket)
        for key, path in sorted(files.items()):
            client.upload_file(str(path), bucket, key)
        yield server
    finally:
        stop_process(server.process)


def model_files(directory: Path, prefix: str) -> dict[str, Path]:
    """Every file under ``directory`` keyed ``<prefix>/<relative path>``."""
    return {
        f"{prefix}/{path.relative_to(directory)}": path
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
