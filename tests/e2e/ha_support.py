"""Two `warmpool operator --leader-elect` processes against the e2e cluster, and what the
apiserver's audit log says about who wrote what and when (shared by test_ha.py and
benchmarks/ha.py).

Each candidate runs as its own user (a client certificate), so every request in the audit log
names the replica that made it; POD_NAME (what the chart sets from the downward API) makes the
Lease's holderIdentity say which replica holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
from operator_support import OperatorProcess

from warmpool.envtest import LocalCluster

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class ElectionTimings:
    lease_duration: int
    renew_deadline: int
    retry_period: int

    def flags(self) -> list[str]:
        return [
            "--lease-duration",
            str(self.lease_duration),
            "--renew-deadline",
            str(self.renew_deadline),
            "--retry-period",
            str(self.retry_period),
        ]


class PartitionableLink:
    """A loopback TCP relay between one replica and the apiserver, which the test can cut: a
    network partition of that replica alone (the apiserver and the other replicas stay up).
    The relay is plain TCP, so TLS still runs end to end between the replica and the
    apiserver (whose certificate is for 127.0.0.1, whatever the port)."""

    def __init__(self, server: str) -> None:
        match = re.match(r"^https://([^:/]+):(\d+)$", server)
        if not match:
            raise ValueError(f"not an https://host:port server: {server}")
        self._server = server
        self._target = (match.group(1), int(match.group(2)))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False
        threading.Thread(target=self._accept, name="ha-link", daemon=True).start()

    def rewrite(self, kubeconfig: Path) -> Path:
        """A copy of `kubeconfig` that talks to the apiserver through this link."""
        relayed = kubeconfig.with_name(f"{kubeconfig.stem}-linked{kubeconfig.suffix}")
        relayed.write_text(kubeconfig.read_text().replace(self._server, self.address))
        return relayed

    def cut(self) -> None:
        """Drop every connection and refuse new ones (until close)."""
        with self._lock:
            self._cut = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._cut:
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self._target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class Candidate:
    """One replica: a name (its POD_NAME and the prefix of its identity), a user, a process."""

    def __init__(
        self,
        cluster: LocalCluster,
        name: str,
        namespace: str,
        lease: str,
        timings: ElectionTimings,
        extra: Sequence[str] = (),
        via: PartitionableLink | None = None,
        account: tuple[str, Path] | None = None,
        election: Sequence[str] | None = None,
    ) -> None:
        """`account`: (user, kubeconfig) to run as instead of a user of its own; `election`:
        leader-election flags instead of `--leader-elect` with `lease` and `timings`."""
        self.name = name
        # One user per replica and test: the audit log of the session's cluster is shared.
        if account is None:
            self.user = f"warmpool-{name}-{namespace}"
            kubeconfig = cluster.kubeconfig_for_user(self.user, groups=["system:masters"])
        else:
            self.user, kubeconfig = account
        if via is not None:
            kubeconfig = via.rewrite(kubeconfig)
        if election is None:
            election = [
                "--namespace",
                namespace,
                "--leader-elect",
                "--leader-election-namespace",
                namespace,
                "--leader-election-id",
                lease,
                *timings.flags(),
            ]
        argv = [*election, *extra]
        previous = os.environ.get("POD_NAME")
        os.environ["POD_NAME"] = name  # inherited by the process started here
        try:
            self.process = OperatorProcess(cluster, kubeconfig, cluster.logs_dir, extra=argv)
        finally:
            if previous is None:
                del os.environ["POD_NAME"]
            else:
                os.environ["POD_NAME"] = previous

    def health(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.process.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read().decode())
        return body

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown code runs (the process is reaped by stop())."""
        os.killpg(self.process.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM, as a rolling update or a drain does; returns once it has exited."""
        self.process.stop()

    def exit_code(self) -> int | None:
        return self.process.process.exit_code()

    def stop(self) -> None:
        self.process.stop()


def read_lease(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The Lease's spec ({} when it does not exist)."""
    try:
        lease = kubernetes.client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return {}
        raise
    spec: dict[str, Any] = api.sanitize_for_serialization(lease.spec)  # type: ignore[no-untyped-call]
    return spec


def holder_name(spec: dict[str, Any]) -> str | None:
    """The candidate name in holderIdentity (`<POD_NAME>_<random>`), None when released."""
    holder = str(spec.get("holderIdentity") or "")
    return holder.rpartition("_")[0] or None if holder else None


def audit_time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["requestReceivedTimestamp"]).replace("Z", "+00:00"))


def is_lease(event: dict[str, Any]) -> bool:
    return (event.get("objectRef") or {}).get("resource") == "leases"


def succeeded(event: dict[str, Any]) -> bool:
    return int((event.get("responseStatus") or {}).get("code") or 0) < 300


def writes_by(events: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    """Write requests `user` made (successful or not), in the order they were received."""
    found = [
        event
        for event in events
        if event.get("verb") in WRITE_VERBS
        and (event.get("user") or {}).get("username") == user
        and event.get("stage") == "ResponseComplete"
    ]
    return sorted(found, key=audit_time)


def first_work_write(events: list[dict[str, Any]], user: str) -> dict[str, Any] | None:
    """`user`'s first successful write that is not the Lease: the first sign of a reconcile."""
    for event in writes_by(events, user):
        if not is_lease(event) and succeeded(event):
            return event
    return None


def lease_writes(events: list[dict[str, Any]], user: str, lease: str) -> list[dict[str, Any]]:
    return [
        event
        for event in writes_by(events, user)
        if is_lease(event) and (event.get("objectRef") or {}).get("name") == lease
    ]


def describe(events: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{event.get('requestReceivedTimestamp')} {event.get('verb')} "
        f"{(event.get('objectRef') or {}).get('resource')} "
        f"{(event.get('objectRef') or {}).get('name')} "
        f"-> {(event.get('responseStatus') or {}).get('code')}"
        for event in events
    )
