"""TCP between network namespaces without routes: sockets made inside a namespace, relays
that join a connection accepted in one namespace to one dialled in another, and the
apiserver's egress proxy.

A real node runs in a network namespace of its own with no route to anywhere else (see
realnode.py). Nothing on the host routes into it either: the harness carries each
connection across in user space, so no host route, address or firewall rule is ever needed
and a packet to a pod or Service address has no way to reach the host's default route.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
_CONNECT_TIMEOUT = 10.0
_HEADER_LIMIT = 8192
_libc = ctypes.CDLL(None, use_errno=True)

Dialer = Callable[[str, int], socket.socket]


def dial_host(host: str, port: int) -> socket.socket:
    """A TCP connection from the harness's own network namespace (blocking once connected: a
    relayed connection may stay idle, like a watch, for as long as its ends want)."""
    sock = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
    sock.settimeout(None)
    return sock


def host_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket in the harness's own network namespace."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


class NetnsSockets:
    """Makes sockets inside the network namespace at ``netns_path`` (e.g.
    ``/proc/<pid>/ns/net``).

    setns(2) moves only the calling thread, so one thread of this class's own joins the
    namespace and creates every socket there; a socket stays in the namespace it was
    created in, whichever thread uses it later. :meth:`close` ends that thread, which
    would otherwise keep the namespace alive.
    """

    def __init__(self, netns_path: Path) -> None:
        self.netns_path = netns_path
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="netns", initializer=self._join
        )

    def _join(self) -> None:
        fd = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns({self.netns_path}): {os.strerror(errno)}")
        finally:
            os.close(fd)

    def new_socket(self) -> socket.socket:
        """A new IPv4 TCP socket inside the namespace."""
        return self._executor.submit(socket.socket, socket.AF_INET, socket.SOCK_STREAM).result()

    def listen(self, host: str, port: int) -> socket.socket:
        """A listening socket bound to ``host:port`` inside the namespace."""
        sock = self.new_socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        return sock

    def dial(self, host: str, port: int) -> socket.socket:
        """A TCP connection made inside the namespace."""
        sock = self.new_socket()
        try:
            sock.settimeout(_CONNECT_TIMEOUT)
            sock.connect((host, port))
            sock.settimeout(None)
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class _Connections:
    """The sockets of open relayed connections, closed together on shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def discard(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)
        for sock in socks:
            sock.close()

    def close_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until ``source`` ends, then end ``sink``'s sending side."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _join(first: socket.socket, second: socket.socket, connections: _Connections) -> None:
    """Relay between two connected sockets until both directions end; then close both."""
    connections.add(first, second)
    other = threading.Thread(target=_pump, args=(second, first), daemon=True)
    other.start()
    _pump(first, second)
    other.join()
    connections.discard(first, second)


class _Server:
    """An accept loop on ``listener`` that hands each connection to ``serve`` in a thread."""

    def __init__(self, listener: socket.socket, name: str) -> None:
        self.listener = listener
        self.name = name
        self.connections = _Connections()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve_safely, args=(client,), daemon=True).start()

    def _serve_safely(self, client: socket.socket) -> None:
        try:
            self.serve(client)
        except OSError as error:
            log.debug("%s: %s", self.name, error)
            client.close()

    def serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self._thread.join(timeout=5)
        self.connections.close_all()


class TcpRelay(_Server):
    """Joins every connection accepted on ``listener`` to a new connection to
    ``target`` made by ``dial`` (in whichever namespace ``dial`` makes sockets)."""

    def __init__(
        self, listener: socket.socket, dial: Dialer, target: tuple[str, int], name: str
    ) -> None:
        super().__init__(listener, name)
        self._dial = dial
        self.target = target

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def serve(self, client: socket.socket) -> None:
        try:
            upstream = self._dial(*self.target)
        except OSError:
            client.close()
            raise
        _join(client, upstream, self.connections)


EgressRoute = Callable[[str], Dialer | None]
"""Given the host of a CONNECT request, the dialer to reach it with, or None to refuse."""


class EgressProxy(_Server):
    """The kube-apiserver's egress proxy for its ``cluster`` traffic (kubelets, pods,
    Services: logs, exec, port-forward, proxy), an HTTP CONNECT proxy on a Unix socket
    (``--egress-selector-config-file``).

    ``route`` decides per destination: loopback is dialled from the host, a real node's
    addresses inside that node's namespace, anything else is refused with 403 and
    recorded in :attr:`refused`, so the apiserver can never send a packet to a node or pod
    address along the host's default route.
    """

    def __init__(self, path: Path, route: EgressRoute) -> None:
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(128)
        super().__init__(listener, "egress-proxy")
        self.path = path
        self._route = route
        self.refused: list[str] = []

    def serve(self, client: socket.socket) -> None:
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = client.recv(1024)
            if not chunk or len(header) > _HEADER_LIMIT:
                client.close()
                return
            header += chunk
        head, _, rest = header.partition(b"\r\n\r\n")
        method, _, remainder = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        authority = remainder.split(" ", 1)[0]
        host, _, port = authority.rpartition(":")
        host = host.strip("[]")
        dial = self._route(host) if method == "CONNECT" and port.isdigit() else None
        if dial is None:
            self.refused.append(authority)
            log.warning("egress proxy refused %s %s", method, authority)
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        try:
            upstream = dial(host, int(port))
        except OSError as error:
            client.sendall(f"HTTP/1.1 502 Bad Gateway\r\n\r\n{error}".encode())
            client.close()
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        _join(client, upstream, self.connections)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
