"""Pure: the publish buffer of a context and the rules of ``flush``.

``publish`` adds a packed XADD to the :class:`Outbox`; ``flush`` takes the buffered events
out of it (a :class:`Flush` owns that snapshot), sends one pipeline per server and records,
reply by reply, what Redis confirmed. Whatever happens (an error reply, a dropped
connection, a cancellation, a KeyboardInterrupt), :meth:`Outbox.settle` puts back exactly
the events of the snapshot Redis did not confirm (and did not refuse as too large), in
order, before the events published meanwhile, for the next ``flush``. Nothing is ever
resent by the library itself.

The buffer is safe to share between threads (the sync API) and tasks: ``add`` is one
``list.append`` on a list that is never replaced, and the steps that remove or put back
events (``begin``, ``settle``, ``discard``) hold a lock for a few C-level list operations.
A ``discard`` during a flush drops only the events the flush did not take.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from .errors import (
    BrokerConnectionError,
    EventTooLargeError,
    FluxabeeError,
    PartialFlushError,
    RedisReplyError,
    ReplicationError,
)

#: The smallest ``proto-max-bulk-len`` a Redis server accepts (1 MB): events whose fields
#: are all this short need no look at the server's limit.
MIN_BULK_LIMIT = 1024 * 1024
#: Redis's default ``proto-max-bulk-len`` (512 MB), assumed when ``CONFIG GET`` is refused.
DEFAULT_BULK_LIMIT = 512 * 1024 * 1024


@dataclass(slots=True)
class Pending:
    """One buffered event: its pool, stream, packed XADD and longest field, in bytes (and
    its meta, kept only when observers listen)."""

    pool: str
    stream: str
    packed: bytes
    size: int
    #: The stream's Cluster slot (where the event goes on a Cluster pool).
    slot: int = 0
    meta: Mapping[str, str] | None = None


_POOL = attrgetter("pool")
_SIZE = attrgetter("size")


def is_bulk_length_error(reply: Any) -> bool:
    """Whether an error reply is Redis refusing a too long argument (and the connection)."""
    return isinstance(reply, RedisReplyError) and "invalid bulk length" in str(reply)


def too_large(stream: str, size: int, limit: int) -> str:
    """The message for an event over the server's limit."""
    return (
        f"an event of stream {stream!r} has a field of {size} bytes, over the server's "
        f"proto-max-bulk-len of {limit} bytes; it was not sent"
    )


class Flush:
    """One ``flush`` in progress: the snapshot, and what each event came to."""

    def __init__(self, items: list[Pending]) -> None:
        self.items = items
        #: Per event: its new entry ID once Redis confirmed it.
        self.ids: list[str | None] = [None] * len(items)
        #: Indexes of events refused as too large (they leave the buffer).
        self.rejected: list[int] = []
        self._limits: dict[int, int] = {}
        self._failure: FluxabeeError | None = None
        self._reply_error: FluxabeeError | None = None
        #: (wanted, confirmed, node) for each node whose WAIT got fewer replicas than wanted.
        self._short: list[tuple[int, int, str]] = []
        #: Event indexes per pool code, in publish order (order within a stream is kept).
        self.groups: dict[str, list[int]] = {}
        pools = set(map(_POOL, items))  # iterated in C: this runs per event on every flush
        if len(pools) == 1:  # one pool: no grouping per event
            self.groups = {pools.pop(): list(range(len(items)))}
        elif pools:
            for index, item in enumerate(items):
                self.groups.setdefault(item.pool, []).append(index)
        #: How many events were confirmed (the hot path settles everything at once).
        self.landed = 0

    def needs_limit(self, indexes: list[int]) -> bool:
        """Whether some event is long enough that the server's limit must be known."""
        sizes = map(_SIZE, map(self.items.__getitem__, indexes))  # iterated in C
        return max(sizes, default=0) > MIN_BULK_LIMIT

    def within_limit(self, indexes: list[int], limit: int) -> list[int]:
        """The events to send; those over ``limit`` are rejected (never sent)."""
        keep = []
        for index in indexes:
            if self.items[index].size > limit:
                self.rejected.append(index)
                self._limits[index] = limit
            else:
                keep.append(index)
        return keep

    def record(
        self, indexes: list[int], replies: list[Any], failure: BaseException | None = None
    ) -> None:
        """The replies Redis gave to the events ``indexes`` (maybe fewer: it failed)."""
        ids = self.ids
        for index, reply in zip(indexes, replies, strict=False):
            if type(reply) is bytes:  # the common case first
                if ids[index] is None:  # counted once, even if recorded twice
                    self.landed += 1
                ids[index] = reply.decode()
            elif reply is None:
                continue
            elif is_bulk_length_error(reply):
                self.rejected.append(index)
            elif isinstance(reply, BrokerConnectionError):  # LOADING, READONLY, ...
                self._failure = self._failure or reply
            elif isinstance(reply, RedisReplyError):
                self._reply_error = self._reply_error or reply.naming("XADD")
            elif isinstance(reply, FluxabeeError):
                self._reply_error = self._reply_error or reply
        if isinstance(failure, BrokerConnectionError) and self._failure is None:
            self._failure = failure

    def replicas(self, wanted: int, reply: Any, where: str) -> None:
        """The reply of the WAIT after a node's events (``flush(wait_replicas=...)``)."""
        if isinstance(reply, int) and reply >= wanted:
            return
        confirmed = reply if isinstance(reply, int) else 0
        self._short.append((wanted, confirmed, where))
        if isinstance(reply, FluxabeeError) and not isinstance(reply, RedisReplyError):
            self._failure = self._failure or reply

    def settled(self, index: int) -> bool:
        """Whether event ``index`` leaves the buffer (landed, or refused as too large)."""
        return self.ids[index] is not None or index in self.rejected

    def outcome(self) -> list[str]:
        """The IDs when every event landed; else the error to raise (see ``flush``)."""
        if (
            self._failure is None
            and self._reply_error is None
            and not self.rejected
            and not self._short
        ):
            return self.ids  # type: ignore[return-value] # every slot holds an ID
        kept = sum(1 for i in range(len(self.items)) if not self.settled(i))
        if self.rejected:  # a permanent error: it needs the user, so it goes first
            raise self._too_large(kept) from (self._failure or self._reply_error)
        if self._failure is not None:
            landed = sum(1 for i in self.ids if i is not None)
            raise PartialFlushError(
                f"flush failed after {landed} of {len(self.items)} events; "
                f"{kept} stay buffered: {self._failure}",
                self.ids,
            ) from self._failure
        if self._reply_error is not None:
            raise self._reply_error
        wanted, confirmed, where = min(self._short, key=lambda s: s[1])
        raise ReplicationError(
            f"{wanted} replicas were asked to confirm the flush, {confirmed} did ({where}); "
            f"the events landed on their master and left the buffer",
            self.ids,
            wanted,
            confirmed,
        )

    def _too_large(self, kept: int) -> EventTooLargeError:
        first = min(self.rejected)
        item = self.items[first]
        limit = self._limits.get(first)
        if limit is None:  # learned from Redis's own refusal
            message = (
                f"an event of stream {item.stream!r} has a field of {item.size} bytes, which "
                f"the server refused (over its proto-max-bulk-len); it was not stored"
            )
        else:
            message = too_large(item.stream, item.size, limit)
        if len(self.rejected) > 1:
            message += f" ({len(self.rejected) - 1} more events refused)"
        if kept:
            message += f"; {kept} other events stay buffered"
        return EventTooLargeError(
            message,
            stream=item.stream,
            size=item.size,
            limit=limit or 0,
            ids=self.ids,
            rejected=sorted(self.rejected),
        )


class Outbox:
    """A context's buffered events, in publish order (safe to share between threads)."""

    def __init__(self) -> None:
        #: The buffered events, oldest first. Never replaced (a thread appending to it
        #: can never append to a list that was taken away), only cut and extended in place.
        self.items: list[Pending] = []
        self._guard = threading.Lock()

    def add(self, item: Pending) -> None:
        """Buffer one event (one atomic append: no lock on the publish path)."""
        self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def discard(self) -> int:
        """Drop every buffered event; how many. Events a flush in progress took are not
        buffered any more: that flush settles them (it puts back what did not land)."""
        with self._guard:
            items = self.items
            dropped = len(items)
            del items[:dropped]  # what another thread appends meanwhile stays
        return dropped

    def begin(self) -> Flush:
        """A flush of everything buffered now, taken out of the buffer (the flush owns it;
        events published meanwhile wait for the next flush)."""
        with self._guard:
            items = self.items
            taken = items[:]
            del items[: len(taken)]  # appends only ever go to the end
        return Flush(taken)

    def settle(self, flush: Flush) -> None:
        """Put back the events of ``flush`` that did not land (nor were refused as too
        large), in order, before the events published since it began."""
        taken = len(flush.items)
        if flush.landed == taken:  # every event landed: nothing goes back
            return
        kept = [item for i, item in enumerate(flush.items) if not flush.settled(i)]
        if kept:
            with self._guard:
                self.items[:0] = kept
