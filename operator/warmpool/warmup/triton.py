"""Async Triton driver over HTTP or gRPC (tritonclient's aio clients).

One small interface, :class:`TritonDriver`, so the warm-up logic does not care about the
protocol. Health calls never raise: a server that cannot be reached is "not live".
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import grpc
import tritonclient.grpc.aio as grpcclient
import tritonclient.http.aio as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import (
    InferenceServerException,
    deserialize_bytes_tensor,
    serialize_byte_tensor,
)

from warmpool.warmup.inputs import Tensor, WarmupRequest
from warmpool.warmup.llm import (
    TEXT_OUTPUT,
    StreamTiming,
    generate_body,
    parse_sse_event,
    timing_from_arrivals,
)

log = logging.getLogger(__name__)

Protocol = Literal["http", "grpc"]


class ModelState(enum.Enum):
    """A model's state as Triton's repository index reports it."""

    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"
    UNKNOWN = "UNKNOWN"
    """Not in the index (yet), or the server could not be asked."""


@dataclass(frozen=True)
class ModelStatus:
    """State of one model version, with Triton's reason when it is not ready."""

    state: ModelState
    reason: str = ""

    @property
    def failed(self) -> bool:
        """Triton tried to load the model and gave up (initialize raised, bad config, ...)."""
        return self.state is ModelState.UNAVAILABLE and bool(self.reason)


class InferenceFailed(Exception):
    """The server answered a warm-up request with an error (bad input, model error)."""


class TritonDriver(abc.ABC):
    """What the warm-up needs from a Triton server."""

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version

    @abc.abstractmethod
    async def server_live(self) -> bool: ...

    @abc.abstractmethod
    async def server_ready(self) -> bool: ...

    @abc.abstractmethod
    async def model_ready(self) -> bool: ...

    @abc.abstractmethod
    async def _repository_index(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def metadata(self) -> dict[str, Any]:
        """The model's metadata (KServe v2 JSON: name, versions, inputs, outputs)."""

    @abc.abstractmethod
    async def config(self) -> dict[str, Any]:
        """The model's configuration (Triton's JSON)."""

    @abc.abstractmethod
    async def infer(self, request: WarmupRequest) -> None:
        """Send one inference request; raise :class:`InferenceFailed` on a server error."""

    @abc.abstractmethod
    async def stream(self, tensors: list[Tensor]) -> StreamTiming:
        """Send one request to a decoupled model and time its streamed answer until the final
        response; raise :class:`InferenceFailed` on a server error or an answer without output.
        """

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def model_status(self) -> ModelStatus:
        """This model version's state and reason from the repository index."""
        try:
            index = await self._repository_index()
        except Exception as error:  # unreachable server, protocol error: state unknown
            log.debug("repository index failed: %s", error)
            return ModelStatus(ModelState.UNKNOWN)
        entries = [e for e in index if e.get("name") == self.model]
        if self.version:
            entries = [e for e in entries if str(e.get("version", "")) == self.version]
        if not entries:
            return ModelStatus(ModelState.UNKNOWN)
        # Several versions without --model-version: report the best one.
        order = [ModelState.READY, ModelState.LOADING, ModelState.UNLOADING]
        statuses = [
            ModelStatus(_state(str(e.get("state", ""))), str(e.get("reason", ""))) for e in entries
        ]
        statuses.sort(key=lambda s: order.index(s.state) if s.state in order else len(order))
        return statuses[0]


def _state(text: str) -> ModelState:
    try:
        return ModelState(text)
    except ValueError:
        return ModelState.UNKNOWN


class HttpDriver(TritonDriver):
    """KServe v2 over HTTP (``tritonclient.http.aio``, aiohttp underneath)."""

    def __init__(self, url: str, model: str, version: str, request_timeout: float) -> None:
        super().__init__(model, version)
        self._client = httpclient.InferenceServerClient(url, conn_timeout=request_timeout)
        self._url = url
        self._timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    async def _safe(self, call: Any) -> bool:
        try:
            return bool(await call)
        except Exception as error:
            log.debug("health call failed: %s", error)
            return False

    async def server_live(self) -> bool:
        return await self._safe(self._client.is_server_live())

    async def server_ready(self) -> bool:
        return await self._safe(self._client.is_server_ready())

    async def model_ready(self) -> bool:
        return await self._safe(self._client.is_model_ready(self.model, self.version))

    async def _repository_index(self) -> list[dict[str, Any]]:
        index: list[dict[str, Any]] = await self._client.get_model_repository_index()
        return index

    async def metadata(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.get_model_metadata(self.model, self.version)
        return result

    async def config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.get_model_config(self.model, self.version)
        return result

    async def stream(self, tensors: list[Tensor]) -> StreamTiming:
        """``POST .../generate_stream``: Server-Sent Events, one per response."""
        if self._session is None:
            # No read timeout: a long answer streams for as long as it streams; each call is
            # bounded by the warm-up's own deadline.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout)
            )
        path = f"/v2/models/{self.model}"
        if self.version:
            path += f"/versions/{self.version}"
        arrivals: list[float] = []
        started = time.perf_counter()
        try:
            async with self._session.post(
                f"http://{self._url}{path}/generate_stream", json=generate_body(tensors)
            ) as response:
                if response.status != 200:
                    text = (await response.text())[:500]
                    raise InferenceFailed(f"generate_stream answered {response.status}: {text}")
                async for data in _sse_data(response.content):
                    if parse_sse_event(data):
                        arrivals.append(time.perf_counter() - started)
            return timing_from_arrivals(arrivals)
        except (aiohttp.ClientError, ValueError) as error:
            raise InferenceFailed(str(error)) from error

    async def infer(self, request: WarmupRequest) -> None:
        inputs = []
        for tensor in request:
            item = httpclient.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
            # Binary tensor data: what production clients send, and far cheaper than JSON.
            item.set_data_from_numpy(tensor.array, binary_data=True)
            inputs.append(item)
        try:
            await self._client.infer(self.model, inputs, model_version=self.version)
        except InferenceServerException as error:
            raise InferenceFailed(str(error)) from error

    async def close(self) -> None:
        await self._client.close()
        if self._session is not None:
            await self._session.close()


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The ``data`` payloads of a Server-Sent Events body, each as soon as its event ends."""
    lines: list[str] = []
    async for raw in content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data:"):
            lines.append(line[5:].lstrip(" "))
        elif not line and lines:
            yield "\n".join(lines)
            lines = []
    if lines:
        yield "\n".join(lines)


class GrpcDriver(TritonDriver):
    """KServe v2 over gRPC (``tritonclient.grpc.aio``, grpc.aio underneath)."""

    def __init__(self, url: str, model: str, version: str, request_timeout: float) -> None:
        super().__init__(model, version)
        self._client = grpcclient.InferenceServerClient(url)
        self._timeout = request_timeout
        self._url = url
        self._channel: grpc.aio.Channel | None = None

    async def _safe(self, call: Any) -> bool:
        try:
            return bool(await call)
        except Exception as error:
            log.debug("health call failed: %s", error)
            return False

    async def server_live(self) -> bool:
        return await self._safe(self._client.is_server_live(client_timeout=self._timeout))

    async def server_ready(self) -> bool:
        return await self._safe(self._client.is_server_ready(client_timeout=self._timeout))

    async def model_ready(self) -> bool:
        return await self._safe(
            self._client.is_model_ready(self.model, self.version, client_timeout=self._timeout)
        )

    async def _repository_index(self) -> list[dict[str, Any]]:
        response = await self._client.get_model_repository_index(
            as_json=True, client_timeout=self._timeout
        )
        models: list[dict[str, Any]] = response.get("models", [])
        return models

    async def metadata(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.get_model_metadata(
            self.model, self.version, as_json=True, client_timeout=self._timeout
        )
        return result

    async def config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.get_model_config(
            self.model, self.version, as_json=True, client_timeout=self._timeout
        )
        return result

    async def infer(self, request: WarmupRequest) -> None:
        inputs = []
        for tensor in request:
            item = grpcclient.InferInput(tensor.name, list(tensor.array.shape), tensor.datatype)
            item.set_data_from_numpy(tensor.array)
            inputs.append(item)
        try:
            await self._client.infer(
                self.model, inputs, model_version=self.version, client_timeout=self._timeout
            )
        except InferenceServerException as error:
            raise InferenceFailed(str(error)) from error

    async def stream(self, tensors: list[Tensor]) -> StreamTiming:
        """One ``ModelStreamInfer`` call carrying one request, read until the final response.

        Built on the generated stub rather than ``tritonclient``'s ``stream_infer``: only a
        request parameter (``triton_enable_empty_final_response``, which that client reserves)
        makes Triton flag the last response of a decoupled model, and nothing else tells the
        end of an answer.
        """
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        request = service_pb2.ModelInferRequest(model_name=self.model, model_version=self.version)
        for tensor in tensors:
            request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.array.shape)
            request.raw_input_contents.append(_raw(tensor))
        request.parameters["triton_enable_empty_final_response"].bool_param = True
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[service_pb2.ModelInferRequest]:
            yield request
            # Keep the request side open until the answer is complete: a half-closed stream
            # is the client saying it is done.
            await finished.wait()

        arrivals: list[float] = []
        started = time.perf_counter()
        call = stub.ModelStreamInfer(requests())
        try:
            async for reply in call:
                if reply.error_message:
                    raise InferenceFailed(reply.error_message)
                response = reply.infer_response
                if _has_output(response):
                    arrivals.append(time.perf_counter() - started)
                final = response.parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    break
        except grpc.RpcError as error:
            raise InferenceFailed(f"{error.code()}: {error.details()}") from error
        finally:
            finished.set()
            call.cancel()
        try:
            return timing_from_arrivals(arrivals)
        except ValueError as error:
            raise InferenceFailed(str(error)) from error

    async def close(self) -> None:
        await self._client.close()
        if self._channel is not None:
            await self._channel.close()


def _raw(tensor: Tensor) -> bytes:
    """A tensor's ``raw_input_contents`` (BYTES: 4-byte little-endian lengths + bytes)."""
    if tensor.datatype == "BYTES":
        # tritonclient returns the serialized bytes wrapped in a 0-d object array.
        serialized = serialize_byte_tensor(tensor.array)
        return b"" if serialized is None else bytes(serialized.item())
    return bytes(tensor.array.tobytes())


def _has_output(response: service_pb2.ModelInferResponse) -> bool:
    """Whether a response carries generated text (the final flag alone comes empty)."""
    for index, output in enumerate(response.outputs):
        if output.name == TEXT_OUTPUT and index < len(response.raw_output_contents):
            values = deserialize_bytes_tensor(response.raw_output_contents[index])
            return any(bool(value) for value in values)
    return False


def connect(protocol: Protocol, url: str, model: str, version: str, timeout: float) -> TritonDriver:
    """A driver for ``protocol`` at ``url`` (``host:port``, no scheme).

    ``timeout`` bounds each single call (health or inference), in seconds.
    """
    if protocol == "http":
        return HttpDriver(url, model, version, timeout)
    if protocol == "grpc":
        return GrpcDriver(url, model, version, timeout)
    raise ValueError(f"unknown protocol {protocol!r}")
