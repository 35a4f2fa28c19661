"""The reading and acking half of a consumer: what to read, from where, and how to ack.

A consumer first re-reads its own pending entries (delivered before, never acked) and only
then asks for new ones, on every call until the pending list is empty, so a crash, a
restart or a handler error never strands an event. ``consumer_single`` reads only through
a Lua script that checks its lock first (see :mod:`.lock`); ``consumer_many`` reads with
plain XREADGROUP. Events past the retry policy go to the dead letters instead of a handler.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .._backends import AsyncBackend
from .._constants import (
    BLOCK_READ_MARGIN,
    CLAIM_PENDING_SCAN,
    MAX_REMEMBERED_ERRORS,
)
from .._policy import RetryPolicy, dead_letter_fields, dead_letter_key, error_text
from .._protocol import (
    Entry,
    group_create_command,
    pack_ack,
    parse_pending_counts,
    parse_xautoclaim,
    parse_xreadgroup,
    pending_command,
    xadd_command,
    xautoclaim_command,
    xreadgroup_command,
)
from .._scripts import read_single
from ..codec import BODY_FIELD_B, join_fields, split_fields
from ..errors import BrokerConnectionError, ConsumerLockedError, NoGroupError, RedisReplyError
from ..event import AsyncEvent, Event
from .client import AsyncPoolClient
from .lock import AsyncLock

logger = logging.getLogger("fluxabee")


class AsyncReader:
    """Reads, acks and dead-letters for one consumer name of one stream's group."""

    def __init__(
        self,
        *,
        client: AsyncPoolClient,
        stream: str,
        name: str,
        policy: RetryPolicy,
        lock: AsyncLock | None,
    ) -> None:
        self._client = client
        self._stream = stream
        self._name = name
        self._policy = policy
        self._lock = lock
        self._group_ready = False
        #: Re-read this consumer's own pending entries before asking for new ones.
        self.pending_first = True
        #: consumer_many skips its pending entries (in backoff) until this monotonic time.
        self.pending_due = 0.0
        self._errors: dict[str, str] = {}

    # -- group and reading -------------------------------------------------------------

    def reset(self) -> None:
        """After an outage or a vanished group: recreate the group, re-read pending."""
        self._group_ready = False
        self.pending_first = True

    async def ensure_group(self) -> None:
        """``XGROUP CREATE ... 0 MKSTREAM`` once; BUSYGROUP is fine, WRONGTYPE is not."""
        if self._group_ready:
            return
        command = group_create_command(self._stream)
        reply = (await self._client.execute([command], retry_safe=True))[0]
        if isinstance(reply, RedisReplyError) and reply.prefix != "BUSYGROUP":
            raise reply
        self._group_ready = True

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """Own pending entries first, then new ones, waiting up to ``block_ms``."""
        await self.ensure_group()
        try:
            return await self._read_once(count, block_ms)
        except BrokerConnectionError:
            self.pending_first = True  # a lost reply may have delivered entries to us
            raise
        except NoGroupError:
            # The stream or group vanished (DEL, FLUSHALL, failover): recreate, read again.
            self.reset()
            await self.ensure_group()
            return await self._read_once(count, block_ms)

    async def _read_once(self, count: int, block_ms: int) -> list[Entry]:
        if self._lock is not None:
            return await self._read_locked(self._lock, count, block_ms)
        now = time.monotonic()
        if self.pending_first and now >= self.pending_due:
            read = xreadgroup_command(self._stream, self._name, count, pending=True, block_ms=0)
            replies = await self._client.execute(
                [read, pending_command(self._stream, self._name, count)], retry_safe=True
            )
            for reply in replies:
                if isinstance(reply, RedisReplyError):
                    raise reply
            entries = parse_xreadgroup(replies[0])
            if entries:
                return _with_counts(entries, replies[1])
            self.pending_first = False
        elif self.pending_first:  # pending entries are in backoff: read new ones meanwhile
            block_ms = min(block_ms, max(1, int((self.pending_due - now) * 1000)))
        read = xreadgroup_command(self._stream, self._name, count, pending=False, block_ms=block_ms)
        reply = await self._client.call(read, timeout=block_ms / 1000 + BLOCK_READ_MARGIN)
        return parse_xreadgroup(reply)

    async def _read_locked(self, lock: AsyncLock, count: int, block_ms: int) -> list[Entry]:
        """consumer_single: read the group only inside the lock-checking script."""
        deadline = time.monotonic() + block_ms / 1000
        while True:
            sent_at = time.monotonic()
            command = read_single(
                self._stream,
                lock.key,
                token=lock.token,
                ttl_ms=lock.ttl_ms,
                consumer=self._name,
                count=count,
                pending=self.pending_first,
            )
            reply = await self._client.call(command)
            if reply[0] == 0:
                lock.lost()
                raise ConsumerLockedError(
                    f"stream {self._stream!r} is held by another consumer_single "
                    f"(its lock expires in {int(reply[1])} ms unless refreshed)"
                )
            lock.confirmed(sent_at)
            raw, counts, last_id = reply[1], reply[2], reply[3]
            if raw:
                entries = parse_xreadgroup(raw)
                if counts:
                    return _with_counts(entries, counts)
                self.pending_first = False
                return entries
            self.pending_first = False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Idle: look at our own pending list again next time, so nothing is stranded.
                self.pending_first = True
                return []
            wait_ms = max(1, int(remaining * 1000))
            await self._client.call(
                [b"XREAD", b"BLOCK", wait_ms, b"STREAMS", self._stream, last_id],
                timeout=remaining + BLOCK_READ_MARGIN,
            )

    async def claim(self, count: int, min_idle_ms: int, start: str) -> tuple[list[Entry], str]:
        """One XAUTOCLAIM round: claimed entries (with delivery counts) and the next cursor."""
        await self.ensure_group()
        command = xautoclaim_command(self._stream, self._name, min_idle_ms, start, count)
        claimed = parse_xautoclaim(await self._client.call(command))
        entries = claimed.entries
        live = [e for e in entries if e.fields is not None]
        if live:
            counts = await self._client.call(
                pending_command(
                    self._stream, self._name, CLAIM_PENDING_SCAN, live[0].id, live[-1].id
                )
            )
            entries = _with_counts(entries, counts)
        return entries, claimed.cursor

    # -- events and acks -------------------------------------------------------------

    async def events(self, entries: list[Entry]) -> list[AsyncEvent]:
        """Entries -> events to hand over: deleted ones are acked, exceeded ones dead-lettered."""
        events: list[AsyncEvent] = []
        gone: list[str] = []
        dead: list[AsyncEvent] = []
        stream, acker, limit = self._stream, self.ack_event, self._policy.max_deliveries
        raw: bytes | None
        meta: dict[str, str]
        for entry_id, fields, deliveries in entries:  # the hot loop of consuming: keep it lean
            if fields is None:
                gone.append(entry_id)
                continue
            if len(fields) == 2 and fields[0] == BODY_FIELD_B:
                raw, meta = fields[1], {}
            else:
                raw, meta = split_fields(fields)
            event: AsyncEvent = Event(entry_id, stream, raw, meta, acker, deliveries)
            (dead if deliveries > limit else events).append(event)
        if gone:
            await self.ack_ids(gone)
        if dead:
            await self._dead_letter(dead)
        return events

    async def ack_ids(self, ids: list[str]) -> None:
        """XACK + XDEL of ``ids`` in one round trip."""
        replies = await self._client.execute_packed(pack_ack(self._stream, ids), 2, retry_safe=True)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        for entry_id in ids:
            self._errors.pop(entry_id, None)

    async def ack_event(self, event: AsyncEvent) -> None:
        """``event.ack()``: ack and delete now; idempotent."""
        if event.acked:
            return
        await self.ack_ids([event.id])
        event.acked = True

    async def ack_rest(self, events: list[AsyncEvent]) -> None:
        """Ack every event the handler left un-acked, in one round trip."""
        rest = [e for e in events if not e.acked]
        if rest:
            await self.ack_ids([e.id for e in rest])
            for event in rest:
                event.acked = True

    def remember_error(self, events: list[AsyncEvent], exc: BaseException) -> None:
        """Keep the handler error of un-acked events for their dead letter, if any."""
        text = error_text(exc)
        for event in events:
            if not event.acked:
                self._errors.pop(event.id, None)
                self._errors[event.id] = text
        while len(self._errors) > MAX_REMEMBERED_ERRORS:
            self._errors.pop(next(iter(self._errors)))

    async def hand_over(self, events: list[AsyncEvent], handler: Any) -> int:
        """Call the handler; ack what it left un-acked when it returns, in one round trip.

        The handler's exception propagates unchanged (its events stay pending).
        """
        failure = await self.try_hand_over(events, handler)
        if failure is not None:
            raise failure
        return len(events)

    async def try_hand_over(self, events: list[AsyncEvent], handler: Any) -> Exception | None:
        """Like :meth:`hand_over`, but return the handler's exception instead of raising.

        fluxabee's own failures (acking, a lost lock) still raise.
        """
        if self._lock is not None and not self._lock.held():
            raise ConsumerLockedError(
                f"the consumer_single lock of {self._stream!r} expired before hand-over"
            )
        try:
            await AsyncBackend.call(handler, events)
        except Exception as exc:
            self.pending_first = True  # what it did not ack is re-read first next time
            self.remember_error(events, exc)
            return exc
        except BaseException:
            self.pending_first = True
            raise
        await self.ack_rest(events)
        return None

    async def _dead_letter(self, events: list[AsyncEvent]) -> None:
        """Move events to ``{stream}:dead`` (XADD first), then ack them from the source."""
        now_ms = int(time.time() * 1000)
        target = dead_letter_key(self._stream).encode()
        commands = [
            xadd_command(
                target,
                dead_letter_fields(
                    join_fields(e.raw_body, e.meta),
                    error=self._errors.get(e.id) or error_text(None),
                    deliveries=e.delivery_count - 1,
                    source_id=e.id,
                    now_ms=now_ms,
                ),
            )
            for e in events
        ]
        replies = await self._client.execute(commands)
        moved = [e for e, r in zip(events, replies, strict=True) if isinstance(r, bytes)]
        for event, reply in zip(events, replies, strict=True):
            if isinstance(reply, RedisReplyError):
                logger.error(
                    "fluxabee: could not dead-letter %s %s: %s", self._stream, event.id, reply
                )
        if moved:
            await self.ack_ids([e.id for e in moved])
        for event in moved:
            logger.warning(
                "fluxabee: event %s of %s moved to dead letters after %d deliveries",
                event.id,
                self._stream,
                event.delivery_count - 1,
            )
        failed = len(events) - len(moved)
        if failed:
            raise RedisReplyError(f"could not dead-letter {failed} events of {self._stream!r}")


def _with_counts(entries: list[Entry], pending_reply: Any) -> list[Entry]:
    counts = parse_pending_counts(pending_reply)
    return [e._replace(deliveries=counts.get(e.id, 1)) for e in entries]
