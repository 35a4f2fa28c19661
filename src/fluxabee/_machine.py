"""Pure: every decision of a consumer, as flows its IO shell drives.

A :class:`ConsumerMachine` holds the state of one consumer name of one group (read own
pending first? pending entries in backoff until when? which error did each event fail
with?) and its flows say what to do next: read own pending, read new, claim, wait,
dead-letter, ack. Each flow is a generator of :mod:`fluxabee._actions`; the shell runs each
:class:`~fluxabee._actions.Send`, calls the handler for each
:class:`~fluxabee._actions.Hand`, waits for each :class:`~fluxabee._actions.Pause`, and
sends the result back (or throws the failure in). The clock, the wall clock and the
jitter source are injected: no IO and no real clock here, so every rule is unit-tested in
milliseconds.

The rules, each in one place:

- **Own pending first.** A consumer re-reads its own pending list (delivered, never acked)
  before new entries, until it is empty: after a start, a handler failure, a lost lock, an
  outage and any lost reply of a read that delivers (``XREADGROUP >``, XAUTOCLAIM, the
  locked read), whose entries may sit in its pending list unseen. It also looks there
  after every read of new entries that came back empty and at least every
  :data:`~fluxabee._constants.OWN_PENDING_INTERVAL`: ``fluxabee claim`` (XCLAIM) may have
  moved entries to it.
- **Dead letters.** An entry read for the ``max_deliveries + 1``-th time is not handed over:
  it is XADDed to ``{stream}:dead`` first and acked from the stream only once Redis
  confirmed that XADD, so it is never in neither place. Deleted entries are acked away.
- **Poison isolation** (``run``). A failed batch is retried at once one event at a time,
  each retry a delivery of its own (Redis counts it; ``delivery_count`` says it), so one
  poison event cannot drag the healthy ones along. Only deliveries in which an event was
  handed over alone (or in a batch that was not split: ``consume``) count toward
  ``max_deliveries``; those in a failed batch that was split are excused. What still
  fails waits for the retry policy's backoff: ``consumer_many`` reads new entries
  meanwhile, ``consumer_single`` waits, keeping the stream's order (the rest of the batch
  stays behind the failed event).
- **A real single consumer.** ``consumer_single`` reads only through scripts that check its
  lock, and hands over only while its lease is valid on the injected clock.
- **Outages** are waited out with capped, jittered backoff, logged once when they start and
  once when they end; a vanished stream or group is recreated.
- **Fan-out and retention** (:mod:`fluxabee._retention`): all declared groups are created
  at once, acks follow the stream's ack mode, and trims run at a bounded rate.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

from ._actions import Flow, Hand, Lease, Send
from ._constants import (
    BLOCK_READ_MARGIN,
    CLAIM_PENDING_SCAN,
    MAX_REMEMBERED_ERRORS,
    OWN_PENDING_INTERVAL,
)
from ._keys import dead_letter_key
from ._observe import Observers
from ._policy import RetryPolicy, dead_letter_fields, error_text
from ._protocol import (
    Arg,
    Entry,
    group_create_command,
    parse_pending_counts,
    parse_xautoclaim,
    parse_xreadgroup,
    pending_command,
    raw_entries,
    xadd_command,
    xautoclaim_command,
    xreadgroup_command,
)
from ._retention import Retainer, for_group
from ._runloop import CURSOR_END, RunLoop, counted
from ._scripts import cleanup_consumer, lock_refresh, read_single, redeliver
from ._streamconfig import Stream
from .codec import join_fields, split_fields
from .errors import (
    ConsumerLockedError,
    NoGroupError,
    RedisReplyError,
)
from .event import Event

logger = logging.getLogger("fluxabee")
T = TypeVar("T")


def _raise_errors(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, RedisReplyError):
            raise reply
    return replies


def after(entry_id: str) -> str:
    """The XPENDING range start of the entries after ``entry_id`` (``"0"``: all)."""
    return "-" if entry_id == "0" else "(" + entry_id


def _with_counts(entries: list[Entry], pending_reply: Any) -> list[Entry]:
    counts = parse_pending_counts(pending_reply)
    return [e._replace(deliveries=counts.get(e.id, 1)) for e in entries]


class ConsumerMachine(RunLoop):
    """The state and rules of one consumer name in one group of one stream."""

    def __init__(
        self,
        *,
        stream: str,
        group: str,
        name: str,
        policy: RetryPolicy,
        acker: Callable[[Event[Any]], Any],
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
        lease: Lease | None = None,
        rand: Callable[[], float] = random.random,
        settings: Stream | None = None,
        observers: Observers | None = None,
    ) -> None:
        self.stream = stream
        self.group = group
        self.name = name
        self.policy = policy
        self.lease = lease
        self._acker = acker
        self._clock = clock
        self._wall_ms = wall_ms
        self._rand = rand
        #: Told of acks, retries, dead letters and claims (``None`` when nobody listens).
        self.observers = observers
        #: The group was created (or found) since the last reset.
        self.group_ready = False
        #: Re-read this consumer's own pending entries before asking for new ones.
        self.pending_first = True
        #: Own pending entries are re-read after this ID (``process`` moves it past the
        #: ones it already holds; back to ``"0"`` whenever the pending list is re-read).
        self.pending_start = "0"
        #: A read that found no own pending entries goes on to new ones in the same call
        #: (``process`` turns it off, to claim others' stale entries before new ones).
        self.new_after_pending = True
        #: ``consumer_many`` leaves its pending entries (in backoff) alone until this time.
        self.pending_due = 0.0
        #: Look at the own pending list again at this time at the latest, busy or not:
        #: ``fluxabee claim`` (XCLAIM) may have put entries there; an empty read of new
        #: entries looks at once.
        self.pending_check_due = clock() + OWN_PENDING_INTERVAL
        #: Whether an empty read and :data:`OWN_PENDING_INTERVAL` look at the own pending
        #: list again. ``process`` turns it off: its window holds events (in the handler,
        #: behind their key, in backoff) whose re-read would raise their delivery counts.
        self.rescan_own_pending = True
        #: A ``consumer_single`` standby said that it waits (once per wait), and the
        #: holder's remaining lock time when last refused.
        self._standing_by = False
        self._holder_pttl: int | None = None
        #: The last handler error of each un-acked event, for its dead letter.
        self.errors: dict[str, str] = {}
        #: Events whose failure was logged with its traceback (once per event).
        self.traced: dict[str, None] = {}
        #: Per un-acked event, its deliveries in a batch that failed and was split: they do
        #: not count toward ``max_deliveries`` (a neighbour may have failed it).
        self.excused: dict[str, int] = {}
        #: The stream's groups, retention and caps; its ack mode and trim schedule.
        self.settings = settings or Stream(stream)
        self.retention = Retainer(self.settings, clock=clock)

    # -- state changes -------------------------------------------------------------------

    def reset(self) -> None:
        """After an outage or a vanished group: recreate the group, re-read own pending."""
        self.group_ready = False
        self.pending_first = True
        self.pending_start = "0"

    def unless_vanished(self, flow: Flow[T], instead: T) -> Flow[T]:
        """Run ``flow``; when the stream or group vanished (NOGROUP or UNBLOCKED, also from
        inside a script: a DEL, a FLUSHALL, a failover to an empty replica), what the group
        held is gone: recreate it before the next read and return ``instead``. The one
        handling of a missing group, used by every flow (read, locked read, claim,
        redelivery, ack, dead-letter, trim)."""
        try:
            return (yield from flow)
        except NoGroupError:
            self.reset()
            return instead

    def lost_reply(self) -> None:
        """A read that delivers lost its reply: its entries may be ours, unseen. Re-read own
        pending before anything else, backoff or not."""
        self.pending_first = True
        self.pending_start = "0"
        self.pending_due = 0.0

    def remember(self, events: list[Event[Any]], exc: BaseException) -> None:
        """Keep the handler error of the un-acked events for their dead letter."""
        text = error_text(exc)
        errors = self.errors
        for event in events:
            if not event.acked:
                errors.pop(event.id, None)
                errors[event.id] = text
        while len(errors) > MAX_REMEMBERED_ERRORS:
            errors.pop(next(iter(errors)))

    def backoff(self, failed: list[Event[Any]]) -> float:
        """Seconds before failed events are handed over again (the policy's backoff)."""
        return self.policy.delay(max(e.delivery_count for e in failed), self._rand)

    # -- the group and reading -----------------------------------------------------------

    def ensure_group(self) -> Flow[None]:
        """``XGROUP CREATE ... 0 MKSTREAM`` of every declared group, once; BUSYGROUP is fine."""
        if self.group_ready:
            return
        commands = [group_create_command(self.stream, g) for g in self.settings.groups]
        for reply in (yield Send(commands, retry_safe=True)):
            if isinstance(reply, RedisReplyError) and reply.prefix != "BUSYGROUP":
                raise reply
        self.group_ready = True

    def read(self, count: int, block_ms: int) -> Flow[list[Any]]:
        """Own pending entries first, then new ones (raw items), waiting up to ``block_ms``."""
        yield from self.ensure_group()
        entries = yield from self.unless_vanished(self._read_once(count, block_ms), None)
        if entries is None:  # recreated: read again (a second NOGROUP propagates)
            yield from self.ensure_group()
            return (yield from self._read_once(count, block_ms))
        return entries

    def _read_once(self, count: int, block_ms: int) -> Flow[list[Any]]:
        now = self._clock()
        if self.rescan_own_pending and now >= self.pending_check_due:  # claimed to us
            self.pending_first = True
            self.pending_check_due = now + OWN_PENDING_INTERVAL
        if self.lease is not None:
            return (yield from self._read_locked(self.lease, count, block_ms))
        if self.pending_first and now >= self.pending_due:
            start = self.pending_start
            read = xreadgroup_command(self.stream, self.group, self.name, count, start=start)
            counts = pending_command(self.stream, self.group, self.name, count, start=after(start))
            replies = _raise_errors((yield Send([read, counts], retry_safe=True)))
            entries = parse_xreadgroup(replies[0])
            if entries:
                return _with_counts(entries, replies[1])
            self.pending_first = False
            self.pending_start = "0"
            if not self.new_after_pending:
                return []  # process: claims come before new entries
        elif self.pending_first:  # own pending entries wait out their backoff: read new ones
            block_ms = min(block_ms, max(1, int((self.pending_due - now) * 1000)))
        read = xreadgroup_command(
            self.stream, self.group, self.name, count, start=">", block_ms=block_ms
        )
        try:
            reply = (yield Send([read], timeout=block_ms / 1000 + BLOCK_READ_MARGIN))[0]
        except BaseException:  # a lost reply: cancelled, interrupted or disconnected
            self.lost_reply()
            raise
        new = raw_entries(_raise_errors([reply])[0])
        if not new and self.rescan_own_pending:  # idle: a look at the own pending list
            self.pending_first = True
        return new

    def _read_locked(self, lease: Lease, count: int, block_ms: int) -> Flow[list[Any]]:
        """``consumer_single``: read the group only inside the lock-checking script."""
        deadline = self._clock() + block_ms / 1000
        while True:
            call = read_single(
                self.stream,
                lease.key,
                group=self.group,
                token=lease.token,
                ttl_ms=lease.ttl_ms,
                consumer=self.name,
                count=count,
                pending=self.pending_first,
                start=self.pending_start,
            )
            sent_at = self._clock()
            try:
                reply = _raise_errors((yield Send([call])))[0]
            except BaseException:  # a lost reply: cancelled, interrupted or disconnected
                self.lost_reply()
                raise
            if reply[0] == 0:
                self._lock_lost(lease, int(reply[1]))
            lease.confirmed(sent_at)
            self._standing_by = False
            raw, counts, last_id = reply[1], reply[2], reply[3]
            if raw:
                if counts:
                    return _with_counts(parse_xreadgroup(raw), counts)
                self.pending_first = False
                self.pending_start = "0"
                return raw_entries(raw)
            self.pending_first = False
            self.pending_start = "0"
            remaining = deadline - self._clock()
            if remaining <= 0:
                # Idle: look at the own pending list again next time (a holder that died
                # while this one's lease had lapsed may have left entries there).
                self.pending_first = True
                return []
            wait: list[Arg] = [b"XREAD", b"BLOCK", max(1, int(remaining * 1000)), b"STREAMS"]
            yield Send(
                [[*wait, self.stream, last_id]],
                retry_safe=True,
                timeout=remaining + BLOCK_READ_MARGIN,
            )

    def _lock_lost(self, lease: Lease, pttl: int) -> None:
        lease.lost()
        self.pending_first = True
        self._holder_pttl = pttl
        raise ConsumerLockedError(
            f"stream {self.stream!r} is held by another consumer_single "
            f"(its lock expires in {pttl} ms unless refreshed)"
        )

    def standby(self) -> None:
        """``run`` of a ``consumer_single`` waits for a lock another process holds: say so
        once (again only after this one held the lock), with how long the lock lasts at
        most if its holder stopped now, and how often this one tries."""
        lease = self.lease
        if lease is None or self._standing_by:
            return
        self._standing_by = True
        pttl = self._holder_pttl
        logger.info(
            "consumer_single of %s (group %s) waits as a hot standby: another "
            "process holds the lock %s%s; this one tries every %.1f s and takes over once "
            "the lock is free",
            self.stream,
            self.group,
            lease.key,
            "" if pttl is None else f" (it expires in {pttl / 1000:.1f} s unless refreshed)",
            lease.poll_interval,
        )

    def refresh_lock(self, *, keeper: bool = False) -> Flow[None]:
        """Take or extend the lock now; :class:`ConsumerLockedError` when another has it.

        ``keeper``: the background keeper's refresh, which must not start a keeper itself
        (a refresh answered after ``release()`` would otherwise restart refreshing)."""
        lease = self.lease
        if lease is None:
            return
        sent_at = self._clock()
        call = lock_refresh(lease.key, lease.token, lease.ttl_ms)
        reply = _raise_errors((yield Send([call])))[0]
        if reply != 1:
            self._lock_lost(lease, -int(reply))
        lease.confirmed(sent_at, notify=not keeper)
        self._standing_by = False

    def claim(self, count: int, min_idle_ms: int, start: str) -> Flow[tuple[list[Entry], str]]:
        """One XAUTOCLAIM round: claimed entries (with delivery counts) and the next cursor
        (none and the end when the group vanished)."""
        yield from self.ensure_group()
        return (
            yield from self.unless_vanished(self._claim(count, min_idle_ms, start), ([], "0-0"))
        )

    def _claim(self, count: int, min_idle_ms: int, start: str) -> Flow[tuple[list[Entry], str]]:
        command = xautoclaim_command(
            self.stream, self.group, self.name, min_idle_ms=min_idle_ms, start=start, count=count
        )
        try:
            reply = _raise_errors((yield Send([command])))[0]
        except BaseException:  # a lost reply: cancelled, interrupted or disconnected
            self.lost_reply()
            raise
        claimed = parse_xautoclaim(reply)
        entries = claimed.entries
        live = [e for e in entries if e.fields is not None]
        if claimed.holes:  # Redis 6.2: deleted entries, claimed as bare nils, now ours
            yield from self._ack_holes(start, claimed.cursor, {e.id for e in entries})
        if live and self.observers:
            self.observers.claimed(self.stream, self.group, self.name, len(live))
        if live:
            scan = pending_command(
                self.stream,
                self.group,
                self.name,
                CLAIM_PENDING_SCAN,
                start=live[0].id,
                end=live[-1].id,
            )
            entries = _with_counts(entries, (yield Send([scan], retry_safe=True))[0])
        return entries, claimed.cursor

    def _ack_holes(self, start: str, cursor: str, claimed: set[str]) -> Flow[None]:
        """Ack what Redis 6.2's XAUTOCLAIM claimed as bare nils: own pending IDs of the range
        that it did not hand back and XRANGE lacks (deleted)."""
        end = "+" if cursor in CURSOR_END else "(" + cursor
        scan = pending_command(
            self.stream, self.group, self.name, CLAIM_PENDING_SCAN, start=start, end=end
        )
        rows = _raise_errors((yield Send([scan], retry_safe=True)))[0]
        ids = [i for i in parse_pending_counts(rows) if i not in claimed]
        ranges: list[list[Arg]] = [[b"XRANGE", self.stream, i, i] for i in ids]
        found = _raise_errors((yield Send(ranges, retry_safe=True))) if ids else []
        gone = [i for i, entry in zip(ids, found, strict=True) if not entry]
        if gone:
            yield from self.ack(gone)

    def redeliver(self, ids: list[str]) -> Flow[list[Entry]]:
        """Hand again exactly ``ids`` this consumer still holds, each a delivery of its own
        (none when the group vanished)."""
        return (yield from self.unless_vanished(self._redeliver(ids), []))

    def _redeliver(self, ids: list[str]) -> Flow[list[Entry]]:
        lease = self.lease
        if lease is None:
            call = redeliver(self.stream, self.group, self.name, ids)
        else:
            call = redeliver(
                self.stream,
                self.group,
                self.name,
                ids,
                lock=lease.key,
                token=lease.token,
                ttl_ms=lease.ttl_ms,
            )
        sent_at = self._clock()
        try:
            reply = _raise_errors((yield Send([call])))[0]
        except BaseException:  # a lost reply: cancelled, interrupted or disconnected
            self.lost_reply()
            raise
        if reply[0] == 0 and lease is not None:
            self._lock_lost(lease, int(reply[1]))
        if lease is not None:
            lease.confirmed(sent_at)
        return [
            Entry(item[0].decode(), item[1], int(deliveries))
            for item, deliveries in zip(reply[1], reply[2], strict=True)
        ]

    # -- events, acks and dead letters ---------------------------------------------------

    def triage(self, entries: list[Any]) -> Flow[list[Event[Any]]]:
        """Entries (:class:`Entry`, or a new read's raw ``[id, fields]``) -> events; used up:
        each slot is freed as its event is made (far less GC work). Deleted ones and others'
        replays are acked, exceeded ones dead-lettered."""
        events: list[Event[Any]] = []
        gone: list[str] = []
        dead: list[Event[Any]] = []
        stream, acker, exceeded = self.stream, self._acker, self.policy.exceeded
        excused = self.excused
        group, groups = self.group, self.settings.groups
        for index, item in enumerate(entries):  # the hot loop of consuming: keep it lean
            entries[index] = None
            raw_item = len(item) == 2  # a read of new entries: delivered once
            entry_id, fields, deliveries = (item[0].decode(), item[1], 1) if raw_item else item
            if fields is None:
                gone.append(entry_id)
                continue
            raw, meta = split_fields(fields)
            if meta and not for_group(meta, group, groups):  # replayed for another group
                gone.append(entry_id)
                continue
            event: Event[Any] = Event(entry_id, stream, raw, meta, acker, deliveries)
            over = deliveries > 1 and exceeded(deliveries - excused.get(entry_id, 0))
            (dead if over else events).append(event)
        try:
            if gone:
                yield from self.ack(gone)
            if dead:
                yield from self.dead_letter(dead, handed=[e.delivery_count - 1 for e in dead])
        except BaseException:  # the events read are ours and will not be handed over now
            self.lost_reply()
            raise
        return events

    def ack(self, ids: list[str]) -> Flow[None]:
        """Ack ``ids`` in the stream's ack mode in one round trip (idempotent: retry-safe);
        a vanished group holds nothing to ack."""
        yield from self.unless_vanished(self.retention.ack(self.group, ids), None)
        errors, traced, excused = self.errors, self.traced, self.excused
        if errors or traced or excused:  # only after failures: the hot path skips this
            for entry_id in ids:
                errors.pop(entry_id, None)
                traced.pop(entry_id, None)
                excused.pop(entry_id, None)

    def ack_event(self, event: Event[Any]) -> Flow[None]:
        """``event.ack()``: ack now in the stream's ack mode (:meth:`ack`); idempotent."""
        if event.acked:
            return
        yield from self.ack([event.id])
        event.acked = True
        if self.observers:
            self.observers.acked(self.stream, self.group, 1)

    def dead_letter(self, events: list[Event[Any]], handed: list[int]) -> Flow[None]:
        """XADD ``events`` to ``{stream}:dead``, then ack from the stream those Redis confirmed.

        ``handed`` is how many times each was handed to a handler. An XADD is never resent
        (a resend could write a letter twice); an event whose XADD failed stays pending.
        """
        now_ms = self._wall_ms()
        target = dead_letter_key(self.stream)
        commands = [
            xadd_command(
                target,
                dead_letter_fields(
                    join_fields(e.raw_body, e.meta),
                    error=self.errors.get(e.id) or error_text(None),
                    deliveries=times,
                    source_id=e.id,
                    now_ms=now_ms,
                    group=self.group,
                ),
            )
            for e, times in zip(events, handed, strict=True)
        ]
        replies = yield Send(commands)
        moved = [e for e, r in zip(events, replies, strict=True) if isinstance(r, bytes)]
        if moved:
            yield from self.ack([e.id for e in moved])
            for event in moved:
                event.acked = True
            if self.observers:
                self.observers.dead_lettered(self.stream, self.group, moved)
        for event, times in zip(events, handed, strict=True):
            if event.acked:
                logger.warning(
                    "event %s of %s moved to dead letters after %s",
                    event.id,
                    self.stream,
                    counted(times, "delivery", "deliveries"),
                )
        failed = [r for r in replies if isinstance(r, RedisReplyError)]
        if failed:
            raise type(failed[0])(
                f"could not dead-letter {counted(len(failed), 'event', 'events')} of "
                f"{self.stream!r} (failed ones stay pending): {failed[0]}"
            )

    def hand_over(self, events: list[Event[Any]]) -> Flow[BaseException | None]:
        """Call the handler; ack what it left un-acked when it returns, in one round trip.

        Returns the handler's exception (its un-acked events stay pending and are re-read
        first next time). Failures of fluxabee's own (acking, a lapsed lease) raise.
        """
        lease = self.lease
        if lease is not None and not lease.held():
            self.pending_first = True
            raise ConsumerLockedError(
                f"the consumer_single lock of {self.stream!r} lapsed before the hand-over"
            )
        try:
            failure: BaseException | None = yield Hand(events)
        except BaseException:
            self.lost_reply()  # the handler was interrupted: its events are ours, unacked
            raise
        if failure is not None:
            self.pending_first = True
            self.remember(events, failure)
            return failure
        rest = [e.id for e in events if not e.acked]
        if rest:
            try:
                yield from self.ack(rest)
            except BaseException:  # handled, maybe not acked: ours, to hand over again
                self.lost_reply()
                raise
            for event in events:
                event.acked = True
            if self.observers:
                self.observers.acked(self.stream, self.group, len(rest))
        return None

    # -- the public flows ----------------------------------------------------------------

    def consume(self, count: int, block_ms: int) -> Flow[int]:
        """One batch: read, hand over, ack; the handler's exception propagates."""
        events = yield from self.triage((yield from self.read(count, block_ms)))
        if not events:
            return 0
        failure = yield from self.hand_over(events)
        if failure is not None:
            unacked = [e for e in events if not e.acked]
            if len(unacked) == 1 and self.policy.dead_letters_at_once(failure):
                yield from self.dead_letter(unacked, handed=[unacked[0].delivery_count])
            raise failure
        yield from self.maintain()
        return len(events)

    def autoclaim(self, count: int, min_idle_ms: int) -> Flow[int]:
        """Claim entries idle longer than ``min_idle_ms`` on any consumer, round after round,
        and hand each round over; returns how many events were handed over."""
        yield from self.refresh_lock()
        start, total = "0-0", 0
        while True:
            entries, cursor = yield from self.claim(count, min_idle_ms, start)
            events = yield from self.triage(entries)
            if events:
                failure = yield from self.hand_over(events)
                if failure is not None:
                    raise failure
                total += len(events)
            if cursor in CURSOR_END:
                return total
            start = cursor

    def maintain(self) -> Flow[None]:
        """The stream's retention step when one is due (a trim)."""
        yield from self.unless_vanished(self.retention.maintain(self._clock()), None)

    def cleanup(self) -> Flow[bool]:
        """Leave the group unless holding pending entries (atomic); whether it was left."""
        reply = _raise_errors((yield Send([cleanup_consumer(self.stream, self.group, self.name)])))
        self.pending_first = True
        return bool(reply[0] == 1)
