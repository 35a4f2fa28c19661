"""Connections to one Redis server: pipelined raw commands, errors translated at this edge.

Names: a *pool* is a configured :class:`~fluxabee.RedisPool` (a code, a URI, streams); a
*server client* (:class:`AsyncServerClient`) holds the connections to one server (a
Cluster node or a Sentinel-managed master has one too); a *topology client*
(:data:`fluxabee._async.clients.AsyncTopology`) is what one pool reads and writes
through: a server client, a Cluster client or a Sentinel client.

fluxabee speaks RESP itself: commands are packed by :mod:`fluxabee._protocol`, written in
one go, and the replies parsed by hiredis straight from the socket, a chunk at a time (not
one Python call per reply, which is where redis-py spends its time under asyncio). A
failure part-way tells exactly which commands Redis answered. Nothing is resent by this
layer except commands marked ``retry_safe`` (reads, acks), once, when a pooled connection
turns out to be dead before it answered anything; and a script call that got NOSCRIPT
(it did not run), as EVAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import hiredis

from .._backends import AsyncBackend, AsyncNetworkBackend, AsyncStream
from .._connparams import ConnParams, conn_params
from .._outbox import DEFAULT_BULK_LIMIT
from .._protocol import ASKING, Command, command_name, pack_command, split_packed
from .._scripts import ScriptCall
from ..config import RedisPool
from ..errors import (
    BrokerAuthenticationError,
    BrokerConnectionError,
    ClosedError,
    FluxabeeError,
    RedisReplyError,
    reply_error,
    translate_io_errors,
)


class AsyncCommands(Protocol):
    """What consumers, locks and dead letters need of a client: commands for one slot.

    A server client is one; on a Cluster it is the client of one slot.
    """

    @property
    def where(self) -> str:
        """The server's address for messages (never a password)."""

    async def execute_packed(
        self,
        payload: bytes | list[bytes],
        count: int,
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> list[Any]:
        """Run ``count`` packed commands; one raw reply each (error replies in place)."""

    async def execute(
        self,
        commands: Sequence[Command | ScriptCall],
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> list[Any]:
        """Run ``commands``; one raw reply each (error replies in place)."""

    async def call(
        self,
        command: Command | ScriptCall,
        *,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> Any:
        """Run one command; an error reply is raised."""

    async def bulk_limit(self) -> int:
        """The server's ``proto-max-bulk-len``."""

    async def has_command(self, name: str) -> bool:
        """Whether the server knows command ``name`` (asked once, cached)."""

    def forget_bulk_limit(self) -> None:
        """Ask for the limit again next time."""


class _ErrorReply(Exception):
    """hiredis builds one of these for each error reply; translated before it leaves."""


class AsyncConnection:
    """One connection: write a packed pipeline, read its replies."""

    def __init__(self, stream: AsyncStream, where: str) -> None:
        self._stream = stream
        self._reader = hiredis.Reader(replyError=_ErrorReply)
        #: ``host:port`` (or the socket path) for messages.
        self.where = where

    @classmethod
    async def open(cls, params: ConnParams, backend: AsyncNetworkBackend) -> AsyncConnection:
        """Connect and run the handshake (AUTH, SELECT)."""
        where = params.describe()
        with translate_io_errors(where):
            stream = await backend.connect(params, params.connect_timeout)
        conn = cls(stream, where)
        try:
            handshake = params.handshake()
            if handshake:
                replies: list[Any] = []
                payload = b"".join(pack_command(c) for c in handshake)
                await conn.run(payload, len(handshake), replies, params.command_timeout)
                for reply in replies:
                    if isinstance(reply, FluxabeeError):
                        raise reply
        except BaseException:
            conn.abort()
            raise
        return conn

    async def run(
        self, payload: bytes | list[bytes], count: int, out: list[Any], timeout: float | None
    ) -> None:
        """Write ``payload`` (``count`` commands) and append their replies to ``out``."""
        with translate_io_errors(self.where):
            await self._stream.write(payload)
            reader = self._reader
            done = 0
            while done < count:
                reply = reader.gets()
                if reply is False:
                    data = await self._stream.read(timeout)
                    if not data:
                        raise BrokerConnectionError(f"Redis at {self.where} closed the connection")
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

    def abort(self) -> None:
        """Close at once (no await, so it also works while being cancelled)."""
        self._stream.abort()


class AsyncServerClient:
    """The connections to one Redis server (a LIFO list of idle ones).

    The idle list is guarded (the sync twin shares it with the lock-keeper thread); every
    connection, idle or in use, is known, so :meth:`aclose` also wakes a blocked read.
    """

    def __init__(
        self, pool: RedisPool, backend: AsyncNetworkBackend, params: ConnParams | None = None
    ) -> None:
        self.pool = pool
        self._params = params or conn_params(pool.url, pool.timeout_seconds)
        self._backend = backend
        self._idle: list[AsyncConnection] = []
        self._open: set[AsyncConnection] = set()
        self._guard = AsyncBackend.new_guard()
        self._closed = False
        #: SHA1s of the scripts this pool's server is known to have (EVALSHA works).
        self._scripts: set[bytes] = set()
        self._bulk_limit: int | None = None
        self._commands: dict[str, bool] = {}

    @property
    def where(self) -> str:
        """The server's address, for messages (never a password)."""
        return self._params.describe()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the engine is closed (pool {self.pool.code!r})")

    async def _acquire(self) -> tuple[AsyncConnection, bool]:
        """A connection for one command: an idle one still open (True), else a new one.

        Every hand-off is guarded: a connection taken from the idle list goes back to it
        when the staleness check is interrupted (a cancellation, a KeyboardInterrupt), and
        a new one is closed when the engine closed while it was opening. From the return
        on, the caller owns it: it releases it, or forgets (closes) it on any exception.
        """
        while True:
            with self._guard:
                self._check_open()
                try:
                    conn = self._idle.pop()  # one atomic step: never check-then-pop
                except IndexError:
                    break
            try:
                stale = await conn.stale()
            except BaseException:  # cancelled during the check: nothing was sent on it
                self._release(conn)
                raise
            if not stale:
                return conn, True
            self._forget(conn)
        conn = await AsyncConnection.open(self._params, self._backend)
        with self._guard:
            if self._closed:
                conn.abort()
                self._check_open()
            self._open.add(conn)
        return conn, False

    def _forget(self, conn: AsyncConnection) -> None:
        conn.abort()
        with self._guard:
            self._open.discard(conn)

    def _release(self, conn: AsyncConnection) -> None:
        with self._guard:
            if not self._closed:
                self._idle.append(conn)
                return
            self._open.discard(conn)
        conn.abort()

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
        """Send ``count`` pre-packed commands (bytes, or parts to send one after the
        other) and read one raw reply each.

        An error reply becomes a :class:`RedisReplyError` in its slot (the others go on).
        A connection failure raises :class:`BrokerConnectionError` (:class:`ClosedError`
        once the engine is closed); the replies read before it are already in ``out``
        (pass a list to learn how far it got, even when cancelled). ``asking``: each
        command follows an ``ASKING`` (a Cluster ASK redirect), whose reply is dropped.
        """
        replies: list[Any] = [] if out is None else out
        if timeout is None:
            timeout = self._params.command_timeout
        if asking:
            return await self._asking(payload, count, replies, timeout)
        for attempt in (1, 2):
            conn, reused = await self._acquire()
            try:
                await conn.run(payload, count, replies, timeout)
            except BaseException as exc:
                self._forget(conn)
                if self._closed and isinstance(exc, BrokerConnectionError):
                    raise ClosedError(
                        f"the engine was closed during a command (pool {self.pool.code!r})"
                    ) from exc
                if (
                    retry_safe
                    and reused
                    and attempt == 1
                    and not replies
                    and isinstance(exc, BrokerConnectionError)
                ):
                    continue  # a dead pooled connection: safe to try once on a new one
                raise
            self._release(conn)
            return replies
        raise AssertionError("unreachable")  # pragma: no cover

    async def _asking(
        self, payload: bytes | list[bytes], count: int, out: list[Any], timeout: float | None
    ) -> list[Any]:
        parts: list[bytes] = []
        for part in split_packed(payload, count):
            parts += (ASKING, part)
        got: list[Any] = []
        try:
            await self.execute_packed(parts, 2 * count, out=got, timeout=timeout)
        finally:
            out.extend(got[1::2])  # the commands' replies, not ASKING's
        return out

    async def execute(
        self,
        commands: Sequence[Command | ScriptCall],
        *,
        out: list[Any] | None = None,
        timeout: float | None = None,
        retry_safe: bool = False,
        asking: bool = False,
    ) -> list[Any]:
        """Pack ``commands`` (script calls as EVALSHA once loaded) and run them.

        Error replies name their command; a script call that got NOSCRIPT is sent again as
        EVAL (it did not run).
        """
        replies: list[Any] = [] if out is None else out
        first = len(replies)
        packed = [self._pack(c) for c in commands]
        await self.execute_packed(
            packed if asking else b"".join(packed),
            len(commands),
            out=replies,
            timeout=timeout,
            retry_safe=retry_safe,
            asking=asking,
        )
        for index, command in enumerate(commands, first):
            reply = replies[index]
            if isinstance(command, ScriptCall):
                if isinstance(reply, RedisReplyError) and reply.prefix == "NOSCRIPT":
                    self._scripts.discard(command.script.sha)
                    again = await self.execute_packed(
                        pack_command(command.as_eval()), 1, timeout=timeout, asking=asking
                    )
                    reply = replies[index] = again[0]
                if not isinstance(reply, RedisReplyError):
                    self._scripts.add(command.script.sha)
            if isinstance(reply, RedisReplyError):
                replies[index] = reply.naming(_name(command))
        return replies

    def _pack(self, command: Command | ScriptCall) -> bytes:
        if isinstance(command, ScriptCall):
            if command.script.sha in self._scripts:
                return pack_command(command.as_evalsha())
            return pack_command(command.as_eval())
        return pack_command(command)

    async def call(
        self,
        command: Command | ScriptCall,
        *,
        timeout: float | None = None,
        retry_safe: bool = False,
    ) -> Any:
        """Run one command; an error reply is raised. Not resent unless ``retry_safe``."""
        return await call_one(self, command, timeout, retry_safe)

    # -- the topology surface: one node serves every slot ---------------------------

    async def route(self, slots: Sequence[int]) -> list[tuple[AsyncServerClient, list[int]]]:
        """The node client for each group of ``slots`` (indexes): here, this one for all."""
        return [(self, list(range(len(slots))))]

    def for_slot(self, slot: int) -> AsyncServerClient:
        """The client for commands of ``slot``: this one."""
        return self

    def topology_changed(self) -> None:
        """A reply said the topology changed (nothing to refresh for one server)."""

    async def bulk_limit(self) -> int:
        """The server's ``proto-max-bulk-len`` (asked once; 512 MB when CONFIG is refused)."""
        if self._bulk_limit is None:
            reply = (
                await self.execute([[b"CONFIG", b"GET", b"proto-max-bulk-len"]], retry_safe=True)
            )[0]
            limit = DEFAULT_BULK_LIMIT
            if isinstance(reply, list) and len(reply) == 2:
                limit = int(reply[1])
            self._bulk_limit = limit
        return self._bulk_limit

    async def has_command(self, name: str) -> bool:
        """Whether this pool's server knows command ``name`` (``COMMAND INFO``, asked once
        and cached on this client; a refused COMMAND counts as "no", the safe answer)."""
        key = name.upper()
        known = self._commands.get(key)
        if known is None:
            reply = (await self.execute([[b"COMMAND", b"INFO", key]], retry_safe=True))[0]
            known = isinstance(reply, list) and bool(reply) and reply[0] is not None
            self._commands[key] = known
        return known

    def forget_bulk_limit(self) -> None:
        """The server refused a length: ask for its limit again next time."""
        self._bulk_limit = None

    async def aclose(self) -> None:
        """Close every connection, idle or in use (a blocked read wakes with an error)."""
        with self._guard:
            self._closed = True
            conns, self._open, self._idle = list(self._open), set(), []
        for conn in conns:
            conn.abort()

    def close_idle(self) -> bool:
        """Close the idle connections (a node left the topology); whether some connection
        is still in use (it is closed by a later call, or by :meth:`aclose`)."""
        with self._guard:
            idle, self._idle = self._idle, []
            self._open.difference_update(idle)
            busy = bool(self._open)
        for conn in idle:
            conn.abort()
        return busy


async def call_one(
    client: AsyncCommands, command: Command | ScriptCall, timeout: float | None, retry_safe: bool
) -> Any:
    """Run one command on ``client``; its error reply is raised."""
    reply = (await client.execute([command], timeout=timeout, retry_safe=retry_safe))[0]
    if isinstance(reply, RedisReplyError):
        raise reply
    return reply


def _name(command: Command | ScriptCall) -> str:
    """The name of a command for messages (``EVALSHA <script>`` for a script call)."""
    if isinstance(command, ScriptCall):
        return f"EVALSHA {command.script.name}"
    return command_name(command)
