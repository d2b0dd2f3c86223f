"""The client's HTTP connections, bound to the running event loop: one shared pool for probes
and metrics, and *lanes* for requests, each lane one keep-alive connection used by one request
at a time.

httpcore's pool walks all its connections (and polls each idle socket) whenever a request
enters or leaves it, so one pool of hundreds of connections costs milliseconds of CPU per
request (measured on a 2-core VM: 5.4 ms at 64 in flight, 12.9 ms at 256; 1.2 ms with lanes,
issue 26 §4). Here each connection is a pool of its own, handed to one request at a time from a
free list; past ``max_connections`` lanes to an endpoint a request queues in the least-busy lane.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx


class Pools:
    """Connections of one client (see the module's docstring)."""

    def __init__(self, timeout: float, max_connections: int, transport: httpx.AsyncBaseTransport | None) -> None:
        self.timeout = timeout
        self.max_connections = max_connections
        self._transport = transport
        self._tls: ssl.SSLContext | None = None
        self._http: httpx.AsyncClient | None = None
        self.lanes: dict[str, list[list[Any]]] = {}
        """Endpoint -> its lanes, each ``[a one-connection pool, requests in it]``."""
        self.free: dict[str, list[list[Any]]] = {}
        """Endpoint -> its lanes with no request in them."""
        self._loop: asyncio.AbstractEventLoop | None = None

    def _new_pool(self, max_connections: int) -> httpx.AsyncClient:
        if self._tls is None:  # made once: building one costs ~50 ms of CPU (the CA bundle)
            self._tls = ssl.create_default_context()
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=self._transport,
            verify=self._tls,
        )

    def _check_loop(self) -> None:
        """Connections belong to the loop that opened them, so pools used from a new loop
        (e.g. successive ``asyncio.run`` calls) are made afresh there."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._http, self.lanes, self.free, self._loop = None, {}, {}, loop

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared pool of the running event loop (created on first use)."""
        self._check_loop()
        if self._http is None or self._http.is_closed:
            self._http = self._new_pool(self.max_connections)
        return self._http

    def lease(self, endpoint: str) -> list[Any]:
        """A lane to ``endpoint``, free if one is; give it back with :meth:`release`."""
        self._check_loop()
        free = self.free.setdefault(endpoint, [])
        if free:
            lane = free.pop()  # the most recently used: its connection is the warmest
        else:
            lanes = self.lanes.setdefault(endpoint, [])
            if len(lanes) < self.max_connections:
                lane = [self._new_pool(1), 0]
                lanes.append(lane)
            else:
                lane = min(lanes, key=lambda x: x[1])
        lane[1] += 1
        return lane

    def release(self, endpoint: str, lane: list[Any]) -> None:
        lane[1] -= 1
        if lane[1] == 0 and endpoint in self.free:
            self.free[endpoint].append(lane)

    async def aclose(self) -> None:
        """Closes the pools (those made in another, now gone, loop are just dropped)."""
        pools = [self._http] + [lane[0] for lanes in self.lanes.values() for lane in lanes]
        self._http, self.lanes, self.free = None, {}, {}
        if self._loop is asyncio.get_running_loop():
            for pool in pools:
                if pool is not None:
                    await pool.aclose()
        self._loop = None
