"""Pure: ``run``'s flows of a consumer: poison isolation, backoff, claiming, outages.

:class:`RunLoop` is the base class of :class:`fluxabee._machine.ConsumerMachine`: it holds
how a failed batch is split and retried, when claims run, how an outage or a held lock is
waited out, written against the steps the machine provides (read, claim, triage, hand
over, redeliver, dead-letter), which it declares abstract. It imports nothing of the
machine, so there is no import cycle; each file keeps one job. The same generator flows
of :mod:`fluxabee._actions`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ._actions import Flow, Lease, Pause
from ._constants import MAX_REMEMBERED_ERRORS
from ._observe import Observers
from ._policy import RetryPolicy, needs_a_human, reconnect_delay
from ._protocol import Entry
from .errors import BrokerConnectionError, ConsumerLockedError
from .event import Event

logger = logging.getLogger("fluxabee")

#: Cursor values that end an XAUTOCLAIM scan.
CURSOR_END = ("0-0", "0")


def counted(count: int, one: str, many: str) -> str:
    """``1 event``, ``2 events``: a count with its noun, singular or plural."""
    return f"{count} {one if count == 1 else many}"


def log_batch_failure(stream: str, events: list[Event[Any]], exc: BaseException) -> None:
    """One line for a failed batch that is split (the IDs, the first twenty); the traceback
    comes with the event that fails alone."""
    shown = ", ".join(e.id for e in events[:20]) + (" ..." if len(events) > 20 else "")
    logger.error(
        "handler failed on a batch of %d events of %s (ids %s): %r; handing each over alone",
        len(events),
        stream,
        shown,
        exc,
    )


class RunLoop(ABC):
    """``run``: read, deliver (isolating poison, backing off) and claim until stopped."""

    stream: str
    group: str
    name: str
    policy: RetryPolicy
    lease: Lease | None
    observers: Observers | None
    pending_due: float
    #: IDs of the events whose failure was logged with its traceback (once per event).
    traced: dict[str, None]
    #: Per event, its deliveries in failed batches that were split (not counted).
    excused: dict[str, int]
    _clock: Callable[[], float]
    _rand: Callable[[], float]

    # -- the steps the machine provides --------------------------------------------------

    @abstractmethod
    def reset(self) -> None:
        """After an outage or a vanished group: recreate the group, re-read own pending."""

    @abstractmethod
    def backoff(self, failed: list[Event[Any]]) -> float:
        """Seconds before failed events are handed over again."""

    @abstractmethod
    def read(self, count: int, block_ms: int) -> Flow[list[Any]]:
        """Own pending entries first, then new ones."""

    @abstractmethod
    def claim(self, count: int, min_idle_ms: int, start: str) -> Flow[tuple[list[Entry], str]]:
        """One XAUTOCLAIM round: claimed entries and the next cursor."""

    @abstractmethod
    def triage(self, entries: list[Any]) -> Flow[list[Event[Any]]]:
        """Entries -> events to hand over (acking the gone, dead-lettering the exceeded)."""

    @abstractmethod
    def hand_over(self, events: list[Event[Any]]) -> Flow[BaseException | None]:
        """Call the handler and ack; the handler's exception, or ``None``."""

    @abstractmethod
    def redeliver(self, ids: list[str]) -> Flow[list[Entry]]:
        """Hand again exactly ``ids`` this consumer holds, each a delivery of its own."""

    @abstractmethod
    def maintain(self) -> Flow[None]:
        """The stream's retention step when one is due."""

    @abstractmethod
    def standby(self) -> None:
        """Say, once per wait, that the lock is held by another consumer (``consumer_single``)."""

    @abstractmethod
    def dead_letter(self, events: list[Event[Any]], handed: list[int]) -> Flow[None]:
        """Move ``events`` to the dead letters."""

    # -- the log -------------------------------------------------------------------------

    def log_event_failure(self, event: Event[Any], exc: BaseException) -> None:
        """A failure of ``event`` handed over alone: with its traceback the first time,
        one line (with the delivery count) after that."""
        first = event.id not in self.traced
        if first:
            self.traced[event.id] = None
            while len(self.traced) > MAX_REMEMBERED_ERRORS:
                self.traced.pop(next(iter(self.traced)))
        logger.error(
            "handler failed on event %s of %s (delivery %d): %r",
            event.id,
            self.stream,
            event.delivery_count,
            exc,
            exc_info=exc if first else None,
        )

    def _excuse(self, failed: list[Event[Any]]) -> None:
        """The failed events of a batch that is split: this delivery does not count toward
        ``max_deliveries`` (each is handed over alone next, and that one counts)."""
        excused = self.excused
        for event in failed:
            excused[event.id] = excused.get(event.id, 0) + 1
        while len(excused) > MAX_REMEMBERED_ERRORS:
            excused.pop(next(iter(excused)))

    # -- the flows -----------------------------------------------------------------------

    def deliver(self, events: list[Event[Any]]) -> Flow[int]:
        """``run``'s hand-over: poison isolation, then backoff. Returns how many events ended
        acked by a handler (also those it acked inside a batch that then raised)."""
        if not events:
            return 0
        failure = yield from self.hand_over(events)
        if failure is None:
            return len(events)
        if len(events) > 1:
            log_batch_failure(self.stream, events, failure)
        else:
            self.log_event_failure(events[0], failure)
        handled = sum(1 for e in events if e.acked)
        failed = [e for e in events if not e.acked]
        if len(events) > 1:
            self._excuse(failed)
            isolated, failed = yield from self._isolate(failed)
            handled += isolated
        elif self.policy.dead_letters_at_once(failure):
            yield from self.dead_letter(failed, handed=[e.delivery_count for e in failed])
            failed = []
        if failed:
            if self.observers:
                self.observers.retried(self.stream, self.group, failed)
            delay = self.backoff(failed)
            if self.lease is not None:
                yield Pause(delay)  # keep the order: nothing moves past a failed event
            else:
                self.pending_due = self._clock() + delay
        return handled

    def _isolate(self, failed: list[Event[Any]]) -> Flow[tuple[int, list[Event[Any]]]]:
        """Hand each failed event again, alone; returns (handled, still failing)."""
        handled = 0
        still: list[Event[Any]] = []
        for index, previous in enumerate(failed):
            if self.observers:
                self.observers.retried(self.stream, self.group, [previous])
            events = yield from self.triage((yield from self.redeliver([previous.id])))
            if not events:
                continue  # acked meanwhile, claimed by another consumer, or dead-lettered
            failure = yield from self.hand_over(events)
            if failure is None:
                handled += 1
                continue
            self.log_event_failure(events[0], failure)
            if self.policy.dead_letters_at_once(failure):
                yield from self.dead_letter(events, handed=[events[0].delivery_count])
                continue
            still += events
            if self.lease is not None:
                still += failed[index + 1 :]  # consumer_single: the rest waits behind it
                break
        return handled, still

    def claim_stale(self, count: int, min_idle_ms: int, stopped: Callable[[], bool]) -> Flow[int]:
        """``run``'s claiming: every entry idle longer than ``min_idle_ms``, delivered."""
        start, total = "0-0", 0
        while not stopped():
            entries, cursor = yield from self.claim(count, min_idle_ms, start)
            total += yield from self.deliver((yield from self.triage(entries)))
            if cursor in CURSOR_END:
                break
            start = cursor
        return total

    def run(
        self, count: int, block_ms: int, min_idle_ms: int, stopped: Callable[[], bool]
    ) -> Flow[int]:
        """Read, deliver and claim until ``stopped()``; how many events handlers acked."""
        total, attempt, outage_started = 0, 0, 0.0
        claims = self.lease is None
        next_claim = self._clock()
        while not stopped():
            try:
                if claims and self._clock() >= next_claim:
                    total += yield from self.claim_stale(count, min_idle_ms, stopped)
                    next_claim = self._clock() + max(min_idle_ms / 2000, 0.01)
                events = yield from self.triage((yield from self.read(count, block_ms)))
                total += yield from self.deliver(events)
                yield from self.maintain()
            except ConsumerLockedError:
                assert self.lease is not None
                self.standby()
                yield Pause(self.lease.poll_interval)  # a hot standby
                continue
            except BrokerConnectionError as exc:  # RedisUnavailableError too
                if needs_a_human(exc):
                    raise
                attempt += 1
                if attempt == 1:
                    outage_started = self._clock()
                    logger.warning(
                        "consumer %s of %s lost Redis (%s); retrying",
                        self.name,
                        self.stream,
                        exc,
                    )
                self.reset()
                yield Pause(reconnect_delay(attempt, self._rand))
                continue
            if attempt:
                logger.warning(
                    "consumer %s of %s reconnected after %.1f s",
                    self.name,
                    self.stream,
                    self._clock() - outage_started,
                )
                attempt = 0
        return total
