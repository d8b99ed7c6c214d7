"""The one Lease of leader election, read and written over `kubernetes_asyncio`'s ApiClient.

Its own small client (not controller/client.py's KubeClient): it runs before the operator's
runtime exists (on a standby that never starts it), and its writes are not pool writes to count.
Replace is a PUT carrying the resourceVersion that was read, so a concurrent writer makes it
fail with 409 instead of being overwritten. A standby also watches the Lease by name (RBAC
`watch` on that one Lease) to see a release at once instead of at its next poll.
"""

from __future__ import annotations

import math
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s

from warmpool.contract import Obj
from warmpool.controller.ha.leader import LeaseConflictError
from warmpool.controller.kube.client import ApiError

API_VERSION = "coordination.k8s.io/v1"
#: Seconds one Lease request may take; the elector bounds it further by its renew deadline.
REQUEST_TIMEOUT = 10


class LeaseApi:
    """GET / POST / PUT of Lease `namespace/name`."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name

    @property
    def _collection(self) -> str:
        return f"/apis/{API_VERSION}/namespaces/{self.namespace}/leases"

    def _manifest(self, spec: Obj, resource_version: str | None = None) -> Obj:
        metadata: Obj = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}

    async def _call(self, method: str, path: str, body: Obj | None = None) -> Any:
        try:
            return await self._api.call_api(
                path,
                method,
                query_params=[],
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except k8s.ApiException as error:
            if error.status == 409:
                raise LeaseConflictError(str(error.reason)) from None
            raise ApiError(
                int(error.status or 0), str(error.reason), str(error.body or "")
            ) from None
        except (OSError, TimeoutError, aiohttp.ClientError) as error:  # refused, reset, timeout
            raise ApiError(0, type(error).__name__, str(error)) from error

    async def _call_raw(
        self, method: str, path: str, query: list[tuple[str, str]], request_seconds: float
    ) -> aiohttp.ClientResponse:
        """The response unread (a watch streams), with the same error mapping as _call."""
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=request_seconds,
            )
        except k8s.ApiException as error:
            raise ApiError(
                int(error.status or 0), str(error.reason), str(error.body or "")
            ) from None
        except (OSError, TimeoutError, aiohttp.ClientError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from error
        if not 200 <= response.status <= 299:
            # Unread, the client does not check the status (a 403 watch would look like an event).
            body = await response.text()
            response.release()
            raise ApiError(response.status, str(response.reason), body)
        return response

    async def get(self) -> Obj | None:
        try:
            lease: Obj = await self._call("GET", f"{self._collection}/{self.name}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return lease

    async def create(self, spec: Obj) -> Obj:
        created: Obj = await self._call("POST", self._collection, self._manifest(spec))
        return created

    async def wait_for_change(self, resource_version: str | None, within: float) -> bool:
        """Watch the Lease (by name) from `resource_version`: True at its first event, False
        when the apiserver ends the watch (at most `within` seconds) without one."""
        query = [
            ("watch", "1"),
            ("fieldSelector", f"metadata.name={self.name}"),
            ("timeoutSeconds", str(max(1, math.ceil(within)))),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = await self._call_raw("GET", self._collection, query, within + 5)
        try:
            while line := await response.content.readline():
                if line.strip():
                    return True  # modified, deleted, or an ERROR event: read it again
        finally:
            response.release()
        return False

    async def replace(self, spec: Obj, resource_version: str) -> Obj:
        replaced: Obj = await self._call(
            "PUT", f"{self._collection}/{self.name}", self._manifest(spec, resource_version)
        )
        return replaced
