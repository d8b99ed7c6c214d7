"""Real servers the prefetch integration tests download from.

- ``S3Server``: versitygw (a real S3 API server, Apache-2.0; built by hack/build-s3.sh) with its
  posix backend, so a test can flip a byte of a stored object directly on disk.
- ``GcsServer``: fake-gcs-server (the GCS JSON API, BSD-2; built by hack/build-gcs.sh), which
  the real gs:// code reaches through ``STORAGE_EMULATOR_HOST``.
- ``RangeHTTPServer``: Python's threaded ``http.server`` with byte ranges, directory indexes,
  served-byte counters and an optional throttle (so a test can kill a download mid-way).
- ``HubStandIn``: a LOCAL STAND-IN for the Hugging Face Hub (aiohttp) implementing just the two
  endpoints ``huggingface_hub``'s real client calls here (model_info with blobs, resolve). The
  real hub cannot be reached from this machine; the client code under test is the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiohttp import web

from support.s3 import S3Server, free_port, start_s3, stop_process, versitygw_binary, wait_for

__all__ = ["S3Server", "free_port", "start_s3", "stop_process", "versitygw_binary", "wait_for"]


# S3 (versitygw) lives in tests/support/s3.py, shared with the warm-up and benchmark harnesses.


# --------------------------------------------------------------------------- GCS


def fake_gcs_binary() -> Path | None:
    cache = Path(os.environ.get("WARMPOOL_CACHE", Path.home() / ".cache" / "warmpool"))
    binary = cache / "bin" / "fake-gcs-server"
    return binary if binary.exists() else None


@dataclass
class GcsServer:
    """A running fake-gcs-server on loopback (plain HTTP, filesystem backend)."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def _call(self, method: str, path: str, body: bytes, content_type: str) -> bytes:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data: bytes = response.read()
            return data

    def create_bucket(self, name: str) -> None:
        body = json.dumps({"name": name}).encode()
        self._call("POST", "/storage/v1/b?project=warmpool-test", body, "application/json")

    def upload(self, bucket: str, name: str, data: bytes) -> dict[str, Any]:
        """Upload one object through the JSON API; returns its metadata (md5Hash, crc32c...)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        path = f"/upload/storage/v1/b/{urllib.parse.quote(bucket)}/o?{query}"
        metadata: dict[str, Any] = json.loads(
            self._call("POST", path, data, "application/octet-stream")
        )
        return metadata

    def env(self) -> dict[str, str]:
        """Environment for a prefetch subprocess: the emulator instead of Google."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}


def start_gcs(binary: Path, root: Path) -> GcsServer:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root.parent / f"fake-gcs-{port}.log"
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(root),
            "-external-url",
            endpoint,
            "-public-host",
            f"127.0.0.1:{port}",
            "-log-level",
            "warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),  # a file, not a pipe: a full pipe would stall the server
    )
    server = GcsServer(endpoint, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited: {log.read_text()[-500:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(endpoint + "/storage/v1/b", timeout=1) as response,
        ):
            return bool(response.status == 200)
        return False

    try:
        wait_for(ready, 30, "fake-gcs-server to answer")
    except BaseException:
        stop_process(process)  # leave no server behind
        raise
    return server


# --------------------------------------------------------------------------- HTTP with ranges

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class HttpStats:
    """What the server sent, per path; a throttle to slow it down."""

    bytes_by_path: Counter[str] = field(default_factory=Counter)
    gets: Counter[str] = field(default_factory=Counter)
    throttle_bytes_per_s: float | None = None
    status_override: dict[str, int] = field(default_factory=dict)
    active: int = 0
    """Responses being sent right now (a killed client's may still be draining)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total(self) -> int:
        with self.lock:
            return sum(self.bytes_by_path.values())


class _Handler(SimpleHTTPRequestHandler):
    stats: HttpStats

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _file(self) -> Path | None:
        path = Path(self.translate_path(self.path))
        return path if path.is_file() else None

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        rel = self.path.split("?")[0]
        override = self.stats.status_override.get(rel)
        if override:
            self.send_error(override)
            return
        file = self._file()
        if file is None:
            if send_body:
                super().do_GET()  # directory index, or 404
            else:
                super().do_HEAD()
            return
        size = file.stat().st_size
        start, end = 0, size
        header = self.headers.get("Range")
        status = 200
        if header:
            match = _RANGE.match(header.strip())
            if match is None:
                self.send_error(416)
                return
            first, last = match.groups()
            if first == "":
                start, end = max(size - int(last), 0), size
            else:
                start, end = int(first), min(int(last) + 1, size) if last else size
            if start >= size:
                self.send_error(416)
                return
            status = 206
        etag = f'"{file.stat().st_mtime_ns:x}-{size:x}"'
        self.send_response(status)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not send_body:
            return
        with self.stats.lock:
            self.stats.gets[rel] += 1
            self.stats.active += 1
        try:
            self._send_range(file, rel, start, end)
        finally:
            with self.stats.lock:
                self.stats.active -= 1

    def _send_range(self, file: Path, rel: str, start: int, end: int) -> None:
        with file.open("rb") as handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = handle.read(min(64 * 1024, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                with self.stats.lock:
                    self.stats.bytes_by_path[rel] += len(chunk)
                remaining -= len(chunk)
                rate = self.stats.throttle_bytes_per_s
                if rate:
                    time.sleep(len(chunk) / rate)


class RangeHTTPServer:
    """A threaded HTTP server over a directory, with ranges, stats and a throttle."""

    def __init__(self, root: Path, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.stats = HttpStats()
        handler = type("Handler", (_Handler,), {"stats": self.stats})

        def make(*args: Any, **kwargs: Any) -> _Handler:
            return handler(*args, directory=str(root), **kwargs)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), make)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> RangeHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


# --------------------------------------------------------------------------- hub stand-in


@dataclass
class HubRepo:
    files: dict[str, bytes]
    lfs: set[str]
    """Which files the stand-in reports as LFS (with their sha256), like the real hub."""
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    sha_override: dict[str, str] = field(default_factory=dict)


class HubStandIn:
    """LOCAL STAND-IN for the Hugging Face Hub API (see module doc). Runs on its own loop."""

    def __init__(self, token: str | None = None) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.token = token
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _model_info(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        repo = self.repos.get(repo_id)
        if repo is None or not self._authorized(request):
            return web.json_response(
                {"error": "Repository not found"},
                status=401,
                headers={"X-Error-Code": "RepoNotFound"},
            )
        if request.match_info.get("rev", "main") not in {"main", repo.commit}:
            return web.json_response(
                {"error": "Invalid rev id"},
                status=404,
                headers={"X-Error-Code": "RevisionNotFound"},
            )
        siblings = []
        for path, data in sorted(repo.files.items()):
            sibling: dict[str, Any] = {
                "rfilename": path,
                "size": len(data),
                "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
            }
            if path in repo.lfs:
                sha = repo.sha_override.get(path, hashlib.sha256(data).hexdigest())
                sibling["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
            siblings.append(sibling)
        return web.json_response({"id": repo_id, "sha": repo.commit, "siblings": siblings})

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        repo = self.repos.get(f"{request.match_info['org']}/{request.match_info['name']}")
        if repo is None or not self._authorized(request):
            return web.Response(status=401, headers={"X-Error-Code": "RepoNotFound"})
        data = repo.files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        start, end = 0, len(data)
        header = request.headers.get("Range")
        status = 200
        if header:
            match = _RANGE.match(header)
            assert match is not None
            start = int(match.group(1))
            end = min(int(match.group(2)) + 1, len(data))
            status = 206
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return web.Response(status=status, body=data[start:end], headers=headers)

    def start(self) -> HubStandIn:
        app = web.Application()
        app.router.add_get("/api/models/{org}/{name}/revision/{rev}", self._model_info)
        app.router.add_get("/api/models/{org}/{name}", self._model_info)
        app.router.add_route("*", "/{org}/{name}/resolve/{rev}/{path:.+}", self._resolve)
        self._thread.start()

        async def run() -> None:
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path] | None:
    """A server TLS context and its CA file for 127.0.0.1 (openssl CLI), or None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert
