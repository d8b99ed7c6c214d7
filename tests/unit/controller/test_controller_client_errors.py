"""Transport failures reach the reconciler as transient ApiErrors, never as bare exceptions.

kopf retries a bare exception only after its default back-off (60 s); an ApiError marked
transient becomes a TemporaryError retried after RETRY_DELAY. The fault tests found
aiohttp's ServerDisconnectedError (the apiserver dying mid-request) escaping as a bare one.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from warmpool.controller.kube.client import ApiError, KubeClient, ObjectRef

REF = ObjectRef("v1", "Service", "llama", "ml")


class FailingApi:
    """Stands in for kubernetes_asyncio's ApiClient: every call raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.configuration = None

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectionError("connection reset"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_transport_failures_are_transient_api_errors(error: BaseException) -> None:
    client = KubeClient(FailingApi(error))  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        await client.get(REF)
    assert caught.value.status == 0
    assert caught.value.transient
    assert caught.value.reason == type(error).__name__


async def test_programming_errors_are_not_swallowed() -> None:
    client = KubeClient(FailingApi(ValueError("bug")))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bug"):
        await client.get(REF)
