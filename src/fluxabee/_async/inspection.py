"""Looking at a stream without consuming it: newest entries, pending entries, moving
stale ones to another consumer (the IO shell; commands and parsing in ``_inspection``).

A mixin of :class:`~fluxabee.AsyncEventBroker`, kept apart from the publish and consume
paths. Nothing here joins a group or acks: ``fluxabee tail`` and ``pending`` are safe to
run against a live system.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .. import _validate as validate
from .._constants import BLOCK_READ_MARGIN
from .._inspection import (
    PendingEntry,
    after_command,
    claim_command,
    live,
    newest_command,
    parse_pending_entries,
    pending_entries_command,
)
from .._protocol import Entry, parse_entries, parse_xreadgroup
from ..codec import split_fields
from ..errors import InvalidArgumentError, NoGroupError
from ..event import AsyncEvent, Event
from .clients import AsyncClients


async def _no_ack(event: AsyncEvent) -> None:
    raise InvalidArgumentError(
        f"event {event.id} of {event.stream!r} was peeked, not delivered: it cannot be acked"
    )


def _events(stream: str, entries: list[Entry]) -> list[AsyncEvent]:
    events: list[AsyncEvent] = []
    for entry in live(entries):
        raw, meta = split_fields(entry.fields or [])
        events.append(Event(entry.id, stream, raw, meta, _no_ack))
    return events


class AsyncInspection:
    """Read-only looks at streams, and moving stale pending entries (a broker mixin)."""

    _clients: AsyncClients

    async def peek(self, stream: str, count: int = 10) -> list[AsyncEvent]:
        """The newest ``count`` entries of ``stream``, oldest first, read without a group
        (nothing is delivered or acked; ``ack()`` on them raises)."""
        count = validate.count(count)
        client = self._clients.for_stream(stream)
        raw: Any = await client.call(newest_command(stream, count), retry_safe=True)
        return _events(stream, parse_entries(raw)[::-1])

    async def peek_after(
        self,
        stream: str,
        after: str,
        *,
        count: int = 100,
        block: float | _dt.timedelta = 0,
    ) -> list[AsyncEvent]:
        """Entries of ``stream`` after the ID ``after`` (``"0"``: from the start), waiting up
        to ``block`` for one to arrive (``0``: do not wait); read without a group."""
        count = validate.count(count)
        block_ms = validate.ms(block, "block")
        client = self._clients.for_stream(stream)
        raw: Any = await client.call(
            after_command(stream, after, count, block_ms),
            retry_safe=True,
            timeout=block_ms / 1000 + BLOCK_READ_MARGIN,
        )
        return _events(stream, parse_xreadgroup(raw))

    async def pending_entries(
        self,
        stream: str,
        *,
        count: int = 100,
        min_idle: float | _dt.timedelta = 0,
        consumer: str | None = None,
        group: str | None = None,
    ) -> list[PendingEntry]:
        """The oldest ``count`` entries delivered and not acked in ``group`` (the stream's
        first declared group by default; of one ``consumer``, if given), idle at least
        ``min_idle``; ``[]`` when there is no group."""
        count = validate.count(count)
        min_idle_ms = validate.ms(min_idle, "min_idle")
        name = self._clients.config.stream(stream).group(group)
        command = pending_entries_command(stream, name, count, min_idle_ms, consumer)
        try:
            raw: Any = await self._clients.for_stream(stream).call(command, retry_safe=True)
        except NoGroupError:
            return []
        return parse_pending_entries(raw)

    async def claim_pending(
        self,
        stream: str,
        *,
        consumer: str,
        min_idle: float | _dt.timedelta,
        count: int = 100,
        group: str | None = None,
    ) -> list[PendingEntry]:
        """Move up to ``count`` entries pending longer than ``min_idle`` to ``consumer``
        (XCLAIM JUSTID: delivery counts unchanged, nothing is handed over) and return them
        as they were before (with their previous holder). An entry another consumer took
        or acked meanwhile is left alone (XCLAIM checks the idle time again)."""
        if not isinstance(consumer, str) or not consumer:
            raise InvalidArgumentError(f"consumer must be a non-empty str, got {consumer!r}")
        min_idle_ms = validate.ms(min_idle, "min_idle")
        stale = await self.pending_entries(stream, count=count, min_idle=min_idle, group=group)
        stale = [e for e in stale if e.consumer != consumer]
        if not stale:
            return []
        name = self._clients.config.stream(stream).group(group)
        command = claim_command(stream, name, consumer, min_idle_ms, [e.id for e in stale])
        raw: Any = await self._clients.for_stream(stream).call(command)
        claimed = {i.decode() if isinstance(i, bytes) else str(i) for i in raw or ()}
        return [e for e in stale if e.id in claimed]
