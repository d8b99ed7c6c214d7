"""How each component of a LocalCluster is invoked: where its files are and its command
line (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Allocation only: Services get ClusterIPs from here, but nothing routes to them on these
# machines (there is no kube-proxy); tests reach pods by their loopback pod IPs.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_SELECTOR = "kwok.x-k8s.io/node=fake"

# Metadata for every request, logged once when the response is complete: enough to count
# the writes (verb, object, user) the operator makes, without request bodies.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Layout:
    """Where a cluster's files live under its root directory."""

    root: Path

    @property
    def pki(self) -> Path:
        """Certificates and keys."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """One ``<component>.log`` per component, and the audit log."""
        return self.root / "logs"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (JSON lines)."""
        return self.logs / "audit.log"

    @property
    def audit_policy(self) -> Path:
        """The audit policy file (AUDIT_POLICY)."""
        return self.root / "audit-policy.yaml"

    @property
    def egress_config(self) -> Path:
        """The apiserver's EgressSelectorConfiguration (egress_selector_config)."""
        return self.root / "egress-selector.yaml"

    @property
    def egress_socket(self) -> Path:
        """The Unix socket of the harness's egress proxy (netns.EgressProxy)."""
        return self.root / "egress.sock"

    @property
    def nodes(self) -> Path:
        """One state directory per real node."""
        return self.root / "nodes"

    @property
    def etcd_data(self) -> Path:
        """etcd's data directory."""
        return self.root / "etcd"

    def kubeconfig(self, stem: str) -> Path:
        """The kubeconfig of ``stem`` (admin, controller-manager, scheduler, kwok, ...)."""
        return self.root / f"{stem}.kubeconfig"

    def pki_file(self, name: str) -> str:
        """A file under pki/ as a flag value."""
        return str(self.pki / name)


def egress_selector_config(layout: Layout) -> dict[str, Any]:
    """The apiserver sends its ``cluster`` traffic (to kubelets, pods and Services: logs,
    exec, port-forward, proxy) through the harness's HTTP CONNECT proxy, which dials only
    loopback and the real nodes' own namespaces (netns.EgressProxy)."""
    return {
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [
            {
                "name": "cluster",
                "connection": {
                    "proxyProtocol": "HTTPConnect",
                    "transport": {"uds": {"udsName": str(layout.egress_socket)}},
                },
            }
        ],
    }


def etcd_argv(binary: Path, layout: Layout, ports: Ports) -> list[str]:
    """A single-member etcd on loopback (plain HTTP: only loopback clients)."""
    client_url = f"http://127.0.0.1:{ports.etcd}"
    peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binary),
        "--name=envtest",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=envtest={peer_url}",
        # Throwaway data on a disk shared by many builds: fsync only costs time.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_argv(binary: Path, layout: Layout, ports: Ports) -> list[str]:
    """kube-apiserver with RBAC, service-account tokens, the aggregation layer's
    front-proxy, the default admission plugins and a Metadata audit log."""
    pki = layout.pki_file
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={layout.pki}",
        f"--tls-cert-file={pki('apiserver.crt')}",
        f"--tls-private-key-file={pki('apiserver.key')}",
        f"--client-ca-file={pki('ca.crt')}",
        f"--kubelet-client-certificate={pki('apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={pki('apiserver-kubelet-client.key')}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki('sa.pub')}",
        f"--service-account-signing-key-file={pki('sa.key')}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        f"--egress-selector-config-file={layout.egress_config}",
        # A node's InternalIP only: its Hostname would be looked up in the host's DNS.
        "--kubelet-preferred-address-types=InternalIP",
        # The `kubernetes` Service keeps its ClusterIP but gets no endpoints: an Endpoints
        # address may not be loopback, so the default (lease) reconciler would fail every
        # 10 s on 127.0.0.1. Nothing here runs in a pod that would need that Service.
        "--endpoint-reconciler-type=none",
        f"--audit-policy-file={layout.audit_policy}",
        f"--audit-log-path={layout.audit_log}",
        "--audit-log-format=json",
        # blocking (the default, stated): each event is written before the response
        # returns, so a test reads its own writes from the log at once.
        "--audit-log-mode=blocking",
        f"--requestheader-client-ca-file={pki('front-proxy-ca.crt')}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={pki('front-proxy-client.crt')}",
        f"--proxy-client-key-file={pki('front-proxy-client.key')}",
        "--profiling=false",
    ]


def _kubeconfig_flags(layout: Layout, stem: str) -> list[str]:
    kubeconfig = layout.kubeconfig(stem)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def controller_manager_argv(binary: Path, layout: Layout, ports: Ports) -> list[str]:
    """kube-controller-manager with every default controller, no leader election, and the
    keys the ServiceAccount token and CSR signing controllers need."""
    pki = layout.pki_file
    return [
        str(binary),
        *_kubeconfig_flags(layout, "controller-manager"),
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        "--leader-elect=false",
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki('sa.key')}",
        f"--root-ca-file={pki('ca.crt')}",
        f"--cluster-signing-cert-file={pki('ca.crt')}",
        f"--cluster-signing-key-file={pki('ca.key')}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--profiling=false",
    ]


def scheduler_argv(binary: Path, layout: Layout, ports: Ports) -> list[str]:
    """kube-scheduler with the default profile and no leader election."""
    return [
        str(binary),
        *_kubeconfig_flags(layout, "scheduler"),
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_argv(
    binary: Path,
    layout: Layout,
    ports: Ports,
    *,
    config: Path,
    stages: list[Path],
    pod_cidr: str,
    node_ip: str,
) -> list[str]:
    """KWOK managing only the nodes annotated ``kwok.x-k8s.io/node=fake``, with warmpool's
    configuration and stages; pods get IPs from ``pod_cidr``."""
    return [
        str(binary),
        f"--kubeconfig={layout.kubeconfig('kwok')}",
        f"--config={config}",
        *[f"--config={stage}" for stage in stages],
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_SELECTOR}",
        f"--cidr={pod_cidr}",
        f"--node-ip={node_ip}",
        f"--server-address=127.0.0.1:{ports.kwok}",
    ]
