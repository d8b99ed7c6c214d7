"""The pool's Services (pure).

`<pool>` is the address clients use. In `direct` mode it selects the warm pods; in `activator`
mode (no warm replica) it has no selector and its endpoints are the activator's, written by
warmpool as the EndpointSlice `<pool>-activator` (see endpoints.py), so a request at zero is held
instead of refused. `<pool>-pods` is headless and always selects the pods: the activator and
Prometheus find warm replicas through its EndpointSlices, which Kubernetes labels like the
Service (`warmpool.dev/pool`, `warmpool.dev/service-role: pods`).
"""

from __future__ import annotations

from typing import Literal

from warmpool.api.resource import InferencePool
from warmpool.contract import SERVICE_ROLE_LABEL, SERVICE_ROLE_PODS, SERVICE_ROLE_PUBLIC
from warmpool.render.common import Obj, object_meta
from warmpool.render.labels import INFERENCE_SERVER, server_selector

ServiceMode = Literal["direct", "activator"]

#: Ports of the public Service, whatever the server's container ports are.
PUBLIC_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


def _port(name: str, port: int) -> Obj:
    out: Obj = {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
    if name == "grpc":
        out["appProtocol"] = "kubernetes.io/h2c"
    return out


def build_public_service(pool: InferencePool, *, mode: ServiceMode) -> Obj:
    """Service `<pool>`: selects the pods in `direct` mode, none in `activator` mode."""
    name = pool.metadata.name
    meta = object_meta(
        pool, name, INFERENCE_SERVER, labels={SERVICE_ROLE_LABEL: SERVICE_ROLE_PUBLIC}
    )
    spec: Obj = {"type": "ClusterIP"}
    if mode == "direct":
        spec["selector"] = server_selector(name)
    spec["ports"] = [_port(port_name, port) for port_name, port in PUBLIC_PORTS.items()]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def pods_service_name(pool: InferencePool) -> str:
    return f"{pool.metadata.name}-pods"


def build_pods_service(pool: InferencePool) -> Obj:
    """Headless Service `<pool>-pods`: ready (= warm) replicas, found by the activator."""
    ports = pool.spec.server.ports
    meta = object_meta(
        pool,
        pods_service_name(pool),
        INFERENCE_SERVER,
        labels={SERVICE_ROLE_LABEL: SERVICE_ROLE_PODS},
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "clusterIP": "None",
            "selector": server_selector(pool.metadata.name),
            # Not-ready pods are cold: they must never be listed as ready endpoints.
            "publishNotReadyAddresses": False,
            "ports": [
                _port("http", ports.http),
                _port("grpc", ports.grpc),
                _port("metrics", ports.metrics),
            ],
        },
    }
