"""The gRPC side: a generic h2c proxy of gRPC calls (Triton's GRPCInferenceService or any).

Each call is one HTTP/2 stream: the pool comes from its ``:authority`` (or the
``x-warmpool-pool`` metadata), the call is held like an HTTP request, then its headers,
messages and trailers are relayed to a warm replica's gRPC port on a shared upstream
connection. Refusals are answered as gRPC statuses (trailers-only responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from urllib.parse import quote

from warmpool.activator.endpoints import Endpoint
from warmpool.activator.h2conn import (
    DataEvent,
    EndEvent,
    H2Connection,
    H2Stream,
    Headers,
    HeadersEvent,
    ResetEvent,
    TrailersEvent,
)
from warmpool.activator.hold import HoldQueue, HoldRefused, HoldTimedOut, QueueFull
from warmpool.activator.metrics import ActivatorMetrics, Outcome
from warmpool.activator.routing import POOL_HEADER, PoolKey, RouteError, resolve

log = logging.getLogger(__name__)

# Connecting fails before anything is sent, so it is retried.
CONNECT_ATTEMPTS = 3
UNAVAILABLE = 14
DEADLINE_EXCEEDED = 4
# HTTP/2 headers that describe the connection, not the call.
_CONNECTION_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"upgrade"})


class UpstreamUnavailable(Exception):
    """The replica could not be reached or dropped the call."""


class UpstreamPool:
    """Shared HTTP/2 connections per endpoint, opened on demand."""

    def __init__(self, connect_timeout: float = 10.0) -> None:
        self._connect_timeout = connect_timeout
        self._connections: dict[Endpoint, list[H2Connection]] = {}
        self._locks: dict[Endpoint, asyncio.Lock] = {}
        self._draining: list[H2Connection] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def open_stream(
        self, endpoint: Endpoint, headers: Headers
    ) -> tuple[H2Connection, H2Stream]:
        async with self._locks.setdefault(endpoint, asyncio.Lock()):
            live = [c for c in self._connections.get(endpoint, []) if not c.closed]
            self._connections[endpoint] = live
            conn = next((c for c in live if c.open_outbound_streams < c.remote_max_streams), None)
            if conn is None:
                ip, port = endpoint.grpc_target()
                if port is None:
                    raise UpstreamUnavailable(f"endpoint {ip} has no port named 'grpc'")
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(ip, port), self._connect_timeout
                    )
                except (OSError, TimeoutError) as error:
                    raise UpstreamUnavailable(f"cannot connect to {ip}:{port}: {error}") from error
                conn = H2Connection(reader, writer, client_side=True)
                live.append(conn)
            return conn, conn.open_stream(headers)

    def open_connections(self) -> int:
        """Connections not yet closed, in use or draining."""
        conns = [c for cs in self._connections.values() for c in cs] + self._draining
        return sum(1 for c in conns if not c.closed)

    def retain(self, live: set[Endpoint]) -> None:
        """Drop connections to endpoints that left every pool, once their calls are done.

        A terminating replica (Triton) waits for its open connections before it exits.
        """
        for endpoint in [e for e in self._connections if e not in live]:
            self._draining.extend(self._connections.pop(endpoint))
        self.close_idle_draining()

    def close_idle_draining(self) -> None:
        for conn in [c for c in self._draining if c.closed or c.open_outbound_streams == 0]:
            self._draining.remove(conn)
            task = asyncio.get_running_loop().create_task(conn.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        conns = [c for cs in self._connections.values() for c in cs] + self._draining
        self._draining = []
        self._connections.clear()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


class GrpcProxy:
    """Accepts h2c connections and relays each stream (call) to its pool."""

    def __init__(
        self,
        hold: HoldQueue,
        known_pools: Callable[[], Iterable[PoolKey]],
        metrics: ActivatorMetrics,
    ) -> None:
        """``known_pools`` lists the routable pools; call ``endpoints_changed`` on changes."""
        self._hold = hold
        self._known_pools = known_pools
        self._metrics = metrics
        self._upstream = UpstreamPool()
        self._server: asyncio.Server | None = None
        self._downstream: set[H2Connection] = set()
        self._calls: set[asyncio.Task[None]] = set()

    def upstream_connections(self) -> int:
        return self._upstream.open_connections()

    def endpoints_changed(self, live: set[Endpoint]) -> None:
        """Every pool's endpoints now: connections to any other endpoint are drained."""
        self._upstream.retain(live)

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self, grace: float) -> None:
        """Let calls in flight finish for up to ``grace`` seconds, then cut everything."""
        self.stop_accepting()
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=grace)
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in list(self._downstream)), return_exceptions=True)
        await self._upstream.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn_box: list[H2Connection] = []

        def on_request(stream: H2Stream, headers: Headers) -> None:
            task = asyncio.get_running_loop().create_task(self._call(conn_box[0], stream, headers))
            # A client that cancels (deadline, RST_STREAM) or disconnects ends its call at once,
            # held or relaying.
            stream.on_reset = lambda: _cancel(task)
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

        conn = H2Connection(
            reader,
            writer,
            client_side=False,
            on_request=on_request,
            on_close=self._downstream.discard,
        )
        conn_box.append(conn)
        self._downstream.add(conn)

    async def _call(self, down: H2Connection, stream: H2Stream, headers: Headers) -> None:
        try:
            await self._relay_call(down, stream, headers)
        except asyncio.CancelledError:
            down.reset(stream.stream_id)
        except Exception:
            log.exception("gRPC call on stream %d failed", stream.stream_id)
            down.reset(stream.stream_id, 2)
        finally:
            down.forget(stream.stream_id)

    async def _relay_call(self, down: H2Connection, stream: H2Stream, headers: Headers) -> None:
        header_map = {name.lower(): value for name, value in headers}
        authority = header_map.get(b":authority", b"").decode("latin-1") or None
        explicit = header_map.get(POOL_HEADER.encode(), b"").decode("latin-1") or None
        route = resolve(authority, explicit, self._known_pools())
        if isinstance(route, RouteError):
            self._metrics.count(None, Outcome.NO_ROUTE)
            _refuse(down, stream, UNAVAILABLE, route.message)
            return
        pool = route
        try:
            for attempt in range(1, CONNECT_ATTEMPTS + 1):
                async with self._hold.lease(pool) as endpoint:
                    try:
                        await self._relay(down, stream, headers, pool, endpoint)
                        return
                    except UpstreamUnavailable as error:
                        # Not connected: nothing of the call was sent, so it can be retried.
                        log.warning("pool %s: cannot connect (%d): %s", pool, attempt, error)
                        if attempt == CONNECT_ATTEMPTS:
                            self._metrics.count(pool, Outcome.UPSTREAM_ERROR)
                            _refuse(down, stream, UNAVAILABLE, f"no replica of {pool}: {error}")
        except QueueFull as error:
            self._metrics.count(pool, Outcome.REJECTED_FULL)
            _refuse(down, stream, UNAVAILABLE, str(error))
        except HoldTimedOut as error:
            self._metrics.count(pool, Outcome.TIMED_OUT)
            _refuse(down, stream, DEADLINE_EXCEEDED, str(error))
        except HoldRefused as error:
            self._metrics.count(pool, Outcome.SHUTTING_DOWN)
            _refuse(down, stream, UNAVAILABLE, str(error))

    async def _relay(
        self,
        down: H2Connection,
        stream: H2Stream,
        headers: Headers,
        pool: PoolKey,
        endpoint: Endpoint,
    ) -> None:
        forward = [(n, v) for n, v in headers if n.lower() not in _CONNECTION_HEADERS]
        up, up_stream = await self._upstream.open_stream(endpoint, forward)
        requests = asyncio.get_running_loop().create_task(
            _pump_requests(stream, down, up, up_stream)
        )
        ok = False
        try:
            ok = await _pump_responses(up_stream, up, down, stream.stream_id)
        finally:
            requests.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await requests
            if not ok:
                up.reset(up_stream.stream_id)
            up.forget(up_stream.stream_id)
            self._upstream.close_idle_draining()
        self._metrics.count(pool, Outcome.FORWARDED if ok else Outcome.UPSTREAM_ERROR)


# Put in the upstream stream's queue when the client reset the call (not an RST code).
_CLIENT_GONE = -1


async def _pump_requests(
    stream: H2Stream, down: H2Connection, up: H2Connection, up_stream: H2Stream
) -> None:
    """Client -> replica: messages, then end of stream; a client reset resets upstream."""
    while True:
        event = await stream.events.get()
        if isinstance(event, DataEvent):
            await up.send_data(up_stream.stream_id, event.data)
            down.acknowledge(stream.stream_id, event.flow_length)
        elif isinstance(event, EndEvent):
            up.end_stream(up_stream.stream_id)
            return
        elif isinstance(event, ResetEvent):
            up.reset(up_stream.stream_id)
            up_stream.events.put_nowait(ResetEvent(_CLIENT_GONE))
            return
        # Request trailers are not part of gRPC; anything else is ignored.


async def _pump_responses(
    up_stream: H2Stream, up: H2Connection, down: H2Connection, down_id: int
) -> bool:
    """Replica -> client: headers, messages, trailers. True when the call completed."""
    while True:
        event = await up_stream.events.get()
        if isinstance(event, HeadersEvent):
            down.send_headers(
                down_id, _response_headers(event.headers), end_stream=event.end_stream
            )
            if event.end_stream:
                return True
        elif isinstance(event, DataEvent):
            await down.send_data(down_id, event.data)
            up.acknowledge(up_stream.stream_id, event.flow_length)
        elif isinstance(event, TrailersEvent):
            down.send_headers(down_id, _response_headers(event.headers), end_stream=True)
            return True
        elif isinstance(event, EndEvent):
            with contextlib.suppress(Exception):
                down.end_stream(down_id)
            return True
        elif isinstance(event, ResetEvent):
            if event.error_code == _CLIENT_GONE:
                return True
            down.reset(down_id, event.error_code)
            return False


def _response_headers(headers: Headers) -> Headers:
    return [(n, v) for n, v in headers if n.lower() not in _CONNECTION_HEADERS]


def _refuse(down: H2Connection, stream: H2Stream, code: int, message: str) -> None:
    """A trailers-only gRPC error response; the call's request body is then ignored."""
    down.forget(stream.stream_id)
    with contextlib.suppress(Exception):
        down.send_headers(
            stream.stream_id,
            [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", str(code).encode()),
                (b"grpc-message", quote(message, safe=" ").encode()),
            ],
            end_stream=True,
        )


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
