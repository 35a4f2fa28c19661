"""A Sentinel-managed pool: the master is asked of the sentinels, verified, asked again.

``SENTINEL get-master-addr-by-name`` names the master; a ``ROLE`` on it must say
``master`` (a sentinel may still name a demoted node for a moment after a failover). After
a connection failure or a READONLY reply the next command asks again, so a failover is
ridden out like any outage: ``run`` waits it out, ``flush`` keeps what was not confirmed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._backends import AsyncBackend, AsyncNetworkBackend
from .._connparams import ConnParams, conn_params
from ..config import RedisPool
from ..errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    PermissionDeniedError,
    RedisReplyError,
    RedisUnavailableError,
)
from .client import AsyncConnection, AsyncServerClient


class AsyncSentinelClient(AsyncServerClient):
    """The connections to the current master of a Sentinel pool."""

    def __init__(self, pool: RedisPool, backend: AsyncNetworkBackend) -> None:
        super().__init__(pool, backend)
        self._sentinels = [conn_params(url, pool.timeout_seconds) for url in pool.sentinel_urls]
        self._master_name = str(pool.master_name)
        self._resolved = False
        self._resolving = AsyncBackend.new_lock()

    @property
    def where(self) -> str:
        """The master (when known) and the sentinels, for messages (never a password)."""
        sentinels = ", ".join(p.describe() for p in self._sentinels)
        master = self._params.describe() if self._resolved else "unknown yet"
        return f"master {self._master_name!r} ({master}) of sentinels {sentinels}"

    async def _acquire(self) -> tuple[AsyncConnection, bool]:
        self._check_open()  # closed: no sentinel is asked, no connection opened
        if not self._resolved:
            await self._resolve()
        return await super()._acquire()

    async def _ask(self, params: ConnParams, command: list[Any]) -> Any:
        client = AsyncServerClient(self.pool, self._backend, params)
        try:
            return await client.call(command, retry_safe=True)
        finally:
            await client.aclose()

    async def _resolve(self) -> None:
        async with self._resolving:
            if self._resolved:
                return
            failures: list[Exception] = []
            for sentinel in self._sentinels:
                try:
                    reply = await self._ask(
                        sentinel, [b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", self._master_name]
                    )
                except (BrokerAuthenticationError, PermissionDeniedError):
                    raise  # a wrong sentinel password or ACL needs a human, not another try
                except (BrokerConnectionError, RedisReplyError) as exc:
                    failures.append(exc)
                    continue
                if not reply:
                    failures.append(
                        RedisUnavailableError(f"MASTERDOWN no master named {self._master_name!r}")
                    )
                    continue
                host = reply[0].decode()
                candidate = dataclasses.replace(
                    self._params,
                    host=host,
                    port=int(reply[1]),
                    server_hostname=host if self._params.server_hostname else None,
                )
                try:
                    role = await self._ask(candidate, [b"ROLE"])
                except (BrokerAuthenticationError, PermissionDeniedError):
                    raise
                except (BrokerConnectionError, RedisReplyError) as exc:
                    failures.append(exc)
                    continue
                if role[0] != b"master":
                    failures.append(
                        RedisUnavailableError(f"READONLY {candidate.describe()} is no master yet")
                    )
                    continue
                self._switch(candidate)
                return
            raise RedisUnavailableError(
                f"MASTERDOWN no sentinel named a live master {self._master_name!r} "
                f"({self.where}): {failures[-1] if failures else 'no sentinel'}"
            )

    def _switch(self, params: ConnParams) -> None:
        with self._guard:
            old, self._idle = self._idle, []
            self._params = params
            self._resolved = True
            self._commands = {}  # another server: its commands are asked again
            self._scripts = set()
            self._bulk_limit = None
        for conn in old:
            self._forget(conn)

    def _release(self, conn: AsyncConnection) -> None:
        # A connection in use while the sentinels named another master (a command in
        # flight, a blocked read) still points at the old one: never reuse it, or the next
        # command would write to a demoted (or partitioned, still writable) node.
        with self._guard:
            if not self._closed and conn.where == self._params.describe():
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.abort()

    def topology_changed(self) -> None:
        """A failure or a READONLY reply: ask the sentinels again before the next command."""
        self._resolved = False

    async def execute_packed(
        self,
        payload: bytes | list[bytes],
        count: int,
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
        asking: bool = False,
    ) -> list[Any]:
        """As :meth:`AsyncServerClient.execute_packed`, on the current master."""
        replies: list[Any] = [] if out is None else out
        try:
            await super().execute_packed(
                payload, count, out=replies, timeout=timeout, retry_safe=retry_safe, asking=asking
            )
        except BrokerConnectionError:
            self._resolved = False
            raise
        if any(isinstance(r, RedisUnavailableError) for r in replies):
            self._resolved = False
        return replies
