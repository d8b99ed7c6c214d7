"""A small asynchronous Kubernetes client over `kubernetes_asyncio`'s ApiClient.

The operator writes a handful of kinds with server-side apply and merge patches; a generic
path-based client keeps that one code path (and one place that counts writes) instead of a
typed API class per kind. It is created once at startup, kept in kopf's memo and closed at
cleanup (an aiohttp session must not be opened per call).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from warmpool.contract import API_VERSION, KIND, PLURAL, Obj

logger = logging.getLogger(__name__)

FIELD_MANAGER = "warmpool"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

#: REST plural of every kind the operator reads or writes.
PLURALS: Mapping[str, str] = {
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "RoleBinding": "rolebindings",
    "EndpointSlice": "endpointslices",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "ConfigMap": "configmaps",
    "Pod": "pods",
    "Event": "events",
    "Node": "nodes",
    KIND: PLURAL,
}
CLUSTER_SCOPED = frozenset({"Node"})


class ApiError(Exception):
    """A request the apiserver refused (or that never reached it: status 0)."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"{status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def transient(self) -> bool:
        """Whether retrying later may succeed (conflicts, throttling, server errors)."""
        return self.status in (0, 409, 429) or self.status >= 500

    @property
    def message(self) -> str:
        """The apiserver's Status message when the body holds one."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return self.body
        return str(decoded.get("message", self.body)) if isinstance(decoded, dict) else self.body


@dataclass(frozen=True)
class ObjectRef:
    """What identifies an object on the API."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        meta = manifest.get("metadata", {})
        return cls(
            api_version=str(manifest["apiVersion"]),
            kind=str(manifest["kind"]),
            name=str(meta["name"]),
            namespace=meta.get("namespace"),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """REST path of a kind's collection, e.g. /apis/apps/v1/namespaces/ml/deployments."""
    plural = PLURALS[kind]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if kind in CLUSTER_SCOPED or namespace is None:
        return f"{prefix}/{plural}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def object_path(ref: ObjectRef, subresource: str | None = None) -> str:
    """REST path of one object (or its subresource)."""
    path = f"{collection_path(ref.api_version, ref.kind, ref.namespace)}/{ref.name}"
    return f"{path}/{subresource}" if subresource else path


def pool_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef(API_VERSION, KIND, name, namespace)


WriteObserver = Callable[[str, str], None]


#: Requests in flight at once per client, measured with benchmarks/scale.py on the 2-core shared
#: box. Unbounded (aiohttp's pool of 100): 300 new pools sent ~100 applies at a time, the
#: apiserver answered some after 20 s, others timed out (30 s) and were retried: 103 s.
#: 1,000 pools: 16 -> 159 s (peak RSS 242 MiB), 32 -> 73 s (265 MiB), 64 -> 63 s (295 MiB),
#: no timeout, 7 writes per pool in each (loads differ: see docs/scale.md). The apiserver's
#: applies are latency-bound (p50 0.3 s at ~60% of a core), so concurrency buys throughput
#: until the operator's memory for the requests in flight grows: 32. The rest waits here.
MAX_IN_FLIGHT = 32


class KubeClient:
    """Asynchronous reads and writes; every write is reported to `on_write(verb, kind)`."""

    def __init__(
        self,
        api: k8s.ApiClient,
        on_write: WriteObserver | None = None,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._api = api
        self._on_write = on_write
        self._in_flight = asyncio.Semaphore(max_in_flight)

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, on_write: WriteObserver | None = None
    ) -> KubeClient:
        api = k8s.ApiClient(await load_configuration(kubeconfig))
        skip_environment_lookups(api)
        return cls(api, on_write)

    @property
    def configuration(self) -> k8s.Configuration:
        return self._api.configuration

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        headers = {"Accept": accept, "Content-Type": content_type}
        try:
            async with self._in_flight:
                return await self._call_unbounded(path, method, query, headers, body)
        except k8s.ApiException as error:
            raise ApiError(
                int(error.status or 0), str(error.reason), str(error.body or "")
            ) from None
        # Connection refused, reset, timeout -- and aiohttp's own errors that are not OSErrors:
        # ServerDisconnectedError when the apiserver dies mid-request (tests/e2e/test_faults.py
        # found it escaping as a bare exception, which kopf retried only after 60 s).
        except (OSError, TimeoutError, aiohttp.ClientError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from error

    async def _call_unbounded(
        self,
        path: str,
        method: str,
        query: list[tuple[str, str]] | None,
        headers: dict[str, str],
        body: Any,
    ) -> Any:
        return await self._api.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            response_types_map={200: "object", 201: "object", 202: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=30,
        )

    def _wrote(self, verb: str, kind: str) -> None:
        if self._on_write is not None:
            self._on_write(verb, kind)

    async def get(self, ref: ObjectRef) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            result: Obj = await self._call("GET", object_path(ref))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return result

    async def list_metadata(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[Obj], str | None]:
        """Only the metadata of the matching objects (a PartialObjectMetadataList: a fraction of
        the bytes of a full LIST), and the list's resourceVersion."""
        query = [("labelSelector", label_selector)] if label_selector else []
        result = await self._call(
            "GET",
            collection_path(api_version, kind, namespace),
            query=query,
            accept=METADATA_LIST,
        )
        items: list[Obj] = list(result.get("items") or [])
        version = (result.get("metadata") or {}).get("resourceVersion")
        return items, str(version) if version else None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        result = await self._call("GET", collection_path(api_version, kind, namespace), query=query)
        items: list[Obj] = list(result.get("items") or [])
        return items

    async def apply(self, manifest: Obj, *, force: bool = True) -> Obj:
        """Server-side apply as field manager `warmpool` (force: the operator owns these fields)."""
        ref = ObjectRef.of(manifest)
        query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
        result: Obj = await self._call(
            "PATCH", object_path(ref), body=manifest, query=query, content_type=APPLY_PATCH
        )
        self._wrote("apply", ref.kind)
        return result

    async def merge_patch(self, ref: ObjectRef, patch: Obj, subresource: str | None = None) -> Obj:
        result: Obj = await self._call(
            "PATCH",
            object_path(ref, subresource),
            body=patch,
            content_type=MERGE_PATCH,
            query=[("fieldManager", FIELD_MANAGER)],
        )
        self._wrote("patch" if subresource is None else f"patch/{subresource}", ref.kind)
        return result

    async def create(self, manifest: Obj) -> Obj:
        ref = ObjectRef.of(manifest)
        result: Obj = await self._call(
            "POST",
            collection_path(ref.api_version, ref.kind, ref.namespace),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER)],
        )
        self._wrote("create", ref.kind)
        return result

    async def delete(self, ref: ObjectRef) -> bool:
        """Delete (background propagation); False when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            await self._call("DELETE", object_path(ref), body=body)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        self._wrote("delete", ref.kind)
        return True


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


def skip_environment_lookups(api: k8s.ApiClient) -> None:
    """kubernetes_asyncio opens its aiohttp session with trust_env=True: aiohttp then looks up
    proxy variables and ~/.netrc for EVERY request, in a thread of the default executor. With
    1,000 pools that was ~4% of the operator's CPU and a thread hop per request (py-spy,
    benchmarks/scale.py). When no proxy variable and no netrc file exist, the lookups cannot
    find anything: turn them off. (aiohttp keeps the flag in `_trust_env`; left alone when a
    future aiohttp lacks it.)"""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return
    netrc = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    if Path(netrc).exists():
        return
    session = getattr(api.rest_client, "pool_manager", None)
    if session is not None and hasattr(session, "_trust_env"):
        session._trust_env = False


async def load_configuration(kubeconfig: str | None) -> k8s.Configuration:
    """Client configuration: the given kubeconfig, else in-cluster, else the default kubeconfig."""
    configuration = k8s.Configuration()
    if kubeconfig:
        await k8s_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
        return configuration
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        await k8s_config.load_kube_config(client_configuration=configuration, persist_config=False)
    return configuration


async def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the operator's own client uses, so both
    talk to the same cluster as the same user."""
    maybe: Any = configuration.get_api_key_with_prefix("BearerToken")
    header = await maybe if inspect.isawaitable(maybe) else maybe
    scheme: str | None = None
    token: str | None = None
    if header:
        parts = str(header).split(" ", 1)
        scheme, token = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        priority=1000,
    )
