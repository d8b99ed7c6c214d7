"""A real S3 server (versitygw, built by hack/build-s3.sh) on loopback with a model uploaded,
for tests whose pods or programs download weights from S3."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from support.components import component_unavailable
from warmpool.envtest import poll_until
from warmpool.envtest.binaries import cache_dir


@dataclass(frozen=True)
class S3Server:
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_s3(
    root: Path, *, access_key: str, secret_key: str, bucket: str, files: dict[str, Path]
) -> Iterator[S3Server]:
    """versitygw serving ``root`` on a free loopback port, with ``bucket`` holding ``files``
    (object key -> local file); stopped on exit."""
    binary = cache_dir() / "bin" / "versitygw"
    if not binary.exists():
        component_unavailable("s3", f"no versitygw at {binary} (hack/build-s3.sh)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = root / "s3"
    data.mkdir(parents=True, exist_ok=True)
    log = root / "versitygw.log"
    process = subprocess.Popen(
        [
            str(binary), "--access", access_key, "--secret", secret_key,
            "--port", f"127.0.0.1:{port}", "--quiet", "posix", str(data),
        ],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"versitygw exited: {log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
            except OSError:
                return False
            return True

        poll_until(listening, what="versitygw listening", timeout=30)
        server = S3Server(port, access_key, secret_key)
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=bucket)
        for key, path in sorted(files.items()):
            client.upload_file(str(path), bucket, key)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def model_files(directory: Path, prefix: str) -> dict[str, Path]:
    """Every file under ``directory`` keyed ``<prefix>/<relative path>``."""
    return {
        f"{prefix}/{path.relative_to(directory)}": path
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
