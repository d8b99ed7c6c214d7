"""The activator against the REAL control plane: EndpointSlice discovery and the wake patch.

Real: kube-apiserver, the EndpointSlice controller (kube-controller-manager) that makes the
``<pool>-pods`` slice from the headless Service and copies its labels, the InferencePool CRD,
the watch and the merge patch.

Not here: forwarding to a pod found through a slice. The apiserver refuses loopback
addresses in EndpointSlices ("may not be in the loopback range"), so the controller cannot list
this cluster's loopback pod IPs, and no other address may carry traffic on these machines.
The test therefore writes the ready/not-ready slice itself, with TEST-NET-1 addresses
(RFC 5737) that are never contacted (nothing is held by then). Forwarding to a real Triton
is covered by tests/integration/activator/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes
import yaml
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import config as async_config

from warmpool.activator.discovery import EndpointSliceWatcher
from warmpool.activator.endpoints import Endpoint, EndpointTable
from warmpool.activator.routing import PoolKey
from warmpool.activator.server import Activator, ActivatorConfig
from warmpool.activator.wake import KubernetesWakeSender
from warmpool.contract import WAKE_ANNOTATION
from warmpool.envtest import LocalCluster

CRD = Path(__file__).resolve().parents[2] / "crds" / "warmpool.dev_inferencepools.yaml"
POOL = "llama"


async def eventually(predicate: Callable[[], Any], within: float, what: str) -> Any:
    """Poll ``predicate`` (sync, run in a thread) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.2)


def ensure_crd(k8s: kubernetes.client.ApiClient) -> None:
    ext = kubernetes.client.ApiextensionsV1Api(k8s)
    try:
        ext.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except ApiException as error:
        if error.status != 409:
            raise


def crd_established(k8s: kubernetes.client.ApiClient) -> bool:
    ext = kubernetes.client.ApiextensionsV1Api(k8s)
    crd = ext.read_custom_resource_definition("inferencepools.warmpool.dev")
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def pods_service(namespace: str) -> dict[str, Any]:
    """The headless ``<pool>-pods`` Service as the operator renders it (contract)."""
    labels = {"warmpool.dev/pool": POOL, "warmpool.dev/service-role": "pods"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{POOL}-pods", "namespace": namespace, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": {"warmpool.dev/pool": POOL},
            "ports": [
                {"name": "http", "port": 8000, "targetPort": 8000},
                {"name": "grpc", "port": 8001, "targetPort": 8001},
            ],
        },
    }


def ready_slice(namespace: str) -> dict[str, Any]:
    """A slice as the EndpointSlice controller writes for one warm and one cold pod."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{POOL}-pods-e2e",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": f"{POOL}-pods",
                "endpointslice.kubernetes.io/managed-by": "e2e.warmpool.dev",
                "warmpool.dev/pool": POOL,
                "warmpool.dev/service-role": "pods",
            },
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8000, "protocol": "TCP"},
            {"name": "grpc", "port": 8001, "protocol": "TCP"},
        ],
        "endpoints": [
            {"addresses": ["192.0.2.10"], "conditions": {"ready": True}},
            {"addresses": ["192.0.2.11"], "conditions": {"ready": False}},
        ],
    }


async def test_held_request_wakes_the_pool_and_slices_are_discovered(
    cluster: LocalCluster, k8s: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s)
    custom = kubernetes.client.CustomObjectsApi(k8s)
    discovery = kubernetes.client.DiscoveryV1Api(k8s)
    await asyncio.to_thread(ensure_crd, k8s)
    await eventually(lambda: crd_established(k8s), 60, "InferencePool CRD established")
    await asyncio.to_thread(
        custom.create_namespaced_custom_object,
        "warmpool.dev",
        "v1alpha1",
        namespace,
        "inferencepools",
        {
            "apiVersion": "warmpool.dev/v1alpha1",
            "kind": "InferencePool",
            "metadata": {"name": POOL, "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/llama"}},
        },
    )
    await asyncio.to_thread(core.create_namespaced_service, namespace, pods_service(namespace))

    def controller_slice() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="warmpool.dev/service-role=pods"
        ).items
        return bool(slices)

    # The real EndpointSlice controller makes the (empty) slice, with the Service's labels.
    await eventually(controller_slice, 60, "the -pods EndpointSlice, with the Service labels")

    api_client = await async_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    table = EndpointTable()
    watcher = EndpointSliceWatcher(api_client, table)
    watch_task = asyncio.create_task(watcher.run())
    activator = Activator(
        ActivatorConfig(bind="127.0.0.1", http_port=0, grpc_port=None, metrics_port=None),
        table,
        KubernetesWakeSender(api_client),
    )
    key = PoolKey(namespace, POOL)
    try:
        async with asyncio.timeout(60):
            await watcher.wait_synced()
        # Known (its -pods slice exists) and at zero (the slice lists nobody).
        assert key in set(table.pools())
        assert table.endpoints(key) == ()
        await activator.start()
        url = f"http://127.0.0.1:{activator.bound.http}/v2/models/m/infer"
        sent_at = datetime.now(UTC)
        async with aiohttp.ClientSession() as session:
            held = asyncio.ensure_future(
                session.post(url, data=b"{}", headers={"Host": f"{POOL}.{namespace}.svc:8000"})
            )

            def wake_annotation() -> str | None:
                pool = custom.get_namespaced_custom_object(
                    "warmpool.dev", "v1alpha1", namespace, "inferencepools", POOL
                )
                value: str | None = (pool["metadata"].get("annotations") or {}).get(WAKE_ANNOTATION)
                return value

            stamp = await eventually(wake_annotation, 60, "wake annotation on the InferencePool")
            woken = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            assert sent_at - timedelta(seconds=1) <= woken <= datetime.now(UTC)
            assert activator.hold.held(key) == 1
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
        await eventually(lambda: activator.hold.held(key) == 0, 30, "client left the queue")

        # A warm pod (and a cold one) appear in a slice: only the warm one becomes an endpoint.
        await asyncio.to_thread(
            discovery.create_namespaced_endpoint_slice, namespace, ready_slice(namespace)
        )
        warm = (Endpoint("192.0.2.10", 8000, 8001),)
        await eventually(lambda: table.endpoints(key) == warm, 60, "the warm endpoint")
        # The pod leaves: the slice is deleted, the pool is back at zero but still known.
        await asyncio.to_thread(
            discovery.delete_namespaced_endpoint_slice, f"{POOL}-pods-e2e", namespace
        )
        await eventually(lambda: table.endpoints(key) == (), 60, "back at zero")
        assert key in set(table.pools())
    finally:
        await activator.stop()
        watch_task.cancel()
        await asyncio.gather(watch_task, return_exceptions=True)
        await api_client.close()
