"""Pure: the window of ``process``: many events in flight, in order per key.

A :class:`Window` is an explicit state object, h11-style: its IO shell
(:mod:`fluxabee._async.process`) feeds it what happened (entries read, a handler that
finished ok / raised / raised :class:`Retry`, an ack or a dead letter done, stop) and asks
it what to do next (how many entries to read, which events to start, which IDs to ack,
renew, redeliver, dead-letter or hand back, and when to wake up). The clock and the jitter
source are injected: every rule is unit-tested in milliseconds.

Why a state object and not a generator flow like :class:`~fluxabee._machine.ConsumerMachine`:
a flow is one thread of control (read, hand over, ack, in turn); a window has up to
``concurrency`` handlers, a read and timers (backoffs, lease renewals, coalesced acks)
outstanding at once, and which one ends first is only known to the shell. The flows of the
machine still do every Redis step of it (reading own pending first, ``prepare``, dead
letters, acks in the stream's ack mode, redelivery); the window only decides.

The rules, each in one place:

- **The window.** At most ``concurrency`` events are in the handler (or being redelivered
  for a retry); events read but not started (ready, or queued behind their key) take slots
  too, so a read asks only for ``concurrency`` minus both: nothing sits read for long.
- **Order per key.** An event whose key has an event ready, in the handler, waiting for a
  backoff or being dead-lettered is queued behind it, FIFO; the next one starts once that
  one is acked or dead-lettered, never after a mere failure. Without a key function no
  order is kept (``ordered=True`` without one: the whole stream is one key).
- **Retries hold no slot.** A failed event waits for the retry policy's backoff (or the
  delay of :class:`Retry`) outside the window, then is redelivered (a delivery Redis
  counts) before it starts again; a failure whose next delivery would exceed
  ``max_deliveries``, or of a ``dead_letter_on`` type, is dead-lettered at once.
- **Coalesced acks.** Finished events are acked together, :data:`ACK_DELAY` after the first
  of them (or at once when :data:`ACK_BATCH` wait), one round trip for many.
- **Leases.** Every event held (in the handler, queued, in backoff) is renewed every
  ``min_idle / 3``, all in one round trip, as long as its last renewal is younger than
  ``min_idle``; an older one may already be another consumer's: it is reported (logged)
  and no longer renewed.
- **Stop.** Nothing more is read or started; events read but never started (ready, queued,
  in backoff, failed after the stop) are handed back; the ones in the handler finish.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import random
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from . import _validate as validate
from ._actions import Flow, Probe, Send
from ._policy import RetryPolicy
from ._protocol import Arg
from .errors import InvalidArgumentError, RedisReplyError
from .event import Event

#: Seconds finished events wait to be acked together with others (one round trip).
ACK_DELAY = 0.005
#: Finished events that are acked at once, without waiting for :data:`ACK_DELAY`.
ACK_BATCH = 500
#: Leases are renewed every ``min_idle / RENEW_DIVISOR`` (a margin for a slow round trip).
RENEW_DIVISOR = 3
#: Shortest interval between two lease renewals or two claims, seconds.
MIN_INTERVAL = 0.01

#: Events in the handler at once by default (``process(concurrency=None)``).
DEFAULT_CONCURRENCY = 10
#: Seconds ``process`` lets its handlers finish after a stop, by default (below the 30 s
#: a container platform such as Kubernetes waits between SIGTERM and SIGKILL, so the acks
#: of what finished and the hand-back still get out).
DEFAULT_SHUTDOWN_TIMEOUT = 25.0

#: The key of every event of an ordered window without a key function.
_ONE_KEY: Hashable = ("fluxabee", "whole stream")
#: The key of every event of an unordered window (never queued).
_NO_KEY: Any = object()

# What an event held by the window is doing.
READY, QUEUED, RUNNING, BACKOFF, DUE, REDELIVERING, DYING = range(7)


class Retry(Exception):
    """Raised by a ``process`` handler: hand this event over again ``after`` seconds.

    ``after`` (seconds or a ``timedelta``) replaces the retry policy's backoff for this
    delivery; the retry is logged at info level, not as a handler error, and still counts
    toward ``max_deliveries``: an event cannot retry forever. A control-flow signal from
    the handler to fluxabee, so it derives from ``Exception``, not from ``FluxabeeError``
    (which fluxabee raises to its callers): ``except FluxabeeError`` around a call in a
    handler never swallows it.
    """

    def __init__(self, after: float | _dt.timedelta = 0.0) -> None:
        """``after``: seconds (or a ``timedelta``) before the event is handed over again."""
        seconds = validate.seconds(after, "after")
        super().__init__(f"retry after {seconds:g} s")
        #: The delay in seconds.
        self.after = seconds


def key_function(
    key: str | Callable[[Event[Any]], Hashable] | None,
) -> Callable[[Event[Any]], Hashable] | None:
    """``process``'s ``key``: a function of the event, or the name of a meta field (an
    event without that field has the key ``""``: such events keep their order together)."""
    if key is None or callable(key):
        return key
    if isinstance(key, str) and key:
        field = key
        return lambda event: event.meta.get(field, "")
    raise InvalidArgumentError(
        f"key must be a meta field name or a function of the event, got {key!r}"
    )


class Held:
    """An event the window holds (read, not yet acked or handed back)."""

    __slots__ = ("due", "event", "key", "renewed", "since", "state")

    def __init__(self, event: Event[Any], key: Any, state: int, now: float) -> None:
        self.event = event
        self.key = key
        self.state = state
        #: Clock time the handler started (RUNNING) or the backoff ends (BACKOFF).
        self.since = now
        self.due = 0.0
        #: Clock time of the last read, claim or renewal that reset its idle time.
        self.renewed = now


class Window:
    """The state and rules of one ``process`` loop (see the module docstring)."""

    def __init__(
        self,
        *,
        concurrency: int,
        key: Callable[[Event[Any]], Hashable] | None,
        ordered: bool,
        policy: RetryPolicy,
        min_idle: float,
        clock: Callable[[], float],
        claims: bool = False,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.concurrency = concurrency
        self.policy = policy
        self.min_idle = min_idle
        self._key = key
        self._ordered = ordered or key is not None
        self._clock = clock
        self._rand = rand
        now = clock()
        self._held: dict[str, Held] = {}
        #: Per busy key: the events queued behind the one that holds it.
        self._queues: dict[Hashable, deque[Held]] = {}
        self._queued = 0
        self._ready: deque[Held] = deque()
        #: Events in the handler or being redelivered (each takes a slot).
        self._running = 0
        self._backoff: list[tuple[float, int, str]] = []
        self._seq = 0
        self._due: deque[Held] = deque()
        self._dying: list[tuple[Event[Any], int]] = []
        self._acks: list[str] = []
        #: Finished events whose ack Redis has not confirmed yet.
        self._unconfirmed: set[str] = set()
        self._acks_since = 0.0
        self._handback: list[str] = []
        self._renew_every = max(MIN_INTERVAL, min_idle / RENEW_DIVISOR)
        self._next_renew = now + self._renew_every
        self._lapsed: set[str] = set()
        self._claims = claims
        self._claim_every = max(MIN_INTERVAL, min_idle / 2)
        self._next_claim = now
        #: The XAUTOCLAIM cursor of the claim round under way.
        self.claim_cursor = "0-0"
        #: No more reading or starting: :meth:`stop` was called.
        self.stopping = False

    # -- what the window holds -----------------------------------------------------------

    @property
    def running(self) -> int:
        """Events in the handler (or being redelivered for a retry)."""
        return self._running

    @property
    def held(self) -> int:
        """Events read and not yet finished, acked away or handed back."""
        return len(self._held)

    def holds(self, entry_id: str) -> bool:
        """Whether the window holds the entry ``entry_id`` (or finished it and its ack is
        not confirmed yet: a re-read of own pending entries must not hand it again)."""
        return entry_id in self._held or entry_id in self._unconfirmed

    def to_read(self) -> int:
        """How many entries a read may ask for now: the slots not taken by events in the
        handler or waiting for one (0 once stopping)."""
        if self.stopping:
            return 0
        taken = self._running + len(self._ready) + self._queued + len(self._due)
        return max(0, self.concurrency - taken)

    def idle(self) -> bool:
        """Nothing in the handler, nothing to ack, dead-letter or hand back."""
        return not (self._running or self._acks or self._dying or self._handback)

    # -- inputs --------------------------------------------------------------------------

    def received(self, events: list[Event[Any]], at: float) -> None:
        """Events a read (or claim) delivered to this consumer at clock time ``at``.

        Events the window already holds (a re-read of own pending entries) are skipped;
        after a stop, new ones go straight to the hand-back list.
        """
        held, key = self._held, self._key
        if self.stopping:
            self._handback.extend(e.id for e in events if e.id not in held)
            return
        if key is None and not self._ordered:  # the hot path: no key, no queues
            ready = self._ready
            for event in events:
                if event.id not in held:
                    item = held[event.id] = Held(event, _NO_KEY, READY, at)
                    ready.append(item)
            return
        for event in events:
            if event.id in held:
                continue
            k = key(event) if key is not None else _ONE_KEY
            item = Held(event, k, READY, at)
            held[event.id] = item
            queue = self._queues.get(k)
            if queue is None:
                self._queues[k] = deque()
                self._ready.append(item)
            else:
                item.state = QUEUED
                queue.append(item)
                self._queued += 1

    def finished(self, event: Event[Any], failure: BaseException | None) -> float | None:
        """The handler of ``event`` returned (``failure`` None) or raised ``failure``.

        Returns the retry delay in seconds when the event waits for a retry, else
        ``None`` (acked, dead-lettered or handed back).
        """
        entry_id = event.id
        item = self._held.get(entry_id)
        if item is None or item.state != RUNNING:
            return None
        self._running -= 1
        if failure is None:  # the hot path: _ack and _release, inlined
            if not event.acked:
                acks = self._acks
                if not acks:
                    self._acks_since = self._clock()
                acks.append(entry_id)
                self._unconfirmed.add(entry_id)
            del self._held[entry_id]
            if self._lapsed:
                self._lapsed.discard(entry_id)
            if item.key is not _NO_KEY:
                self._next_of(item.key)
            return None
        if self.stopping:
            del self._held[event.id]
            self._handback.append(event.id)
            return None
        handed = event.delivery_count
        if isinstance(failure, Retry):
            delay = failure.after
        elif self.policy.dead_letters_at_once(failure):
            self._die(item, handed)
            return None
        else:
            delay = self.policy.delay(handed, self._rand)
        if self.policy.exceeded(handed + 1):
            self._die(item, handed)
            return None
        item.state = BACKOFF
        item.due = self._clock() + delay
        self._seq += 1
        heapq.heappush(self._backoff, (item.due, self._seq, event.id))
        return delay

    def redelivered(self, ids: list[str], events: list[Event[Any]]) -> list[Event[Any]]:
        """The redelivery of ``ids`` (see :meth:`redeliveries`) gave ``events``; returns
        the ones to start now. An ID without an event was dead-lettered, deleted or is no
        longer this consumer's: its key moves on."""
        fresh = {e.id: e for e in events}
        now = self._clock()
        start: list[Event[Any]] = []
        for entry_id in ids:
            item = self._held.get(entry_id)
            if item is None or item.state != REDELIVERING:
                continue
            event = fresh.get(entry_id)
            if event is None or self.stopping:
                self._running -= 1
                if event is None:
                    self._release(item)
                else:
                    del self._held[entry_id]
                    self._handback.append(entry_id)
                continue
            item.event = event
            item.state = RUNNING
            item.since = item.renewed = now
            start.append(event)
        return start

    def redelivery_failed(self, ids: list[str]) -> None:
        """The redelivery of ``ids`` failed (an outage, a lost lock): they wait again."""
        for entry_id in reversed(ids):
            item = self._held.get(entry_id)
            if item is not None and item.state == REDELIVERING:
                self._running -= 1
                item.state = DUE
                self._due.appendleft(item)

    def dead_lettered(self, events: list[Event[Any]]) -> None:
        """The dead-lettering of ``events`` ended: acked ones are gone (their keys move on);
        the others (their XADD failed) wait for a backoff and are tried again."""
        for event in events:
            item = self._held.get(event.id)
            if item is None or item.state != DYING:
                continue
            if event.acked:
                self._release(item)
                continue
            item.state = BACKOFF
            item.due = self._clock() + self.policy.delay(event.delivery_count, self._rand)
            self._seq += 1
            heapq.heappush(self._backoff, (item.due, self._seq, event.id))

    def acked(self, ids: list[str]) -> None:
        """Redis confirmed the ack of ``ids``."""
        self._unconfirmed.difference_update(ids)

    def ack_failed(self, ids: list[str]) -> None:
        """An ack round trip failed: its IDs are acked with the next one."""
        if ids:
            if not self._acks:
                self._acks_since = self._clock()
            self._acks[:0] = ids

    def renewed(self, ids: list[str], sent_at: float) -> None:
        """Redis reset the idle time of ``ids`` with a command sent at ``sent_at``."""
        held = self._held
        for entry_id in ids:
            item = held.get(entry_id)
            if item is not None:
                item.renewed = sent_at

    def claimed(self, cursor: str) -> None:
        """A claim round ended with ``cursor``; at the end of a scan the next one is due
        ``min_idle / 2`` later."""
        self.claim_cursor = cursor
        if cursor in ("0-0", "0"):
            self.claim_cursor = "0-0"
            self._next_claim = self._clock() + self._claim_every

    def stop(self) -> None:
        """Stop reading and starting; what was read and never started is handed back."""
        if self.stopping:
            return
        self.stopping = True
        for item in list(self._held.values()):
            if item.state in (READY, QUEUED, BACKOFF, DUE):
                del self._held[item.event.id]
                self._handback.append(item.event.id)
        self._ready.clear()
        self._queues.clear()
        self._queued = 0
        self._backoff.clear()
        self._due.clear()

    # -- outputs -------------------------------------------------------------------------

    def start(self) -> list[Event[Any]]:
        """The events to hand to the handler now (in stream order per key)."""
        if self.stopping:
            return []
        now = self._clock()
        started: list[Event[Any]] = []
        ready = self._ready
        while ready and self._running < self.concurrency:
            item = ready.popleft()
            item.state = RUNNING
            item.since = now
            self._running += 1
            started.append(item.event)
        return started

    def redeliveries(self) -> list[str]:
        """IDs whose backoff is over, to be redelivered (a new delivery each) and started;
        each takes a slot now."""
        if self.stopping:
            return []
        now = self._clock()
        heap = self._backoff
        while heap and heap[0][0] <= now:
            item = self._held.get(heapq.heappop(heap)[2])
            if item is not None and item.state == BACKOFF:
                item.state = DUE
                self._due.append(item)
        ids: list[str] = []
        while self._due and self._running < self.concurrency:
            item = self._due.popleft()
            item.state = REDELIVERING
            self._running += 1
            ids.append(item.event.id)
        return ids

    def dead_letters(self) -> list[tuple[Event[Any], int]]:
        """Events to dead-letter now, each with how many times it was handed over."""
        dying, self._dying = self._dying, []
        return dying

    def acks(self, force: bool = False) -> list[str]:
        """IDs to ack now, coalesced: ``ACK_DELAY`` after the first, at ``ACK_BATCH``, at
        once when stopping or ``force``."""
        acks = self._acks
        if not acks:
            return []
        if (
            force
            or self.stopping
            or len(acks) >= ACK_BATCH
            or self._clock() - self._acks_since >= ACK_DELAY
        ):
            self._acks = []
            return acks
        return []

    def renewals(self) -> tuple[list[str], list[Event[Any]]]:
        """When a renewal is due: the IDs to renew now (every held event whose lease is
        still its own), and the events whose lease lapsed (to be logged once each)."""
        now = self._clock()
        if now < self._next_renew:
            return [], []
        self._next_renew = now + self._renew_every
        ids: list[str] = []
        lapsed: list[Event[Any]] = []
        limit = now - self.min_idle
        for entry_id, item in self._held.items():
            if item.renewed > limit:
                ids.append(entry_id)
            elif entry_id not in self._lapsed:
                self._lapsed.add(entry_id)
                lapsed.append(item.event)
        return ids, lapsed

    @property
    def claims(self) -> bool:
        """Whether this window claims stale entries of other consumers."""
        return self._claims

    def to_claim(self) -> int:
        """How many stale entries of other consumers to claim now (0: not now)."""
        if not self._claims or self.stopping:
            return 0
        if self.claim_cursor == "0-0" and self._clock() < self._next_claim:
            return 0
        return self.to_read()

    def hand_back(self) -> list[str]:
        """IDs to hand back now (read and never started, or failed after the stop)."""
        ids, self._handback = self._handback, []
        return ids

    def wake_in(self) -> float | None:
        """Seconds until the next timer (an ack, a backoff, a renewal, a claim) is due, or
        ``None`` when nothing is held or scheduled."""
        now = self._clock()
        times: list[float] = []
        if self._acks:
            times.append(self._acks_since + ACK_DELAY)
        if not self.stopping:
            if self._backoff:
                times.append(self._backoff[0][0])
            if self._held:
                times.append(self._next_renew)
            if self._claims and self.to_read():  # no free slot: no claim to wake up for
                times.append(self._next_claim)
        if not times:
            return None
        return max(0.0, min(times) - now)

    # -- helpers -------------------------------------------------------------------------

    def _ack(self, entry_id: str) -> None:
        if not self._acks:
            self._acks_since = self._clock()
        self._acks.append(entry_id)
        self._unconfirmed.add(entry_id)

    def _die(self, item: Held, handed: int) -> None:
        item.state = DYING
        self._dying.append((item.event, handed))

    def _release(self, item: Held) -> None:
        """``item`` is done here (acked, dead-lettered or gone): its key's next event is
        ready."""
        event_id = item.event.id
        self._held.pop(event_id, None)
        self._lapsed.discard(event_id)
        if item.key is not _NO_KEY:
            self._next_of(item.key)

    def _next_of(self, key: Hashable) -> None:
        """The event holding ``key`` is done: the next one queued behind it is ready."""
        queue = self._queues.get(key)
        if queue is None:
            return
        if queue:
            following = queue.popleft()
            self._queued -= 1
            following.state = READY
            self._ready.append(following)
        else:
            del self._queues[key]


# -- the Redis steps only the window takes ---------------------------------------------------


def renew_command(stream: str, group: str, consumer: str, ids: list[str]) -> list[Arg]:
    """``XCLAIM <stream> <group> <me> 0 <ids> JUSTID``: reset the idle time of entries this
    consumer holds, without raising their delivery counts (a lease renewal)."""
    return [b"XCLAIM", stream, group, consumer, 0, *ids, b"JUSTID"]


def hand_back_command(
    stream: str, group: str, consumer: str, ids: list[str], idle_ms: int
) -> list[Arg]:
    """``XCLAIM <stream> <group> <me> 0 <ids> IDLE <idle_ms> JUSTID``: keep the entries but
    make them look idle for ``idle_ms``, so whoever claims next takes them at once."""
    return [b"XCLAIM", stream, group, consumer, 0, *ids, b"IDLE", idle_ms, b"JUSTID"]


def hand_back_idle_ms(min_idle_ms: int) -> int:
    """The idle time handed-back entries get: past ``min_idle`` (which the consumers of a
    group share) with a margin, so the next claim of any of them takes them."""
    return 2 * min_idle_ms + 1000


#: The command that releases pending entries back to the group (Redis 8.8+).
XNACK = "XNACK"


def hand_back(
    stream: str, group: str, consumer: str, ids: list[str], min_idle_ms: int
) -> Flow[None]:
    """Hand ``ids`` (read, never started) back to the group: ``XNACK ... SILENT`` where the
    server has it (the delivery did not count), else XCLAIM to oneself with the idle time
    past ``min_idle`` (:func:`hand_back_command`)."""
    if (yield Probe(XNACK)):
        command: list[Arg] = [b"XNACK", stream, group, b"SILENT", b"IDS", len(ids), *ids]
    else:
        command = hand_back_command(stream, group, consumer, ids, hand_back_idle_ms(min_idle_ms))
    yield from send_one(command)


def send_one(command: list[Arg]) -> Flow[Any]:
    """Send one retry-safe command (XCLAIM to oneself is idempotent); its reply, or raise
    its error reply."""
    reply = (yield Send([command], retry_safe=True))[0]
    if isinstance(reply, RedisReplyError):
        raise reply
    return reply
