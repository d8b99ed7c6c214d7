"""Fixtures for the prefetch integration tests: real S3 (versitygw), HTTP and a hub stand-in.

The program under test runs as a real subprocess (``python -m warmpool.prefetch.cli``), as the
init container runs it, so exit codes, termination messages and ``kill -9`` are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefetch_servers import (
    GcsServer,
    HubStandIn,
    RangeHTTPServer,
    S3Server,
    fake_gcs_binary,
    start_gcs,
    start_s3,
    stop_process,
    versitygw_binary,
)

from support.components import component_unavailable

MiB = 1024 * 1024


@dataclass
class Run:
    """A finished prefetch subprocess."""

    code: int
    stdout: str
    stderr: str
    termination: str

    def result(self) -> dict[str, object]:
        assert self.code == 0, f"prefetch failed ({self.code}): {self.stderr[-2000:]}"
        last: dict[str, object] = json.loads(self.stdout.strip().splitlines()[-1])
        return last


def prefetch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "warmpool.prefetch.cli", *args]


def prefetch_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WARMPOOL_", "HF_"))}
    env.update(extra or {})
    return env


def run_prefetch(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run ``warmpool prefetch`` to completion with a termination log under ``tmp``."""
    termination = tmp / f"termination-{os.urandom(4).hex()}"
    process = subprocess.run(
        prefetch_command(
            "--termination-log", str(termination), "--progress-interval", "0.5", *args
        ),
        env=prefetch_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = termination.read_text() if termination.exists() else ""
    return Run(process.returncode, process.stdout, process.stderr, text)


def make_model(root: Path, sizes: dict[str, int], seed: int = 7) -> dict[str, str]:
    """Write files of pseudo-random bytes under ``root``; return their sha256 by path."""
    import random

    rng = random.Random(seed)
    digests = {}
    for rel, size in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        path.write_bytes(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


def sha256sums(digests: dict[str, str]) -> str:
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(digests.items()))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    binary = versitygw_binary()
    if binary is None:
        component_unavailable("s3", "versitygw not built; run hack/build-s3.sh")
    assert binary is not None
    try:
        server = start_s3(binary, tmp_path_factory.mktemp("s3root"))
    except (OSError, RuntimeError, TimeoutError) as error:
        component_unavailable("s3", f"versitygw would not start: {error}")
        raise
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    binary = fake_gcs_binary()
    if binary is None:
        component_unavailable("gcs", "fake-gcs-server not built; run hack/build-gcs.sh")
    assert binary is not None
    try:
        server = start_gcs(binary, tmp_path_factory.mktemp("gcsroot"))
    except (OSError, RuntimeError, TimeoutError) as error:
        component_unavailable("gcs", f"fake-gcs-server would not start: {error}")
        raise
    yield server
    stop_process(server.process)


@pytest.fixture
def gcs_bucket(gcs_server: GcsServer, request: pytest.FixtureRequest) -> str:
    """A fresh GCS bucket per test."""
    name = "g-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    gcs_server.create_bucket(name)
    return name


@pytest.fixture
def bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test."""
    name = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    s3_server.client().create_bucket(Bucket=name)
    return name


def upload_model(s3: S3Server, bucket: str, prefix: str, local: Path) -> None:
    client = s3.client()
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[RangeHTTPServer]:
    root = tmp_path / "www"
    root.mkdir()
    server = RangeHTTPServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def hub() -> Iterator[HubStandIn]:
    server = HubStandIn(token="hf_test_token_not_secret").start()
    yield server
    server.stop()
