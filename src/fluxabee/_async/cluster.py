"""A Redis Cluster pool: a connection pool per node, the slot map, and redirects.

The rules (which node, what MOVED / ASK / a failure mean) are in :mod:`fluxabee._cluster`;
this module asks the cluster for its map (CLUSTER SHARDS, or CLUSTER SLOTS on Redis 6.2),
keeps an :class:`~fluxabee._async.client.AsyncServerClient` per master, and follows
redirects. The broker and the consumers see the same surface as for one server:
``route`` groups commands by node (``flush``, statistics) and ``for_slot`` gives a client
for the commands of one slot (a consumer's stream, its lock and dead letters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .._backends import AsyncBackend, AsyncNetworkBackend
from .._cluster import (
    MAX_REDIRECTS,
    Address,
    Redirect,
    SlotMap,
    parse_shards,
    parse_slots,
    redirect_of,
    topology_changed,
)
from .._connparams import conn_params
from .._protocol import Command, split_packed
from .._scripts import ScriptCall
from ..config import RedisPool
from ..errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    ClosedError,
    RedisReplyError,
    RedisUnavailableError,
)
from .client import AsyncServerClient, call_one

#: Sends commands ``start:`` to a node (asking or not) and appends their replies to ``out``.
_Send = Callable[[AsyncServerClient, bool, int, list[Any]], Any]


class AsyncClusterClient:
    """The masters of one Cluster pool, created on first use, and the map of their slots."""

    def __init__(self, pool: RedisPool, backend: AsyncNetworkBackend) -> None:
        self.pool = pool
        self._backend = backend
        self._seeds = [conn_params(url, pool.timeout_seconds) for url in pool.urls]
        self._base = self._seeds[0]  # credentials and TLS shared by every node
        self._tls = self._base.tls is not None
        self._nodes: dict[Address, AsyncServerClient] = {}
        #: Pools of nodes that left the map with a connection still in use.
        self._departed: list[AsyncServerClient] = []
        self._slots: dict[int, AsyncSlotClient] = {}
        self._map: SlotMap | None = None
        self._stale = True
        self._refreshing = AsyncBackend.new_lock()
        self._closed = False

    @property
    def where(self) -> str:
        """The seeds' addresses, for messages (never a password)."""
        return "cluster " + ", ".join(p.describe() for p in self._seeds)

    def node(self, address: Address) -> AsyncServerClient:
        """The connection pool of the node at ``address`` (no IO); :class:`ClosedError`
        once the engine closed (as a single server's pool: no new node, no new connection)."""
        if self._closed:
            raise ClosedError(f"the engine is closed (pool {self.pool.code!r})")
        found = self._nodes.get(address)
        if found is None:
            params = dataclasses.replace(
                self._base,
                host=address.host,
                port=address.port,
                server_hostname=address.host if self._base.server_hostname else None,
            )
            # setdefault, not a check-then-set: the sync twin's lock keeper thread may ask
            # for the same node at the same time, and a pool replaced in the dict would
            # keep its connections where aclose never finds them.
            found = self._nodes.setdefault(
                address, AsyncServerClient(self.pool, self._backend, params)
            )
            if self._closed:  # closed meanwhile: the pool has no connection, none opens
                raise ClosedError(f"the engine is closed (pool {self.pool.code!r})")
        return found

    async def slot_map(self) -> SlotMap:
        """The current map, asked of the cluster when there is none or it may be stale."""
        current = self._map
        if current is not None and not self._stale:
            return current
        async with self._refreshing:
            if self._map is None or self._stale:
                self._map = await self._ask_map()
                self._stale = False
                self._drop_departed(self._map)
            return self._map

    def _drop_departed(self, current: SlotMap) -> None:
        """Close the connections of nodes that serve no slot any more (a demoted master, a
        removed node, a seed that is a replica): kept, they would stay open for the life
        of the engine. One still in use is closed on a later refresh, or by :meth:`aclose`."""
        serving = set(current.nodes())
        for address in [a for a in list(self._nodes) if a not in serving]:
            node = self._nodes.pop(address, None)
            if node is not None:
                self._departed.append(node)
        self._departed = [node for node in self._departed if node.close_idle()]

    async def _ask_map(self) -> SlotMap:
        known = self._map.nodes() if self._map is not None else []
        seeds = [Address(str(p.host), p.port) for p in self._seeds]
        failures: list[Exception] = []
        for address in dict.fromkeys([*known, *seeds]):
            node = self.node(address)
            try:
                try:
                    ranges = parse_shards(
                        await node.call([b"CLUSTER", b"SHARDS"], retry_safe=True), tls=self._tls
                    )
                except RedisReplyError as exc:
                    if exc.prefix != "ERR" or "shards" not in str(exc).lower():
                        raise
                    ranges = parse_slots(await node.call([b"CLUSTER", b"SLOTS"], retry_safe=True))
            except BrokerAuthenticationError:
                raise  # a wrong password is the same on every node: it needs a human
            except (BrokerConnectionError, RedisUnavailableError) as exc:
                failures.append(exc)
                continue
            if ranges:
                return SlotMap(ranges)
            failures.append(RedisUnavailableError(f"CLUSTERDOWN {address} serves no slots"))
        raise BrokerConnectionError(
            f"no node of the Cluster pool {self.pool.code!r} gave its slot map "
            f"({self.where}): {failures[-1] if failures else 'no node'}"
        )

    def moved(self, redirect: Redirect) -> None:
        """A MOVED reply: note the slot's new owner now, ask for the whole map next time."""
        if self._map is not None:
            self._map.moved(redirect.slot, redirect.address)
        self._stale = True

    def topology_changed(self) -> None:
        """A node failed or answered READONLY / CLUSTERDOWN: ask for the map next time."""
        self._stale = True

    async def owner(self, slot: int) -> AsyncServerClient:
        """The client of the master serving ``slot``."""
        address = (await self.slot_map()).owner(slot)
        if address is None:
            self._stale = True
            raise RedisUnavailableError(f"CLUSTERDOWN no node serves slot {slot}")
        return self.node(address)

    async def route(self, slots: Sequence[int]) -> list[tuple[AsyncServerClient, list[int]]]:
        """``slots``' indexes grouped by the master that serves them (one pipeline each)."""
        groups = (await self.slot_map()).group(slots)
        if None in groups:
            self._stale = True
            raise RedisUnavailableError(f"CLUSTERDOWN no node serves slot {slots[groups[None][0]]}")
        return [(self.node(address), indexes) for address, indexes in groups.items() if address]

    def for_slot(self, slot: int) -> AsyncSlotClient:
        """A client for the commands of one slot (a stream and its companions)."""
        found = self._slots.get(slot)
        if found is None:
            found = self._slots.setdefault(slot, AsyncSlotClient(self, slot))
        return found

    async def aclose(self) -> None:
        """Close every node's connections; the client cannot be used afterwards."""
        self._closed = True
        nodes, self._nodes = list(self._nodes.values()) + self._departed, {}
        self._departed = []
        for node in nodes:
            await node.aclose()


class AsyncSlotClient:
    """The commands of one slot, sent to whichever master serves it, redirects followed."""

    def __init__(self, cluster: AsyncClusterClient, slot: int) -> None:
        self._cluster = cluster
        self.slot = slot

    @property
    def where(self) -> str:
        """The cluster's seeds, for messages."""
        return self._cluster.where

    async def _send(self, send: _Send, out: list[Any] | None) -> list[Any]:
        replies: list[Any] = [] if out is None else out
        cluster, start, target = self._cluster, 0, None
        for _ in range(MAX_REDIRECTS + 1):
            node = cluster.node(target) if target is not None else await cluster.owner(self.slot)
            got: list[Any] = []
            try:
                await send(node, target is not None, start, got)
            except BrokerConnectionError:
                cluster.topology_changed()
                replies.extend(got)
                raise
            except BaseException:
                replies.extend(got)
                raise
            first = next((i for i, r in enumerate(got) if redirect_of(r) is not None), None)
            if first is None or any(redirect_of(r) is None for r in got[first:]):
                if any(topology_changed(r) for r in got):
                    cluster.topology_changed()
                replies.extend(got)
                return replies
            replies.extend(got[:first])  # these ran; the rest did not: send them there
            start += first
            redirect = redirect_of(got[first])
            assert redirect is not None
            if redirect.ask:
                target = redirect.address
            else:
                cluster.moved(redirect)
                target = None
        raise BrokerConnectionError(
            f"slot {self.slot} of {self.where} moved more than {MAX_REDIRECTS} times"
        )

    async def execute_packed(
        self,
        payload: bytes | list[bytes],
        count: int,
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> list[Any]:
        """As :meth:`AsyncServerClient.execute_packed`, on the slot's master."""

        async def send(node: AsyncServerClient, asking: bool, start: int, got: list[Any]) -> None:
            part = payload if start == 0 else split_packed(payload, count)[start:]
            await node.execute_packed(
                part, count - start, out=got, timeout=timeout, retry_safe=retry_safe, asking=asking
            )

        return await self._send(send, out)

    async def execute(
        self,
        commands: Sequence[Command | ScriptCall],
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> list[Any]:
        """As :meth:`AsyncServerClient.execute`, on the slot's master."""

        async def send(node: AsyncServerClient, asking: bool, start: int, got: list[Any]) -> None:
            await node.execute(
                commands[start:], out=got, timeout=timeout, retry_safe=retry_safe, asking=asking
            )

        return await self._send(send, out)

    async def call(
        self,
        command: Command | ScriptCall,
        *,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> Any:
        """Run one command; an error reply is raised."""
        return await call_one(self, command, timeout, retry_safe)

    async def bulk_limit(self) -> int:
        """The slot's master's ``proto-max-bulk-len``."""
        return await (await self._cluster.owner(self.slot)).bulk_limit()

    async def has_command(self, name: str) -> bool:
        """Whether the slot's master knows command ``name`` (cached per node)."""
        return await (await self._cluster.owner(self.slot)).has_command(name)

    def forget_bulk_limit(self) -> None:
        """Ask the master for its limit again next time."""
        for node in list(self._cluster._nodes.values()):
            node.forget_bulk_limit()
