"""HTTP(S) sources: one file, or a directory index page whose links are the model's files.

aiohttp with one pooled connector; each range is a ``Range: bytes=a-b`` GET read whole into
memory (parts are a few MiB). Transient failures (connection reset, 5xx, 429) are retried with
backoff; 4xx are final.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from typing import TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp

from warmpool.prefetch.errors import NotFound, PrefetchError, SourceError, TransientSourceError
from warmpool.prefetch.model import RemoteFile
from warmpool.prefetch.sources.base import CHUNK_SIZE, error_for_status
from warmpool.prefetch.uris import redact

log = logging.getLogger("warmpool.prefetch")

T = TypeVar("T")

_RETRIES = 4
_MAX_INDEX_DEPTH = 8
_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href" and value:
                    self.hrefs.append(value)


def index_links(base: str, html: str) -> list[str]:
    """Absolute URLs of the entries below ``base`` in an autoindex page (pure).

    Parent links, sort links (``?C=N``), fragments and other hosts are skipped.
    """
    parser = _Links()
    parser.feed(html)
    links = []
    for href in parser.hrefs:
        if href.startswith(("?", "#")) or href in {"../", ".."}:
            continue
        url = urljoin(base, href).split("#")[0].split("?")[0]
        if url.startswith(base) and url != base:
            links.append(url)
    return sorted(set(links))


class HttpReader:
    """Ranged GETs with retries over one pooled session."""

    def __init__(self, concurrency: int, headers: dict[str, str] | None = None) -> None:
        self._concurrency = concurrency
        self._headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._concurrency + 4, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers=self._headers, auto_decompress=False
            )
        return self._session

    async def _with_retries(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        delay = 0.5
        for attempt in range(1, _RETRIES + 1):
            try:
                return await attempt_once()
            except TransientSourceError as error:
                reason = str(error)
            except PrefetchError:
                raise
            except aiohttp.ClientSSLError as error:  # retrying cannot fix a certificate
                raise SourceError(f"{what}: TLS verification failed: {error}") from error
            except (TimeoutError, aiohttp.ClientError) as error:
                reason = f"{type(error).__name__}: {error}"
            if attempt == _RETRIES:
                raise SourceError(f"{what}: {reason} (after {_RETRIES} attempts)")
            log.warning("%s failed (%s); retrying in %.1fs", what, reason, delay)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def get(self, url: str, start: int | None = None, end: int | None = None) -> bytes:
        """GET ``url`` whole, or bytes ``[start, end)`` of it."""
        what = f"GET {redact(url)}"
        headers = {} if start is None or end is None else {"Range": f"bytes={start}-{end - 1}"}

        async def once() -> bytes:
            async with self.session().get(url, headers=headers) as response:
                _check(response.status, what)
                if headers and response.status != 206:
                    body = await response.read()
                    if start == 0 and end == len(body):
                        return body  # no range support, but we asked for the whole file
                    raise SourceError(
                        f"{what}: server ignored the byte range (HTTP {response.status})"
                    )
                body = await response.read()
                if end is not None and start is not None and len(body) != end - start:
                    raise TransientSourceError(f"short body: {len(body)} of {end - start} bytes")
                return body

        return await self._with_retries(what, once)

    async def stream(self, url: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of ``url`` in CHUNK_SIZE pieces (retries are the caller's)."""
        what = f"GET {redact(url)}"
        try:
            headers = {"Range": f"bytes={start}-{end - 1}"}
            async with self.session().get(url, headers=headers) as response:
                _check(response.status, what)
                if response.status != 206 and start != 0:
                    status = response.status
                    raise SourceError(f"{what}: server ignored the byte range (HTTP {status})")
                remaining = end - start
                while remaining > 0:
                    chunk = await response.content.readexactly(min(CHUNK_SIZE, remaining))
                    remaining -= len(chunk)
                    yield chunk
        except asyncio.IncompleteReadError as error:
            raise TransientSourceError(f"{what}: connection closed early") from error
        except (TimeoutError, aiohttp.ClientError) as error:
            raise TransientSourceError(f"{what}: {type(error).__name__}: {error}") from error

    async def stat(self, url: str, path: str) -> RemoteFile:
        """Size, ETag and range support of ``url`` (HEAD, or a one-byte ranged GET)."""
        what = f"HEAD {redact(url)}"

        async def once() -> RemoteFile:
            async with self.session().head(url, allow_redirects=True) as response:
                _check(response.status, what)
                length = response.headers.get("Content-Length")
                ranged = response.headers.get("Accept-Ranges", "").lower() == "bytes"
                etag = response.headers.get("ETag")
            if length is None:  # e.g. chunked: ask for one byte and read the total size
                async with self.session().get(url, headers={"Range": "bytes=0-0"}) as response:
                    _check(response.status, what)
                    match = _CONTENT_RANGE_TOTAL.search(response.headers.get("Content-Range", ""))
                    if response.status != 206 or match is None:
                        raise SourceError(f"{what}: server gives no size for the file")
                    length, ranged = match.group(1), True
            return RemoteFile(path=path, size=int(length), etag=etag, ranged=ranged)

        return await self._with_retries(what, once)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _check(status: int, what: str) -> None:
    if status >= 400:
        raise error_for_status(status, what)


class HttpSource:
    """``https://host/path/file`` (one file) or ``https://host/path/`` (an index page)."""

    def __init__(self, url: str, concurrency: int) -> None:
        self._url = url
        self._reader = HttpReader(concurrency)
        self._urls: dict[str, str] = {}
        self.description = redact(url)

    async def list_files(self) -> list[RemoteFile]:
        if not self._url.endswith("/"):
            name = unquote(urlsplit(self._url).path.rsplit("/", 1)[-1])
            self._urls[name] = self._url
        else:
            await self._walk(self._url, 0)
            if not self._urls:
                raise NotFound(f"{self.description}: the index lists no files")
        return list(
            await asyncio.gather(
                *(self._reader.stat(url, path) for path, url in self._urls.items())
            )
        )

    async def _walk(self, url: str, depth: int) -> None:
        if depth > _MAX_INDEX_DEPTH:
            raise SourceError(f"{self.description}: index deeper than {_MAX_INDEX_DEPTH} levels")
        html = (await self._reader.get(url)).decode("utf-8", errors="replace")
        for link in index_links(url, html):
            if link.endswith("/"):
                await self._walk(link, depth + 1)
            else:
                self._urls[unquote(link[len(self._url) :])] = link

    def stream(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self._reader.stream(self._urls[path], start, end)

    async def close(self) -> None:
        await self._reader.close()
