"""The clients of one engine: one per configured pool, of the pool's topology."""

from __future__ import annotations

import weakref
from typing import Any

from .._backends import AsyncNetworkBackend
from .._keys import key_slot
from ..config import Config
from ..errors import ClosedError
from .client import AsyncCommands, AsyncServerClient
from .cluster import AsyncClusterClient
from .sentinel import AsyncSentinelClient

#: The client of one configured pool's topology (one server, a Sentinel-managed master or a
#: Cluster): ``route`` / ``for_slot`` / ``topology_changed`` / ``aclose``.
AsyncTopology = AsyncServerClient | AsyncClusterClient


class AsyncClients:
    """The topology clients of one engine, created on first use, one per pool code."""

    def __init__(self, config: Config, backend: AsyncNetworkBackend | None = None) -> None:
        self.config = config
        self._backend = backend or AsyncNetworkBackend()
        self._clients: dict[str, AsyncTopology] = {}
        #: Locks being kept in the background; the engine releases them when it closes.
        self.locks: set[Any] = set()
        #: Set once the engine closed: every later use raises :class:`ClosedError`.
        self.closed = False
        #: The brokers of this engine's contexts (their buffers are counted on close).
        self.brokers: weakref.WeakSet[Any] = weakref.WeakSet()

    def check_open(self) -> None:
        """Raise :class:`ClosedError` when the engine is closed."""
        if self.closed:
            raise ClosedError("the engine is closed")

    def client(self, code: str) -> AsyncTopology:
        """The client of pool ``code`` (no IO: connections open on first command), whatever
        its topology: one server, a Sentinel-managed master or a Cluster."""
        self.check_open()
        found = self._clients.get(code)
        if found is None:
            pool = self.config.pool(code)
            if pool.topology == "cluster":
                found = AsyncClusterClient(pool, self._backend)
            elif pool.topology == "sentinel":
                found = AsyncSentinelClient(pool, self._backend)
            else:
                found = AsyncServerClient(pool, self._backend)
            self._clients[code] = found
        return found

    def for_stream(self, stream: str) -> AsyncCommands:
        """The client for the commands of ``stream`` (its slot's master on a Cluster);
        :class:`UnknownStreamError` when no pool declares it."""
        client = self.client(self.config.pool_for_stream(stream).code)
        if isinstance(client, AsyncClusterClient):
            return client.for_slot(key_slot(stream))
        return client

    async def aclose(self) -> None:
        """Release the locks still kept (stopping their keepers), then close every client."""
        self.closed = True
        try:
            for lock in list(self.locks):
                await lock.release()
        finally:
            clients, self._clients = list(self._clients.values()), {}
            for found in clients:
                await found.aclose()
