"""Async Triton driver over HTTP or gRPC (tritonclient's aio clients).

One small interface, :class:`TritonDriver`, so the warm-up logic does not care about the
protocol. Health calls never raise: a server that cannot be reached is "not live".
"""

from __future__ import annotations

import abc
import enum
import logging
from dataclasses import dataclass
from typing import Any, Literal

import tritonclient.grpc.aio as grpcclient
import tritonclient.http.aio as httpclient
from tritonclient.utils import InferenceServerException

from warmpool.warmup.inputs import WarmupRequest

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
    async def infer(self, request: WarmupRequest) -> None:
        """Send one inference request; raise :class:`InferenceFailed` on a server error."""

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


class GrpcDriver(TritonDriver):
    """KServe v2 over gRPC (``tritonclient.grpc.aio``, grpc.aio underneath)."""

    def __init__(self, url: str, model: str, version: str, request_timeout: float) -> None:
        super().__init__(model, version)
        self._client = grpcclient.InferenceServerClient(url)
        self._timeout = request_timeout

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

    async def close(self) -> None:
        await self._client.close()


def connect(protocol: Protocol, url: str, model: str, version: str, timeout: float) -> TritonDriver:
    """A driver for ``protocol`` at ``url`` (``host:port``, no scheme).

    ``timeout`` bounds each single call (health or inference), in seconds.
    """
    if protocol == "http":
        return HttpDriver(url, model, version, timeout)
    if protocol == "grpc":
        return GrpcDriver(url, model, version, timeout)
    raise ValueError(f"unknown protocol {protocol!r}")
