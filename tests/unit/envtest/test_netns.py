"""The cross-namespace plumbing of a real node (warmpool.envtest.netns) on real sockets and a
real network namespace made for the test (``unshare --net``, root only): what a relay
carries, that a namespace without routes reaches nothing, and what the apiserver's egress
proxy dials or refuses. No control plane needed."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.components import component_unavailable
from warmpool.envtest import poll_until
from warmpool.envtest.netns import (
    Dialer,
    EgressProxy,
    NetnsSockets,
    TcpRelay,
    dial_host,
    host_listener,
    is_loopback,
)


def _echo_server(listener: socket.socket) -> None:
    """Answers every connection with what it received, upper-cased, then closes."""

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()


def _exchange(sock: socket.socket, payload: bytes) -> bytes:
    with sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


@pytest.fixture
def netns() -> Iterator[Path]:
    """A fresh network namespace (only a down ``lo``), held by a sleeping process."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        component_unavailable("network namespaces", "needs root and util-linux unshare")
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    path = Path(f"/proc/{holder.pid}/ns/net")
    own = os.stat("/proc/self/ns/net").st_ino
    try:
        poll_until(lambda: os.stat(path).st_ino != own, what="unshare --net", timeout=10)
        subprocess.run(
            ["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True, timeout=30
        )
        yield path
    finally:
        holder.kill()
        holder.wait()


def test_relay_carries_both_directions_and_closes_its_connections() -> None:
    upstream = host_listener("127.0.0.1", 0)
    _echo_server(upstream)
    relay = TcpRelay(host_listener("127.0.0.1", 0), dial_host, upstream.getsockname(), "t")
    relay.start()
    try:
        client = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
        assert _exchange(client, b"hello " * 10000) == b"HELLO " * 10000
    finally:
        relay.close()
        upstream.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=2)


def test_a_socket_made_in_the_namespace_is_reachable_only_through_a_relay(netns: Path) -> None:
    sockets = NetnsSockets(netns)
    try:
        inside = sockets.listen("127.0.0.1", 0)
        port = inside.getsockname()[1]
        _echo_server(inside)
        # The namespace's loopback is not the host's: nothing of the host reaches it directly.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        relay = TcpRelay(host_listener("127.0.0.1", 0), sockets.dial, ("127.0.0.1", port), "in")
        relay.start()
        try:
            client = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
            assert _exchange(client, b"pod") == b"POD"
        finally:
            relay.close()
            inside.close()
    finally:
        sockets.close()


def test_a_namespace_without_routes_reaches_no_other_address(netns: Path) -> None:
    """A pod or Service address dialled from inside fails at once (no route), where on the
    host it would have followed the default route."""
    sockets = NetnsSockets(netns)
    try:
        for address in ("10.244.0.7", "10.96.0.1", "203.0.113.9"):
            with pytest.raises(OSError) as raised:
                sockets.dial(address, 80)
            assert raised.value.errno == errno.ENETUNREACH, (address, raised.value)
    finally:
        sockets.close()


def _connect_through(proxy: Path, authority: str) -> tuple[bytes, socket.socket]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(proxy))
    client.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(1)
        if not chunk:
            break
        head += chunk
    return head, client


def test_egress_proxy_dials_what_its_route_allows_and_refuses_the_rest(tmp_path: Path) -> None:
    upstream = host_listener("127.0.0.1", 0)
    _echo_server(upstream)
    asked: list[str] = []

    def route(host: str) -> Dialer | None:
        asked.append(host)
        return dial_host if is_loopback(host) else None

    proxy = EgressProxy(tmp_path / "egress.sock", route)
    proxy.start()
    try:
        head, conn = _connect_through(proxy.path, f"127.0.0.1:{upstream.getsockname()[1]}")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert _exchange(conn, b"kubelet") == b"KUBELET"

        head, conn = _connect_through(proxy.path, "10.200.0.2:10250")
        conn.close()
        assert head.startswith(b"HTTP/1.1 403"), head
        assert proxy.refused == ["10.200.0.2:10250"]
        assert asked == ["127.0.0.1", "10.200.0.2"]
    finally:
        proxy.close()
        upstream.close()


def test_a_relayed_connection_may_stay_idle() -> None:
    """A watch sends nothing for minutes: the relay must not give up on an idle upstream."""
    upstream = host_listener("127.0.0.1", 0)
    _echo_server(upstream)
    assert dial_host(*upstream.getsockname()).gettimeout() is None
    upstream.close()
