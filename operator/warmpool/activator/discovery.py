"""Endpoint discovery: list + watch the pools' ``<pool>-pods`` EndpointSlices.

The slices are written by Kubernetes' own EndpointSlice controller from the headless
``<pool>-pods`` Service and list only Ready pods; pods carry the ``warmpool.dev/warm``
readiness gate, so Ready means warm. Raw JSON is read (``_preload_content=False``) so the
pure parser sees exactly what the apiserver sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from warmpool.activator.endpoints import EndpointTable, SliceState, parse_endpoint_slice
from warmpool.contract import SERVICE_ROLE_LABEL, SERVICE_ROLE_PODS, PoolKey

log = logging.getLogger(__name__)

LABEL_SELECTOR = f"{SERVICE_ROLE_LABEL}={SERVICE_ROLE_PODS}"
# Server-side watch timeout: the apiserver closes the watch after this and we resume it.
WATCH_TIMEOUT_SECONDS = 300
RETRY_DELAY_SECONDS = 1.0


class EndpointSliceWatcher:
    """Keeps an EndpointTable in step with the cluster's pod EndpointSlices."""

    def __init__(
        self, api_client: Any, table: EndpointTable, *, namespace: str | None = None
    ) -> None:
        from kubernetes_asyncio import client

        self._api = client.DiscoveryV1Api(api_client)
        self._table = table
        self._namespace = namespace
        self._synced = asyncio.Event()
        # slice (namespace, name) -> pool, so a DELETED event finds its pool.
        self._slice_pool: dict[tuple[str, str], PoolKey] = {}

    async def wait_synced(self) -> None:
        """Returns once the first full list has been applied."""
        await self._synced.wait()

    async def run(self) -> None:
        """List, then watch from that version; re-list when the version is too old (410)."""
        while True:
            try:
                version: str | None = await self._relist()
                self._synced.set()
                while version is not None:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("EndpointSlice watch failed (%s); re-listing", error)
            await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _call(self, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", aiohttp.ClientTimeout(total=60, sock_connect=10))
        if self._namespace:
            return await self._api.list_namespaced_endpoint_slice(
                self._namespace, label_selector=LABEL_SELECTOR, _preload_content=False, **kwargs
            )
        return await self._api.list_endpoint_slice_for_all_namespaces(
            label_selector=LABEL_SELECTOR, _preload_content=False, **kwargs
        )

    async def _relist(self) -> str:
        response = await self._call()
        body = json.loads(await response.read())
        states: list[SliceState] = []
        self._slice_pool.clear()
        for item in body.get("items") or []:
            state = parse_endpoint_slice(item)
            if state is not None:
                states.append(state)
                self._slice_pool[(state.pool.namespace, state.slice_name)] = state.pool
        self._table.replace_all(states)
        return str(body["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str | None:
        """Apply watch events; the version to resume from, or None to re-list."""
        response = await self._call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            # The apiserver ends the watch after timeout_seconds; a connection that silently
            # died is given up a minute later and the watch resumed.
            _request_timeout=aiohttp.ClientTimeout(
                total=WATCH_TIMEOUT_SECONDS + 60, sock_connect=10
            ),
        )
        try:
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    # 410 Gone: our version is too old. Anything else: re-list as well.
                    log.info("EndpointSlice watch error %s; re-listing", obj.get("code"))
                    return None
                version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, obj)
        finally:
            response.release()
        return version

    def _apply(self, kind: str | None, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        state = parse_endpoint_slice(obj)
        if kind == "DELETED" or state is None:
            pool = self._slice_pool.pop(key, None)
            if pool is not None:
                self._table.delete(pool, key[1])
            return
        old_pool = self._slice_pool.get(key)
        if old_pool is not None and old_pool != state.pool:
            self._table.delete(old_pool, key[1])
        self._slice_pool[key] = state.pool
        self._table.upsert(state)
