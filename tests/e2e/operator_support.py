"""Running the real operator process (`warmpool operator`) against the e2e cluster.

The operator runs as a separate process with its own identity (a client certificate for user
`warmpool-operator`, or the chart's ServiceAccount token), so the apiserver's audit log tells its
requests apart from the test's.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes

from warmpool.contract import GROUP, PLURAL, POOL_LABEL, VERSION, WARM_CONDITION
from warmpool.envtest import LocalCluster, find_binary, poll_until
from warmpool.envtest.process import ComponentProcess

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / f"{GROUP}_{PLURAL}.yaml"
OPERATOR_USER = "warmpool-operator"
WARM_GATE = WARM_CONDITION
TIMEOUT = 120.0  # bound for pod lifecycles on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def warmpool_executable() -> str:
    """The console script of this venv (`.venv/bin/warmpool`)."""
    candidate = Path(sys.executable).parent / "warmpool"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("warmpool")
    if not found:
        raise FileNotFoundError("the warmpool console script is not installed in this venv")
    return found


class OperatorProcess:
    """`warmpool operator` as a real process; started healthy, stopped for sure."""

    def __init__(
        self,
        cluster: LocalCluster,
        kubeconfig: Path,
        log_dir: Path,
        extra: Sequence[str] = (),
        *,
        command: Sequence[str] = (),
    ) -> None:
        """`command`: how to start `warmpool` (default: this venv's console script)."""
        self.cluster = cluster
        self.health_port = free_port()
        self.metrics_port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        index = len(list(log_dir.glob("operator-*.log")))
        argv = [
            *(command or [warmpool_executable()]),
            "operator",
            "--kubeconfig",
            str(kubeconfig),
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--scaling-interval",
            "2",
            "--log-format",
            "json",
            "--agent-image",
            "ghcr.io/warmpool/agent:e2e",
            *extra,
        ]
        self.process = ComponentProcess("operator", argv, log_dir / f"operator-{index}.log")
        poll_until(self._healthy, what="operator /healthz", timeout=60, describe=self.log_tail)

    def _healthy(self) -> bool:
        if self.process.exit_code() is not None:
            raise AssertionError(f"operator exited:\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def metrics(self, names: Sequence[str] = ()) -> str:
        """The /metrics page; only the series `names` when given (`?name[]=`: the operator
        collects and formats nothing else, so polling one counter stays cheap)."""
        query = urllib.parse.urlencode([("name[]", name) for name in names])
        url = f"http://127.0.0.1:{self.metrics_port}/metrics" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        total = 0.0
        for line in self.metrics([name]).splitlines():
            match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if not match or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(3))
        return total

    def stop(self) -> None:
        self.process.stop(grace_seconds=15)


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError its message carries kubectl's
    stderr, so a failed setup step says why in the test report."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


def kubectl(
    cluster: LocalCluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real kubectl (built with the control plane) as the cluster's admin."""
    command = [str(find_binary("kubectl")), *args]
    done = subprocess.run(
        command, env=cluster.env(), capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode != 0:
        raise KubectlError(done.returncode, command, done.stdout, done.stderr)
    return done


def install_crd(cluster: LocalCluster, workdir: Path) -> None:
    """Apply the checked-in InferencePool CRD (server-side) and wait until it is Established.

    The wait reads the CRD's condition through the API rather than ``kubectl wait``, whose
    own watch set-up could fail on a loaded machine without saying why."""
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    name = f"{PLURAL}.{GROUP}"
    with cluster.client() as api:
        extensions = kubernetes.client.ApiextensionsV1Api(api)

        def established() -> bool:
            crd = extensions.read_custom_resource_definition(name)
            conditions = (crd.status.conditions if crd.status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        def describe() -> str:
            crd = extensions.read_custom_resource_definition(name)
            return f"status: {api.sanitize_for_serialization(crd.status)}"

        poll_until(established, what=f"crd/{name} Established", timeout=60, describe=describe)


def as_dict(api: kubernetes.client.ApiClient, obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = api.sanitize_for_serialization(obj)
    return data


def get_pool(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    pool: dict[str, Any] = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return pool


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def pool_pods(api: kubernetes.client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"{POOL_LABEL}={name}"
    )
    return [as_dict(api, pod) for pod in pods.items if pod.metadata.deletion_timestamp is None]


def open_gate(api: kubernetes.client.ApiClient, namespace: str, pod: str, now: str) -> None:
    """What the warm-up sidecar does (its own e2e is the warm-up engineer's): set the pod's
    `warmpool.dev/warm` condition True through pods/status, with its message format."""
    body = {
        "status": {
            "conditions": [
                {
                    "type": WARM_GATE,
                    "status": "True",
                    "reason": "Warm",
                    "message": f"serverReadyAt={now} warmAt={now} requests=10",
                    "lastTransitionTime": now,
                }
            ]
        }
    }
    kubernetes.client.CoreV1Api(api).patch_namespaced_pod_status(pod, namespace, body)


def operator_writes(cluster: LocalCluster, user: str, since_index: int) -> list[dict[str, Any]]:
    """Write requests `user` made after the first `since_index` audit events."""
    writes = []
    for event in cluster.audit_events()[since_index:]:
        if event.get("verb") not in {"create", "update", "patch", "delete", "deletecollection"}:
            continue
        if (event.get("user") or {}).get("username") != user:
            continue
        writes.append(event)
    return writes


def describe_writes(writes: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{w.get('verb')} {(w.get('objectRef') or {}).get('resource')}"
        f"/{(w.get('objectRef') or {}).get('subresource', '')} "
        f"{(w.get('objectRef') or {}).get('namespace')}/{(w.get('objectRef') or {}).get('name')}"
        for w in writes
    )
