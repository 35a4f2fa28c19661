"""A consumer of one stream's ``consumer_group``: consume, autoclaim, cleanup.

Rules (what is read first, what a reply means) live in the pure modules; this shell only
sends commands and calls handlers. A consumer first re-reads its own pending entries
(delivered before, never acked) and only then asks for new ones, on every call until the
pending list is empty, so a crash, a restart or a handler error never strands an event.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._backends import AsyncBackend
from .._constants import BLOCK_READ_MARGIN, CLAIM_PENDING_SCAN
from .._protocol import (
    Entry,
    ack_commands,
    check_count,
    group_create_command,
    parse_pending_counts,
    parse_xautoclaim,
    parse_xreadgroup,
    pending_command,
    to_ms,
    xautoclaim_command,
    xreadgroup_command,
)
from .._scripts import cleanup_consumer
from ..codec import split_fields
from ..errors import NoGroupError, RedisReplyError
from ..event import AsyncEvent, Event
from .client import AsyncPoolClient

#: A batch handler: takes the events, may ack some; may be ``async def`` under asyncio.
AsyncHandler = Callable[[list[AsyncEvent]], Any]


class AsyncConsumer:
    """Reads one stream as one named consumer of the group ``consumer_group``.

    Made by ``broker.consumer_single(stream)`` or ``broker.consumer_many(stream)``.
    Use it as a context manager to call :meth:`cleanup` on exit.
    """

    def __init__(self, *, client: AsyncPoolClient, stream: str, name: str) -> None:
        self._client = client
        self._stream = stream
        self._name = name
        self._group_ready = False
        self._pending_first = True

    @property
    def name(self) -> str:
        """The consumer's name in the group."""
        return self._name

    @property
    def stream(self) -> str:
        """The stream this consumer reads."""
        return self._stream

    def __repr__(self) -> str:
        return f"<{type(self).__name__} stream={self._stream!r} name={self._name!r}>"

    # -- reading ---------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        reply = await self._client.execute([group_create_command(self._stream)])
        if isinstance(reply[0], RedisReplyError) and reply[0].prefix != "BUSYGROUP":
            raise reply[0]
        self._group_ready = True

    async def _read(self, count: int, block_ms: int) -> list[Entry]:
        """Own pending entries first; new ones (blocking up to ``block_ms``) after."""
        await self._ensure_group()
        for attempt in (1, 2):
            try:
                return await self._read_once(count, block_ms)
            except NoGroupError:
                # The stream or group vanished (DEL, FLUSHALL, failover): recreate it.
                self._group_ready = False
                self._pending_first = True
                if attempt == 2:
                    raise
                await self._ensure_group()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_once(self, count: int, block_ms: int) -> list[Entry]:
        if self._pending_first:
            read = xreadgroup_command(self._stream, self._name, count, pending=True, block_ms=0)
            replies = await self._client.execute(
                [read, pending_command(self._stream, self._name, count)]
            )
            for reply in replies:
                if isinstance(reply, RedisReplyError):
                    raise reply
            entries = parse_xreadgroup(replies[0])
            if entries:
                counts = parse_pending_counts(replies[1])
                return [e._replace(deliveries=counts.get(e.id, 1)) for e in entries]
            self._pending_first = False
        read = xreadgroup_command(self._stream, self._name, count, pending=False, block_ms=block_ms)
        reply = await self._client.call(read, timeout=block_ms / 1000 + BLOCK_READ_MARGIN)
        return parse_xreadgroup(reply)

    def _events(self, entries: list[Entry]) -> tuple[list[AsyncEvent], list[str]]:
        """Entries -> events; deleted entries still pending come back as IDs to ack."""
        events: list[AsyncEvent] = []
        gone: list[str] = []
        for entry in entries:
            if entry.fields is None:
                gone.append(entry.id)
                continue
            raw, meta = split_fields(entry.fields)
            events.append(
                Event(
                    id=entry.id,
                    stream=self._stream,
                    raw_body=raw,
                    meta=meta,
                    acker=self._ack_event,
                    delivery_count=entry.deliveries,
                )
            )
        return events, gone

    # -- acking ----------------------------------------------------------------------

    async def _ack_ids(self, ids: list[str]) -> None:
        for reply in await self._client.execute(ack_commands(self._stream, ids)):
            if isinstance(reply, RedisReplyError):
                raise reply

    async def _ack_event(self, event: AsyncEvent) -> None:
        if event.acked:
            return
        await self._ack_ids([event.id])
        event.acked = True

    async def _hand_over(self, events: list[AsyncEvent], handler: AsyncHandler) -> int:
        """Call the handler; ack what it left un-acked in one round trip when it returns."""
        try:
            await AsyncBackend.call(handler, events)
        except BaseException:
            self._pending_first = True  # what it did not ack is re-read first next time
            raise
        rest = [e for e in events if not e.acked]
        if rest:
            await self._ack_ids([e.id for e in rest])
            for event in rest:
                event.acked = True
        return len(events)

    # -- public API ------------------------------------------------------------------

    async def consume(self, count: int, block: float | _dt.timedelta, handler: AsyncHandler) -> int:
        """Read at most ``count`` events, waiting up to ``block``, and hand them over.

        Pending events of this consumer come first (oldest first). ``handler(events)`` is
        called once when there is a batch; events it leaves un-acked are acked when it
        returns; when it raises, they stay pending and the exception propagates unchanged.
        ``block`` is seconds or a ``timedelta``; ``0`` returns at once when nothing waits.
        Returns how many events were handed over (0 on timeout, without calling handler).
        """
        count = check_count(count)
        block_ms = to_ms(block, "block")
        entries = await self._read(count, block_ms)
        events, gone = self._events(entries)
        if gone:
            await self._ack_ids(gone)
        if not events:
            return 0
        return await self._hand_over(events, handler)

    async def autoclaim(
        self, count: int, min_idle: float | _dt.timedelta, handler: AsyncHandler
    ) -> int:
        """Claim events pending on any consumer for longer than ``min_idle`` and handle them.

        Claims ``count`` per round (XAUTOCLAIM), follows the cursor to the end, hands each
        round to ``handler`` with the same ack rules as :meth:`consume`, and returns how
        many events it handed over. Works with Redis 6.2 and 7+ replies.
        """
        count = check_count(count)
        min_idle_ms = to_ms(min_idle, "min_idle")
        await self._ensure_group()
        start, total = "0-0", 0
        while True:
            command = xautoclaim_command(self._stream, self._name, min_idle_ms, start, count)
            claimed = parse_xautoclaim(await self._client.call(command))
            entries = claimed.entries
            if entries:
                first, last = entries[0].id, entries[-1].id
                counts = parse_pending_counts(
                    await self._client.call(
                        pending_command(self._stream, self._name, CLAIM_PENDING_SCAN, first, last)
                    )
                )
                entries = [e._replace(deliveries=counts.get(e.id, 1)) for e in entries]
            events, gone = self._events(entries)
            if gone:
                await self._ack_ids(gone)
            if events:
                total += await self._hand_over(events, handler)
            if claimed.cursor in ("0-0", "0"):
                return total
            start = claimed.cursor

    async def cleanup(self) -> bool:
        """Leave the group without losing anything; returns whether the name was removed.

        A consumer that still holds pending entries stays in the group with them (so
        ``autoclaim`` or a restarted ``consumer_single`` gets them); one that holds none is
        deleted, atomically (a Lua script checks and deletes in one step). The consumer can
        go on consuming afterwards.
        """
        result = await self._client.call(cleanup_consumer(self._stream, self._name))
        self._pending_first = True
        return bool(result == 1)

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cleanup()
