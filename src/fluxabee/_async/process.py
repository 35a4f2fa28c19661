"""``consumer.process``: many events in flight, in order per key (the IO shell).

Every decision is the pure :class:`fluxabee._window.Window`'s (which event may start, what
to ack, renew, redeliver, dead-letter or hand back, when to wake up), and every Redis step
is a flow of the consumer's :class:`~fluxabee._machine.ConsumerMachine` (reading own
pending first, ``triage``, dead letters, acks in the stream's ack mode, redelivery,
claims). This loop only runs them: handler calls as tasks (:class:`AsyncWorkers`: threads
in the sync twin), one read and one ack at a time beside them, and the window's timers.

Acks go out beside the loop, not in it: while Redis acks (and, with ``XDEL`` retention,
deletes) one batch, the loop reads, triages and handles the next, so Redis and Python work
at the same time; only when the loop ends is an ack awaited in line.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from .._actions import Flow, Lease
from .._backends import AsyncFlag
from .._constants import BLOCK_READ_MARGIN
from .._machine import ConsumerMachine
from .._observe import Batch, Observers
from .._policy import needs_a_human, reconnect_delay
from .._protocol import Entry
from .._window import (
    Retry,
    Window,
    hand_back,
    renew_command,
    send_one,
)
from .._workers import AsyncWorkers
from ..errors import BrokerConnectionError, ConsumerLockedError
from ..event import AsyncEvent

if TYPE_CHECKING:
    from .consumer import AsyncDriver

logger = logging.getLogger("fluxabee")

#: Longest wait of the loop, seconds (how soon it notices ``stop()`` when nothing happens).
WAIT_SLICE = 0.05


def read_flow(
    machine: ConsumerMachine, window: Window, count: int, block_ms: int, clock: Any
) -> Flow[tuple[list[Any], float]]:
    """Own pending entries (after those already read) first, then new ones: the events
    (dead letters written, deleted entries acked) and the clock time the read was sent."""
    sent_at = clock()
    items = yield from machine.read(count, block_ms)
    if items and isinstance(items[0], Entry):  # own pending: read on after them next time
        machine.pending_start = items[-1].id
        items = [e for e in items if not window.holds(e.id)]
    return (yield from machine.triage(items)), sent_at


def claim_flow(
    machine: ConsumerMachine, window: Window, count: int, min_idle_ms: int
) -> Flow[tuple[list[Any], str]]:
    """One XAUTOCLAIM round from the window's cursor: the events and the next cursor."""
    entries, cursor = yield from machine.claim(count, min_idle_ms, window.claim_cursor)
    entries = [e for e in entries if not window.holds(e.id)]
    return (yield from machine.triage(entries)), cursor


def redeliver_flow(machine: ConsumerMachine, ids: list[str]) -> Flow[list[Any]]:
    """Hand exactly ``ids`` again (each a delivery Redis counts), as events."""
    return (yield from machine.triage((yield from machine.redeliver(ids))))


class AsyncProcessor:
    """One ``process`` loop: a window of handler tasks, a read beside them, timers."""

    def __init__(
        self,
        *,
        driver: AsyncDriver,
        machine: ConsumerMachine,
        stop: AsyncFlag,
        handler: Any,
        window: Window,
        block_ms: int,
        min_idle_ms: int,
        shutdown_timeout: float,
        observers: Observers | None,
    ) -> None:
        self._driver = driver
        self._machine = machine
        self._stop = stop
        self._window = window
        self._block_ms = block_ms
        self._min_idle_ms = min_idle_ms
        self._shutdown_timeout = shutdown_timeout
        self._observers = observers
        self._lease: Lease | None = machine.lease
        self._workers = AsyncWorkers(window.concurrency, handler)
        self._clock = time.monotonic
        self._jobs: dict[Any, AsyncEvent] = {}
        self._read: Any = None
        #: The ack job under way (one at a time) and the IDs it acks.
        self._acking: Any = None
        self._ack_ids: list[str] = []
        self._attempt = 0
        self._outage_started = 0.0
        self._quiet_until = 0.0
        self._handled = 0
        #: The in-flight count last told to the observers.
        self._told = 0

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until ``stop()``: how many events a handler finished without an error."""
        window, jobs, workers, clock = self._window, self._jobs, self._workers, self._clock
        stop = self._stop
        deadline = 0.0
        # A new window holds nothing: whatever is pending on this consumer (an earlier
        # loop's unfinished or cancelled events) is read again first, in stream order.
        self._machine.lost_reply()
        self._machine.rescan_own_pending = False  # the window knows what it holds
        self._machine.new_after_pending = not window.claims  # own pending, claims, new
        try:
            while True:
                workers.check_cancelled()
                if stop.is_set() and not window.stopping:
                    window.stop()
                    deadline = clock() + self._shutdown_timeout
                if window.stopping:
                    if not jobs and self._read is None and self._acking is None and window.idle():
                        break
                    if jobs and clock() >= deadline:
                        logger.warning(
                            "%d handlers of %s still ran %.1f s after the stop; "
                            "their events stay pending",
                            len(jobs),
                            self._machine.stream,
                            self._shutdown_timeout,
                        )
                        await workers.abandon(list(jobs))
                        jobs.clear()
                        break
                if clock() >= self._quiet_until:
                    await self._redis_steps()
                started = self._startable()
                while started:  # (an event that ended at once may let its key's next start)
                    for event in started:
                        self._begin(event)
                    started = [] if stop.is_set() else self._startable()
                if self._observers is not None:
                    self._tell_in_flight()
                asked = stop.is_set() and not window.stopping  # by a handler: stop at once
                if self._read is None and not asked and clock() >= self._quiet_until:
                    count = window.to_read()
                    if count:
                        self._read = workers.spawn(functools.partial(self._read_some, count))
                wake = 0.0 if asked else window.wake_in()
                timeout = WAIT_SLICE if wake is None else min(wake, WAIT_SLICE)
                for job in await workers.wait(timeout):
                    if job is self._read:
                        self._read = None
                        self._received(job)
                    elif job is self._acking:
                        self._acking = None
                        self._acked(job)
                    elif job in jobs:
                        self._finished(jobs.pop(job), workers.outcome(job))
        finally:
            self._machine.rescan_own_pending = True
            self._machine.new_after_pending = True
            await self._leave()
        return self._handled

    async def _leave(self) -> None:
        """Whatever ended the loop (stop, cancellation, an error that needs a human):
        handlers still running are cancelled (asyncio) or left (threads), their events
        stay pending; a read under way is let finish and what it read handed back."""
        jobs, window = self._jobs, self._window
        try:
            if jobs:
                await self._workers.abandon(list(jobs))
                jobs.clear()
            if self._read is not None:
                read, self._read = self._read, None
                await self._workers.settle(read, self._block_ms / 1000 + BLOCK_READ_MARGIN)
                window.stop()
                if read.done():
                    self._received(read)
                else:  # a read stuck past its own timeout: its entries stay pending on us
                    await self._workers.abandon([read])
            if self._acking is not None:
                ack, self._acking = self._acking, None
                await self._workers.settle(ack, BLOCK_READ_MARGIN)
                if ack.done():
                    self._acked(ack)
                else:  # stuck past its own timeout: those events stay pending, handed again
                    await self._workers.abandon([ack])
            window.stop()
            await self._redis_steps(inline=True)
        except Exception:
            logger.warning(
                "process of %s could not ack or hand back everything on leaving; "
                "those events stay pending and are handed over again",
                self._machine.stream,
                exc_info=True,
            )
        finally:
            await self._workers.close()
            if self._observers is not None:
                self._tell_in_flight()

    # -- handlers ------------------------------------------------------------------------

    def _tell_in_flight(self) -> None:
        count = len(self._jobs)
        if count != self._told and self._observers is not None:
            machine = self._machine
            change, self._told = count - self._told, count
            self._observers.in_flight(machine.stream, machine.group, machine.name, count, change)

    def _startable(self) -> list[AsyncEvent]:
        lease = self._lease
        if lease is not None and not lease.held():
            return []  # consumer_single: never start an event outside the lock
        return self._window.start()

    def _begin(self, event: AsyncEvent) -> None:
        """Start the handler on ``event``: a job to wait for, or finished at once."""
        job = self._start(event)
        if job is None:  # the handler returned in its first step: no job, no loop turn
            self._finished(event, None)
        else:
            self._jobs[job] = event

    def _start(self, event: AsyncEvent) -> Any:
        """Start the handler on ``event``: a job whose outcome is its exception or None,
        or ``None`` when it already returned without an error."""
        if self._observers is None:
            return self._workers.handle(event)  # the hot path: no wrapper
        return self._workers.submit(functools.partial(self._call, event))

    async def _call(self, event: AsyncEvent) -> None:
        """One handler call between the observers' ``handling`` and ``handled``."""
        observers = self._observers
        assert observers is not None
        machine = self._machine
        batch = Batch(machine.stream, machine.group, machine.name, [event])
        observers.handling(batch)
        started = time.perf_counter()
        try:
            await self._workers.call(event)
        except Exception as exc:
            batch.error = exc
            raise
        finally:
            batch.seconds = time.perf_counter() - started
            observers.handled(batch)

    def _finished(self, event: AsyncEvent, failure: BaseException | None) -> None:
        delay = self._window.finished(event, failure)
        if failure is None:
            self._handled += 1
            return
        stream = self._machine.stream
        if isinstance(failure, Retry):
            logger.info(
                "event %s of %s asked to be retried in %.3g s (delivery %d)",
                event.id,
                stream,
                failure.after,
                event.delivery_count,
            )
        else:
            self._machine.log_event_failure(event, failure)
        self._machine.remember([event], failure)  # the error of its dead letter, if any
        if delay is not None and self._machine.observers:
            self._machine.observers.retried(stream, self._machine.group, [event])

    # -- reading -------------------------------------------------------------------------

    async def _read_some(self, count: int) -> tuple[list[Any], float]:
        flow = read_flow(self._machine, self._window, count, self._block_ms, self._clock)
        return await self._driver.drive(flow)

    def _received(self, job: Any) -> None:
        try:
            events, sent_at = self._workers.done(job)
        except ConsumerLockedError:
            self._machine.standby()  # says once that another process holds the lock
            lease = self._lease
            self._quiet_until = self._clock() + (lease.poll_interval if lease else 0.1)
            return
        except BrokerConnectionError as exc:
            self._outage(exc)
            return
        self._recovered()
        self._window.received(events, sent_at)

    # -- acks ----------------------------------------------------------------------------

    async def _ack_some(self, ids: list[str]) -> None:
        await self._driver.drive(self._machine.ack(ids))

    def _acked(self, job: Any) -> None:
        """The ack job ended: its IDs are confirmed, or acked with the next one."""
        ids, self._ack_ids = self._ack_ids, []
        try:
            self._workers.done(job)
        except ConsumerLockedError:
            self._window.ack_failed(ids)
            self._machine.standby()
            lease = self._lease
            self._quiet_until = self._clock() + (lease.poll_interval if lease else 0.1)
            return
        except BrokerConnectionError as exc:
            self._window.ack_failed(ids)
            self._outage(exc)
            return
        except BaseException:
            self._window.ack_failed(ids)
            raise
        self._recovered()
        self._window.acked(ids)
        machine = self._machine
        if machine.observers:
            machine.observers.acked(machine.stream, machine.group, len(ids))

    # -- the Redis steps of the window ---------------------------------------------------

    async def _redis_steps(self, inline: bool = False) -> None:
        """Acks, dead letters, hand-backs, renewals, redeliveries, claims and retention,
        each when the window says; an outage pauses them (handlers go on). Acks go out
        as a job beside the loop, or (``inline``, when leaving) awaited here."""
        try:
            await self._steps(inline)
        except ConsumerLockedError:
            self._machine.standby()  # says once that another process holds the lock
            lease = self._lease
            self._quiet_until = self._clock() + (lease.poll_interval if lease else 0.1)
        except BrokerConnectionError as exc:
            self._outage(exc)
        else:
            self._recovered()

    async def _steps(self, inline: bool) -> None:
        window, machine, drive = self._window, self._machine, self._driver.drive
        stream, group, name = machine.stream, machine.group, machine.name
        ids = window.acks() if self._acking is None else None
        if ids and not inline:
            self._ack_ids = ids
            self._acking = self._workers.spawn(functools.partial(self._ack_some, ids))
        elif ids:
            try:
                await drive(machine.ack(ids))
            except BaseException:
                window.ack_failed(ids)
                raise
            window.acked(ids)
            if machine.observers:
                machine.observers.acked(stream, group, len(ids))
        dying = window.dead_letters()
        if dying:
            events = [e for e, _ in dying]
            try:
                await drive(machine.dead_letter(events, handed=[n for _, n in dying]))
            finally:
                window.dead_lettered(events)
        back = window.hand_back()
        if back:
            await drive(hand_back(stream, group, name, back, self._min_idle_ms))
        renew, lapsed = window.renewals()
        for event in lapsed:
            logger.warning(
                "the lease of event %s of %s lapsed (not renewed within min_idle); "
                "another consumer may handle it too",
                event.id,
                stream,
            )
        if renew:
            sent_at = self._clock()
            await drive(send_one(renew_command(stream, group, name, renew)))
            window.renewed(renew, sent_at)
        due = window.redeliveries()
        if due:
            try:
                events = await drive(redeliver_flow(machine, due))
            except BaseException:
                window.redelivery_failed(due)
                raise
            started = window.redelivered(due, events)
            for event in started:
                self._begin(event)
        count = 0 if machine.pending_first else window.to_claim()  # own pending first
        if count:
            sent_at = self._clock()
            claimed, cursor = await drive(claim_flow(machine, window, count, self._min_idle_ms))
            window.received(claimed, sent_at)
            window.claimed(cursor)
        now = self._clock()
        if not window.stopping and machine.retention.due(now):
            await drive(machine.retention.maintain(now))

    # -- outages -------------------------------------------------------------------------

    def _outage(self, exc: BaseException) -> None:
        if needs_a_human(exc):  # a wrong password, a missing permission: waiting won't cure
            raise exc
        machine = self._machine
        self._attempt += 1
        if self._attempt == 1:
            self._outage_started = self._clock()
            logger.warning(
                "consumer %s of %s lost Redis (%s); retrying",
                machine.name,
                machine.stream,
                exc,
            )
        machine.reset()
        self._quiet_until = self._clock() + reconnect_delay(self._attempt)

    def _recovered(self) -> None:
        if self._attempt:
            logger.warning(
                "consumer %s of %s reconnected after %.1f s",
                self._machine.name,
                self._machine.stream,
                self._clock() - self._outage_started,
            )
            self._attempt = 0
