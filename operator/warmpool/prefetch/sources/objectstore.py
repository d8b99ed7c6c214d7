"""S3-compatible, GCS and local (file/PVC) sources, through ``obstore`` (Rust object_store).

obstore does the HTTP in Rust with connection pooling and retries; a ranged GET is streamed in
pieces of at least CHUNK_SIZE. Measured against whole-range ``get_range_async`` calls (which
hand over one Rust buffer without a copy): the stream used more user CPU (one more copy into
Python ``bytes``) but clearly less system CPU and wall time on the benchmark VM, because whole
16 MiB bodies are collected into fresh, growing allocations. See benchmarks/results/prefetch.md.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import obstore
from obstore.exceptions import (
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import GCSStore, LocalStore, S3Store
from typing_extensions import Buffer

from warmpool.prefetch.errors import NotFound, PrefetchError, TransientSourceError
from warmpool.prefetch.model import PrefetchConfig, RemoteFile
from warmpool.prefetch.sources.base import CHUNK_SIZE, error_for_status, s3_code
from warmpool.prefetch.uris import SourceUri

_STATUS = re.compile(r"\b([45]\d\d) [A-Z][A-Za-z ]+")


def translate(error: Exception, what: str) -> PrefetchError:
    """Map an obstore failure to a one-line prefetch error (no URL query, no credentials)."""
    text = str(error)
    code = s3_code(text)
    if isinstance(error, (FileNotFoundError, NotFoundError)):
        return NotFound(f"{what}: not found{f' ({code})' if code else ''}")
    if isinstance(error, (PermissionDeniedError, UnauthenticatedError)):
        return error_for_status(403, what, code)
    match = _STATUS.search(text)
    if match:
        return error_for_status(int(match.group(1)), what, code)
    first_line = text.splitlines()[0] if text else type(error).__name__
    return TransientSourceError(f"{what}: {first_line[:300]}")


class ObjectStoreSource:
    """A model under a prefix of an object store (or a local directory)."""

    def __init__(self, store: Any, description: str) -> None:
        self._store = store
        self.description = description

    async def list_files(self) -> list[RemoteFile]:
        def collect() -> list[Any]:
            return [meta for batch in obstore.list(self._store) for meta in batch]

        try:
            metas = await asyncio.to_thread(collect)
        except Exception as error:  # obstore raises its own hierarchy and builtins
            raise translate(error, f"listing {self.description}") from error
        files = [
            RemoteFile(path=meta["path"], size=int(meta["size"]), etag=meta.get("e_tag"))
            for meta in metas
            if not str(meta["path"]).endswith("/")  # "directory" marker objects
        ]
        if not files:
            raise NotFound(f"no objects under {self.description}")
        return files

    async def stream(self, path: str, start: int, end: int) -> AsyncIterator[Buffer]:
        try:
            result = await obstore.get_async(self._store, path, options={"range": (start, end)})
            async for chunk in result.stream(min_chunk_size=CHUNK_SIZE):
                yield chunk
        except PrefetchError:
            raise
        except Exception as error:
            raise translate(error, f"reading {path} from {self.description}") from error

    def blocking_stream(self, path: str, start: int, end: int) -> Iterator[Buffer]:
        """``stream`` for a worker thread: obstore's blocking API (it drops the GIL while it
        waits), so a piece costs no event-loop round trip."""
        try:
            result = obstore.get(self._store, path, options={"range": (start, end)})
            yield from result.stream(min_chunk_size=CHUNK_SIZE)
        except PrefetchError:
            raise
        except Exception as error:
            raise translate(error, f"reading {path} from {self.description}") from error

    async def close(self) -> None:
        return None


def _client_options(endpoint: str | None, concurrency: int) -> Any:
    options: dict[str, Any] = {
        # Enough idle connections that every parallel range reuses one (no TLS handshakes).
        "pool_max_idle_per_host": str(max(concurrency, 8)),
        "timeout": "300s",
        "connect_timeout": "10s",
    }
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True
    return options


def s3_source(uri: SourceUri, config: PrefetchConfig) -> ObjectStoreSource:
    """``s3://bucket/prefix`` on AWS or any S3-compatible endpoint."""
    endpoint = config.s3_endpoint
    kwargs: dict[str, Any] = {}
    # Credentials come from the pod's env (a Secret); obstore would read them too, but
    # passing them makes the precedence explicit. They are never logged.
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        kwargs["access_key_id"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_access_key"] = os.environ["AWS_SECRET_ACCESS_KEY"]
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["token"] = os.environ["AWS_SESSION_TOKEN"]
    if endpoint:
        kwargs["endpoint"] = endpoint
        kwargs["virtual_hosted_style_request"] = False  # custom endpoints: path-style
    region = config.s3_region or ("us-east-1" if endpoint else None)
    if region:
        kwargs["region"] = region
    prefix = uri.path.strip("/") or None
    store = S3Store(
        uri.authority,
        prefix=prefix,
        client_options=_client_options(endpoint, config.concurrency),
        **kwargs,
    )
    return ObjectStoreSource(store, f"s3://{uri.authority}/{prefix or ''}")


def gcs_source(uri: SourceUri, config: PrefetchConfig) -> ObjectStoreSource:
    """``gs://bucket/prefix``; credentials from GOOGLE_APPLICATION_CREDENTIALS (a key file).

    ``STORAGE_EMULATOR_HOST`` (the variable Google's own client libraries honour, e.g.
    ``http://127.0.0.1:4443``) points it at a GCS emulator instead, unauthenticated.
    """
    kwargs: dict[str, Any] = {}
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    credentials = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if emulator:
        kwargs["base_url"] = emulator.rstrip("/")
        kwargs["skip_signature"] = True  # an emulator takes no OAuth token
    elif credentials:
        kwargs["application_credentials"] = credentials
    prefix = uri.path.strip("/") or None
    store = GCSStore(
        uri.authority,
        prefix=prefix,
        client_options=_client_options(emulator, config.concurrency),
        **kwargs,
    )
    return ObjectStoreSource(store, f"gs://{uri.authority}/{prefix or ''}")


def local_source(uri: SourceUri) -> ObjectStoreSource:
    """``file:///path``: a directory on the node or a mounted PVC."""
    if not os.path.isdir(uri.path):
        raise NotFound(f"file://{uri.path}: no such directory")
    return ObjectStoreSource(LocalStore(uri.path), f"file://{uri.path}")
