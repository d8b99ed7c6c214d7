"""One HTTP/2 connection (either side) over asyncio streams, with flow control.

The gRPC proxy needs the ``:authority`` of each call to know its pool; grpcio's server does
not expose it, so the proxy works one level down, on HTTP/2 streams (the ``h2`` library).
That also makes it generic: unary and streaming calls of any service pass through alike.

Incoming events for a stream go to that stream's queue. Received DATA is acknowledged
(window given back to the peer) only once it has been forwarded, so a slow or held
consumer pushes back on the sender instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
READ_SIZE = 256 * 1024
# Larger than HTTP/2's 64 KiB default so big tensors are not stalled on round trips.
WINDOW = 4 * 1024 * 1024
# Every held gRPC call is an open stream; let clients open many.
MAX_CONCURRENT_STREAMS = 4096


@dataclass
class HeadersEvent:
    headers: Headers
    end_stream: bool


@dataclass
class DataEvent:
    data: bytes
    flow_length: int


@dataclass
class TrailersEvent:
    headers: Headers


@dataclass
class EndEvent:
    pass


@dataclass
class ResetEvent:
    error_code: int


StreamEvent = HeadersEvent | DataEvent | TrailersEvent | EndEvent | ResetEvent


@dataclass
class H2Stream:
    """One stream's inbound events."""

    stream_id: int
    events: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)
    #: Called when the peer resets the stream or the connection goes away.
    on_reset: Callable[[], None] | None = None


class H2Connection:
    """A connection and its reader task; new inbound streams go to ``on_request``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_side: bool,
        on_request: Callable[[H2Stream, Headers], None] | None = None,
        on_close: Callable[[H2Connection], None] | None = None,
    ) -> None:
        config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self._reader = reader
        self._writer = writer
        self._on_request = on_request
        self._on_close = on_close
        self._streams: dict[int, H2Stream] = {}
        self._window_changed = asyncio.Event()
        self.closed = False
        self.h2.local_settings = h2.settings.Settings(
            client=client_side,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW)
        self.flush()
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def open_outbound_streams(self) -> int:
        return int(self.h2.open_outbound_streams)

    @property
    def remote_max_streams(self) -> int:
        return int(self.h2.remote_settings.max_concurrent_streams)

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    def open_stream(self, headers: Headers, *, end_stream: bool = False) -> H2Stream:
        """Start a request (client side). Synchronous, so stream ids are never raced."""
        stream_id = self.h2.get_next_available_stream_id()
        stream = H2Stream(stream_id)
        self._streams[stream_id] = stream
        self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        return stream

    def send_headers(self, stream_id: int, headers: Headers, *, end_stream: bool = False) -> None:
        self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()

    async def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send ``data``, waiting for window as flow control requires."""
        view = memoryview(data)
        while view:
            if self.closed:
                raise ConnectionError("HTTP/2 connection closed")
            size = min(
                self.h2.local_flow_control_window(stream_id),
                self.h2.max_outbound_frame_size,
                len(view),
            )
            if size <= 0:
                changed = self._window_changed
                await changed.wait()
                continue
            self.h2.send_data(stream_id, view[:size].tobytes())
            view = view[size:]
            self.flush()
            await self._writer.drain()
        if end_stream:
            self.end_stream(stream_id)

    def end_stream(self, stream_id: int) -> None:
        self.h2.end_stream(stream_id)
        self.flush()

    def acknowledge(self, stream_id: int, flow_length: int) -> None:
        """Give ``flow_length`` bytes of window back to the peer (data was forwarded)."""
        if flow_length and not self.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.acknowledge_received_data(flow_length, stream_id)
            self.flush()

    def reset(self, stream_id: int, error_code: int = 8) -> None:
        """RST_STREAM (default CANCEL); a stream already closed is left alone."""
        self._streams.pop(stream_id, None)
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, error_code)
            self.flush()

    def forget(self, stream_id: int) -> None:
        """Stop routing events to this stream (late DATA is then acknowledged at once)."""
        self._streams.pop(stream_id, None)

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection()
                self.flush()
        self._terminate()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader_task

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError as error:
                    log.warning("HTTP/2 protocol error from peer: %s", error)
                    self.flush()
                    break
                for event in events:
                    self._dispatch(event)
                self.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self._terminate()
            self._writer.close()

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = H2Stream(event.stream_id)
            self._streams[event.stream_id] = stream
            if self._on_request is None:
                self.reset(event.stream_id, 7)  # REFUSED_STREAM: we never accept pushes
            else:
                self._on_request(stream, list(event.headers or []))
        elif isinstance(event, h2.events.ResponseReceived):
            # A trailers-only response (a gRPC error) ends the stream with its one HEADERS frame.
            ended = event.stream_ended is not None
            self._put(event.stream_id, HeadersEvent(list(event.headers or []), ended))
        elif isinstance(event, h2.events.TrailersReceived):
            self._put(event.stream_id, TrailersEvent(list(event.headers or [])))
        elif isinstance(event, h2.events.DataReceived):
            stream_id = event.stream_id
            if stream_id in self._streams:
                self._put(
                    stream_id,
                    DataEvent(bytes(event.data or b""), event.flow_controlled_length or 0),
                )
            else:
                self.acknowledge(stream_id, event.flow_controlled_length or 0)
        elif isinstance(event, h2.events.StreamEnded):
            self._put(event.stream_id, EndEvent())
        elif isinstance(event, h2.events.StreamReset):
            gone = self._streams.pop(event.stream_id or 0, None)
            if gone is not None:
                gone.events.put_nowait(ResetEvent(int(event.error_code or 0)))
                if gone.on_reset is not None:
                    gone.on_reset()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_senders()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._terminate()

    def _put(self, stream_id: int | None, item: StreamEvent) -> None:
        stream = self._streams.get(stream_id or 0)
        if stream is not None:
            stream.events.put_nowait(item)

    def _wake_senders(self) -> None:
        self._window_changed.set()
        self._window_changed = asyncio.Event()

    def _terminate(self) -> None:
        if self.closed:
            return
        self.closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        if self._on_close is not None:
            self._on_close(self)
        for stream in streams:
            stream.events.put_nowait(ResetEvent(2))  # INTERNAL_ERROR: connection is gone
            if stream.on_reset is not None:
                stream.on_reset()
        self._wake_senders()
