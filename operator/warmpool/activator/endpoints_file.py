"""A static endpoint source for runs without Kubernetes (development, tests, benchmarks).

The file is JSON: ``{"<namespace>/<pool>": [{"ip": "127.0.0.1", "http": 8000, "grpc": 8001}]}``;
an empty list is a pool at zero. It is re-read when its modification time changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from warmpool.activator.endpoints import Endpoint, EndpointTable, SliceState
from warmpool.activator.routing import PoolKey, RouteError, parse_pool_header

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


def parse_endpoints_file(text: str) -> list[SliceState]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("endpoints file must be a JSON object of '<ns>/<pool>': [endpoints]")
    states: list[SliceState] = []
    for key, entries in data.items():
        pool = parse_pool_header(key)
        if isinstance(pool, RouteError):
            raise ValueError(pool.message)
        endpoints = tuple(
            sorted(
                Endpoint(ip=str(e["ip"]), http_port=e.get("http"), grpc_port=e.get("grpc"))
                for e in entries
            )
        )
        states.append(
            SliceState(
                pool=PoolKey(pool.namespace, pool.name), slice_name="file", endpoints=endpoints
            )
        )
    return states


class EndpointsFileSource:
    """Feeds an EndpointTable from a JSON file, re-reading it when it changes."""

    def __init__(self, path: Path, table: EndpointTable) -> None:
        self._path = path
        self._table = table
        self._mtime: int | None = None

    def load(self) -> None:
        stat = self._path.stat()
        if stat.st_mtime_ns == self._mtime:
            return
        self._mtime = stat.st_mtime_ns
        self._table.replace_all(parse_endpoints_file(self._path.read_text()))

    async def run(self) -> None:
        while True:
            try:
                self.load()
            except (OSError, ValueError, KeyError) as error:
                log.warning("cannot read endpoints file %s: %s", self._path, error)
            await asyncio.sleep(POLL_SECONDS)
