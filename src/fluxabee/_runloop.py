"""Pure: ``run``'s flows of a consumer: poison isolation, backoff, claiming, outages.

Methods of :class:`fluxabee._machine.ConsumerMachine` (kept apart so each file has one
job; the class binds them): how a failed batch is split and retried, when claims run, how
an outage or a held lock is waited out. The same generator flows of
:mod:`fluxabee._actions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _machine
from ._actions import Flow, Pause
from ._policy import reconnect_delay
from .errors import BrokerConnectionError, ConsumerLockedError
from .event import Event

if TYPE_CHECKING:
    from ._machine import ConsumerMachine


def deliver(self: ConsumerMachine, events: list[Event[Any]]) -> Flow[int]:
    """``run``'s hand-over: poison isolation, then backoff. Returns how many events ended
    acked by a handler (also those it acked inside a batch that then raised)."""
    if not events:
        return 0
    failure = yield from self.hand_over(events)
    if failure is None:
        return len(events)
    _machine.log_failure(self.stream, events, failure)
    handled = sum(1 for e in events if e.acked)
    failed = [e for e in events if not e.acked]
    if len(events) > 1:
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


def isolate(self: ConsumerMachine, failed: list[Event[Any]]) -> Flow[tuple[int, list[Event[Any]]]]:
    """Hand each failed event again, alone; returns (handled, still failing)."""
    handled = 0
    still: list[Event[Any]] = []
    for index, previous in enumerate(failed):
        if self.observers:
            self.observers.retried(self.stream, self.group, [previous])
        events = yield from self.prepare((yield from self._redeliver([previous.id])))
        if not events:
            continue  # acked meanwhile, claimed by another consumer, or dead-lettered
        failure = yield from self.hand_over(events)
        if failure is None:
            handled += 1
            continue
        _machine.log_failure(self.stream, events, failure)
        if self.policy.dead_letters_at_once(failure):
            yield from self.dead_letter(events, handed=[events[0].delivery_count])
            continue
        still += events
        if self.lease is not None:
            still += failed[index + 1 :]  # consumer_single: the rest waits behind it
            break
    return handled, still


def claim_stale(
    self: ConsumerMachine, count: int, min_idle_ms: int, stopped: Callable[[], bool]
) -> Flow[int]:
    """``run``'s claiming: every entry idle longer than ``min_idle_ms``, delivered."""
    start, total = "0-0", 0
    while not stopped():
        entries, cursor = yield from self.claim(count, min_idle_ms, start)
        total += yield from self.deliver((yield from self.prepare(entries)))
        if cursor in _machine.CURSOR_END:
            break
        start = cursor
    return total


def run(
    self: ConsumerMachine,
    count: int,
    block_ms: int,
    min_idle_ms: int,
    stopped: Callable[[], bool],
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
            events = yield from self.prepare((yield from self.read(count, block_ms)))
            total += yield from self.deliver(events)
            yield from self.retention.maintain(self._clock())
        except ConsumerLockedError:
            assert self.lease is not None
            self.standby()
            yield Pause(self.lease.poll_interval)  # a hot standby
            continue
        except BrokerConnectionError as exc:  # RedisUnavailableError too
            attempt += 1
            if attempt == 1:
                outage_started = self._clock()
                _machine.logger.warning(
                    "fluxabee: consumer %s of %s lost Redis (%s); retrying",
                    self.name,
                    self.stream,
                    exc,
                )
            self.reset()
            yield Pause(reconnect_delay(attempt, self._rand))
            continue
        if attempt:
            _machine.logger.warning(
                "fluxabee: consumer %s of %s reconnected after %.1f s",
                self.name,
                self.stream,
                self._clock() - outage_started,
            )
            attempt = 0
    return total
