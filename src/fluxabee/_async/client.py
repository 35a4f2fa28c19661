"""Connections to one Redis pool: pipelined raw commands, errors translated at this edge.

fluxabee speaks RESP itself: commands are packed by :mod:`fluxabee._protocol`, written in
one go, and the replies parsed by hiredis straight from the socket, a chunk at a time (not
one Python call per reply, which is where redis-py spends its time under asyncio). A
failure part-way tells exactly which commands Redis answered. Nothing is resent by this
layer except commands marked ``retry_safe`` (reads, acks), once, when a pooled connection
turns out to be dead before it answered anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis

from .._backends import AsyncBackend, AsyncStream
from .._connparams import ConnParams, conn_params
from .._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from .._protocol import pack_commands
from ..config import Config, RedisPool
from ..errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    FluxabeeError,
    RedisReplyError,
    reply_error,
    translate_redis_errors,
)

Command = Sequence[bytes | str | int | float]


class _ErrorReply(Exception):
    """hiredis builds one of these for each error reply; translated before it leaves."""


class AsyncConnection:
    """One connection: write a packed pipeline, read its replies."""

    def __init__(self, stream: AsyncStream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader(replyError=_ErrorReply)

    @classmethod
    async def open(cls, params: ConnParams) -> AsyncConnection:
        """Connect and run the handshake (AUTH, SELECT)."""
        stream = await AsyncBackend.open_stream(params, DEFAULT_CONNECT_TIMEOUT)
        conn = cls(stream)
        try:
            handshake = params.handshake()
            if handshake:
                replies: list[Any] = []
                await conn.run(
                    pack_commands(handshake), len(handshake), replies, DEFAULT_SOCKET_TIMEOUT
                )
                for reply in replies:
                    if isinstance(reply, FluxabeeError):
                        raise reply
        except BaseException:
            await conn.close()
            raise
        return conn

    async def run(
        self, payload: bytes | list[bytes], count: int, out: list[Any], timeout: float | None
    ) -> None:
        """Write ``payload`` (``count`` commands) and append their replies to ``out``."""
        await self._stream.write(payload)
        reader = self._reader
        done = 0
        while done < count:
            reply = reader.gets()
            if reply is False:
                data = await self._stream.read(timeout)
                if not data:
                    raise BrokerConnectionError("Redis closed the connection")
                reader.feed(data)
                continue
            if isinstance(reply, _ErrorReply):
                reply = reply_error(str(reply))
                if isinstance(reply, BrokerAuthenticationError):
                    raise reply  # the connection is unusable; the caller closes it
            out.append(reply)
            done += 1

    async def stale(self) -> bool:
        """Whether the peer closed this idle connection."""
        return await self._stream.stale()

    async def close(self) -> None:
        """Close the connection."""
        await self._stream.close()


class AsyncPoolClient:
    """The connections of one configured Redis pool (a LIFO list of idle ones)."""

    def __init__(self, pool: RedisPool) -> None:
        self.pool = pool
        self._params = conn_params(pool.url)
        self._idle: list[AsyncConnection] = []
        self._closed = False

    async def _acquire(self) -> tuple[AsyncConnection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not await conn.stale():
                return conn, True
            await conn.close()
        with translate_redis_errors():
            return await AsyncConnection.open(self._params), False

    async def _release(self, conn: AsyncConnection) -> None:
        if self._closed:
            await conn.close()
        else:
            self._idle.append(conn)

    async def execute_packed(
        self,
        payload: bytes | list[bytes],
        count: int,
        *,
        out: list[Any] | None = None,
        timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        retry_safe: bool = False,
    ) -> list[Any]:
        """Send ``count`` pre-packed commands (bytes, or parts to send one after the
        other) and read one raw reply each.

        An error reply becomes a :class:`RedisReplyError` in its slot (the others go on).
        A connection failure raises :class:`BrokerConnectionError`; the replies read before
        it are already in ``out`` (pass a list to learn how far it got).
        """
        replies: list[Any] = [] if out is None else out
        if self._closed:
            raise BrokerConnectionError(f"the client of pool {self.pool.code!r} is closed")
        for attempt in (1, 2):
            conn, reused = await self._acquire()
            try:
                with translate_redis_errors():
                    await conn.run(payload, count, replies, timeout)
            except BaseException as exc:
                await conn.close()
                if (
                    retry_safe
                    and reused
                    and attempt == 1
                    and not replies
                    and isinstance(exc, BrokerConnectionError)
                ):
                    continue  # a dead pooled connection: safe to try once on a new one
                raise
            await self._release(conn)
            return replies
        raise AssertionError("unreachable")  # pragma: no cover

    async def execute(
        self,
        commands: Sequence[Command],
        *,
        out: list[Any] | None = None,
        timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        retry_safe: bool = False,
    ) -> list[Any]:
        """Pack ``commands`` and :meth:`execute_packed` them."""
        return await self.execute_packed(
            pack_commands(commands), len(commands), out=out, timeout=timeout, retry_safe=retry_safe
        )

    async def call(
        self,
        command: Command,
        *,
        timeout: float | None = DEFAULT_SOCKET_TIMEOUT,
        retry_safe: bool = True,
    ) -> Any:
        """Run one command (idempotent unless told); an error reply is raised."""
        reply = (await self.execute([command], timeout=timeout, retry_safe=retry_safe))[0]
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class AsyncClients:
    """The pool clients of one engine, created on first use, one per pool code."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: dict[str, AsyncPoolClient] = {}
        #: Locks being kept in the background; the engine releases them when it closes.
        self.locks: set[Any] = set()

    def client(self, code: str) -> AsyncPoolClient:
        """The client of pool ``code`` (no IO: connections open on first command)."""
        found = self._clients.get(code)
        if found is None:
            found = self._clients[code] = AsyncPoolClient(self.config.pool(code))
        return found

    async def aclose(self) -> None:
        """Release the locks still kept (stopping their keepers), then close every client."""
        for lock in list(self.locks):
            await lock.release()
        clients, self._clients = list(self._clients.values()), {}
        for found in clients:
            await found.aclose()
