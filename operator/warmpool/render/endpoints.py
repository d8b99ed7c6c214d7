"""EndpointSlice `<pool>-activator`: the public Service's endpoints while the pool is at zero.

In `activator` mode the Service `<pool>` has no selector, so Kubernetes writes no endpoints for it;
this slice points it at the activator's pods, which hold each request and wake the pool. The
slice lacks `warmpool.dev/service-role: pods`, so the activator never mistakes itself for a
replica.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from warmpool.api.resource import POOL_LABEL, InferencePool
from warmpool.render.common import Obj, object_meta
from warmpool.render.labels import INFERENCE_SERVER

MANAGED_BY = "warmpool.dev"


@dataclass(frozen=True)
class ActivatorEndpoints:
    """Where the activator listens: its ready pods' IPs and its ports."""

    addresses: Sequence[str]
    """IPs of the ready activator pods (one family is used: IPv4 when any, else IPv6)."""
    http_port: int = 8000
    """The activator's HTTP port."""
    grpc_port: int = 8001
    """The activator's gRPC port."""


def activator_slice_name(pool: InferencePool) -> str:
    return f"{pool.metadata.name}-activator"


def _family(endpoints: ActivatorEndpoints) -> tuple[str, list[str]]:
    parsed = sorted({ipaddress.ip_address(a) for a in endpoints.addresses}, key=str)
    v4 = [str(a) for a in parsed if a.version == 4]
    v6 = [str(a) for a in parsed if a.version == 6]
    # One slice holds one address family; a dual-stack activator is reachable over IPv4.
    return ("IPv4", v4) if v4 or not v6 else ("IPv6", v6)


def build_activator_slice(pool: InferencePool, endpoints: ActivatorEndpoints) -> Obj:
    """The slice that routes `<pool>`'s ports `http`/`grpc` to the activator."""
    address_type, addresses = _family(endpoints)
    meta = object_meta(
        pool,
        activator_slice_name(pool),
        INFERENCE_SERVER,
        labels={
            "kubernetes.io/service-name": pool.metadata.name,
            "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            POOL_LABEL: pool.metadata.name,
        },
    )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": address_type,
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": True}} for address in addresses
        ],
        "ports": [
            {"name": "http", "port": endpoints.http_port, "protocol": "TCP"},
            {
                "name": "grpc",
                "port": endpoints.grpc_port,
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            },
        ],
    }
