"""One Redis pool's connection: raw pipelined commands, errors translated at this edge.

Commands are packed by :mod:`fluxabee._protocol` and written in one go through a pooled
redis-py connection; replies are read raw (hiredis), one per command, so a failure part-way
tells exactly which commands Redis confirmed. redis-py's own retries are off: a resent
pipeline of XADDs would duplicate events, so retrying is decided by fluxabee itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from .._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from .._protocol import pack_commands
from ..config import Config, RedisPool
from ..errors import RedisReplyError, translate, translate_redis_errors

Command = Sequence[bytes | str | int | float]


class AsyncPoolClient:
    """The connection pool of one configured Redis pool."""

    def __init__(self, pool: RedisPool) -> None:
        self.pool = pool
        self.redis: Redis = Redis.from_url(
            pool.url,
            socket_timeout=DEFAULT_SOCKET_TIMEOUT,
            socket_connect_timeout=DEFAULT_CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )

    async def execute(
        self,
        commands: Sequence[Command],
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Send ``commands`` in one write, read one raw reply each.

        An error reply becomes a :class:`RedisReplyError` in its slot (the others go on).
        A connection failure raises :class:`BrokerConnectionError`; the replies read before
        it are already in ``out`` (pass a list to learn how far it got).
        """
        replies: list[Any] = [] if out is None else out
        pool = self.redis.connection_pool
        payload = pack_commands(commands)
        with translate_redis_errors():
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command([payload], check_health=False)
                for _ in range(len(commands)):
                    try:
                        if timeout is None:
                            reply = await conn.read_response()
                        else:
                            reply = await conn.read_response(timeout=timeout)
                    except ResponseError as exc:
                        reply = translate(exc)
                    replies.append(reply)
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
        return replies

    async def call(self, command: Command, *, timeout: float | None = None) -> Any:
        """Run one command; an error reply is raised as a fluxabee error."""
        reply = (await self.execute([command], timeout=timeout))[0]
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        with translate_redis_errors():
            await self.redis.aclose()


class AsyncClients:
    """The pool clients of one engine, created on first use, one per pool code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: dict[str, AsyncPoolClient] = {}
        #: Consumers holding background work (a lock keeper), closed with the engine.
        self.closables: weakref.WeakSet[Any] = weakref.WeakSet()

    def client(self, code: str) -> AsyncPoolClient:
        """The client of pool ``code`` (no IO: connections open on first command)."""
        found = self._clients.get(code)
        if found is None:
            found = self._clients[code] = AsyncPoolClient(self.config.pool(code))
        return found

    async def aclose(self) -> None:
        """Close live consumers (releasing their locks), then every pool client."""
        for closable in list(self.closables):
            await closable.aclose()
        clients, self._clients = list(self._clients.values()), {}
        for found in clients:
            await found.aclose()
