"""The HTTP side: any method and path (KServe v2 / Triton), bodies streamed both ways.

The request body is not read while the request is held: the client's TCP window fills and it
waits, so a held request costs a socket, not its body. Bodies are passed through byte for
byte (no decompression), end-to-end headers are kept, hop-by-hop headers are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from warmpool.activator.hold import HoldQueue, HoldRefused, HoldTimedOut, QueueFull
from warmpool.activator.metrics import ActivatorMetrics, Outcome
from warmpool.activator.routing import POOL_HEADER, PoolKey, RouteError, resolve

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# Connecting fails before anything is sent, so it is retried (a pod that just died may still
# be listed for a moment).
CONNECT_ATTEMPTS = 3
# RFC 9110 section 7.6.1, plus the de-facto Proxy-Connection and Keep-Alive.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def end_to_end_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Copy ``headers`` without hop-by-hop ones (including those named in ``Connection``)."""
    named = {
        token.strip().lower()
        for value in _all(headers, "connection")
        for token in value.split(",")
        if token.strip()
    }
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in HOP_BY_HOP and lowered not in named:
            out.add(name, value)
    return out


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    if isinstance(headers, CIMultiDict | CIMultiDictProxy):
        return list(headers.getall(name, []))
    return [v for k, v in headers.items() if k.lower() == name]


class HttpProxy:
    """aiohttp handler: route, hold, forward, stream back."""

    def __init__(
        self,
        hold: HoldQueue,
        known_pools: Callable[[], Iterable[PoolKey]],
        metrics: ActivatorMetrics,
        *,
        retry_after_seconds: int = 5,
        connect_timeout: float = 10.0,
    ) -> None:
        self._hold = hold
        self._known_pools = known_pools
        self._metrics = metrics
        self._retry_after = retry_after_seconds
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            # Many held requests are released at once: no client-side connection cap.
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
            # Inference (and streamed generation) may run long: only connecting is bounded.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = resolve(request.host, request.headers.get(POOL_HEADER), self._known_pools())
        if isinstance(route, RouteError):
            self._metrics.count(None, Outcome.NO_ROUTE)
            return _error(421, route.message)
        pool = route
        try:
            for attempt in range(1, CONNECT_ATTEMPTS + 1):
                async with self._hold.lease(pool) as endpoint:
                    try:
                        return await self._forward(request, pool, endpoint.http_base())
                    except aiohttp.ClientConnectorError as error:
                        # Nothing was sent yet (not even the body was read): safe to retry,
                        # on another endpoint if there is one (the picker rotates).
                        log.warning("pool %s: cannot connect (%d): %s", pool, attempt, error)
                        if attempt == CONNECT_ATTEMPTS:
                            self._metrics.count(pool, Outcome.UPSTREAM_ERROR)
                            return _error(502, f"no replica of pool {pool} reachable: {error}")
            raise AssertionError("unreachable")
        except QueueFull as error:
            self._metrics.count(pool, Outcome.REJECTED_FULL)
            return _error(503, str(error), {"Retry-After": str(self._retry_after)})
        except HoldTimedOut as error:
            self._metrics.count(pool, Outcome.TIMED_OUT)
            return _error(504, str(error))
        except HoldRefused as error:
            self._metrics.count(pool, Outcome.SHUTTING_DOWN)
            return _error(503, str(error), {"Retry-After": "1"})

    async def _forward(self, request: web.Request, pool: PoolKey, base: str) -> web.StreamResponse:
        assert self._session is not None, "HttpProxy.start() was not awaited"
        headers = end_to_end_headers(request.headers)
        _add_forwarded(headers, request)
        body: AsyncIterator[bytes] | None = None
        if request.body_exists:
            body = request.content.iter_chunked(CHUNK)
        response: web.StreamResponse | None = None
        try:
            async with self._session.request(
                request.method,
                # raw_path is already encoded: yarl must not re-quote it.
                URL(base + request.raw_path, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in end_to_end_headers(upstream.headers).items():
                    response.headers.add(name, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                await response.write_eof()
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as error:
            self._metrics.count(pool, Outcome.UPSTREAM_ERROR)
            log.warning("pool %s: upstream %s failed: %s", pool, base, error)
            if response is None or not response.prepared:
                return _error(502, f"upstream replica of pool {pool} failed: {error}")
            # Headers already went out: all we can do is cut the connection.
            if request.transport is not None:
                request.transport.close()
            return response
        self._metrics.count(pool, Outcome.FORWARDED)
        return response


def _add_forwarded(headers: CIMultiDict[str], request: web.Request) -> None:
    peer = request.remote
    if peer:
        prior = headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    if "Host" not in headers and request.host:
        headers["Host"] = request.host


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
