"""A consumer of one stream's group: consume, autoclaim, run, cleanup (the IO shell).

Every decision is made by :class:`fluxabee._machine.ConsumerMachine`; this module checks
the arguments, drives the machine's flows (runs each Redis command, calls the handler,
waits) and owns the resources: the lock keeper of ``consumer_single`` and the stop flag.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any, TypeVar

from .. import _validate as validate
from .._actions import Flow, Hand, Lease, Probe, Send
from .._backends import AsyncBackend, AsyncFlag
from .._constants import RUN_BLOCK_SLICE
from .._machine import ConsumerMachine
from .._observe import Batch, Observers
from .._policy import RetryPolicy
from .._streamconfig import Stream
from .._window import DEFAULT_CONCURRENCY, DEFAULT_SHUTDOWN_TIMEOUT, Window, key_function
from ..errors import BrokerConnectionError, ClosedError, InvalidArgumentError
from ..event import AsyncEvent
from .client import AsyncCommands
from .lock import AsyncLock
from .process import AsyncProcessor

logger = logging.getLogger("fluxabee")
T = TypeVar("T")

#: A batch handler: takes the events, may ack some; may be ``async def`` under asyncio.
AsyncHandler = Callable[[list[AsyncEvent]], Any]


def _wall_ms() -> int:
    return int(time.time() * 1000)


class AsyncDriver:
    """Runs a machine's flows: each Send on the client, each Hand on the handler, each
    Pause on the stop flag, each Probe on the client's feature cache; a failure is thrown
    back into the flow, which decides."""

    def __init__(
        self, client: AsyncCommands, stop: AsyncFlag, observers: Observers | None = None
    ) -> None:
        self._client = client
        self._stop = stop
        self._observers = observers
        self.machine: ConsumerMachine | None = None

    async def drive(self, flow: Flow[T], handler: Any = None) -> T:
        """Run ``flow`` to its end and return its result."""
        result: Any = None
        error: BaseException | None = None
        client = self._client
        observers = self._observers
        while True:
            try:
                action = flow.send(result) if error is None else flow.throw(error)
            except StopIteration as done:
                value: T = done.value
                return value
            result = error = None
            try:
                if isinstance(action, Send):
                    if action.packed:
                        result = await client.execute_packed(
                            action.packed,
                            action.count,
                            timeout=action.timeout,
                            retry_safe=action.retry_safe,
                        )
                    else:
                        result = await client.execute(
                            action.commands, timeout=action.timeout, retry_safe=action.retry_safe
                        )
                elif isinstance(action, Hand):
                    if observers is not None:
                        result = await self._observed_hand(observers, handler, action.events)
                    else:
                        result = await AsyncBackend.hand(handler, action.events)
                elif isinstance(action, Probe):
                    result = await client.has_command(action.command)
                else:
                    result = await self._stop.wait(action.seconds)
            except BaseException as exc:  # thrown into the flow: it decides
                error = exc

    async def _observed_hand(
        self, observers: Observers, handler: Any, events: list[Any]
    ) -> Exception | None:
        """The hand-over, between the observers' ``handling`` and ``handled``."""
        machine = self.machine
        assert machine is not None
        batch = Batch(machine.stream, machine.group, machine.name, events)
        observers.handling(batch)
        started = time.perf_counter()
        try:
            result = await AsyncBackend.hand(handler, events)
        except BaseException as exc:
            batch.error = exc
            raise
        else:
            batch.error = result
        finally:
            batch.seconds = time.perf_counter() - started
            observers.handled(batch)
        return result

    async def ack_event(self, event: AsyncEvent) -> None:
        """``event.ack()``."""
        assert self.machine is not None
        await self.drive(self.machine.ack_event(event))


class AsyncConsumer:
    """Reads one stream as one named consumer of one of its groups (the stream's first
    declared group by default: ``consumer_group`` for a plain name).

    Made by ``broker.consumer_single(stream)`` or ``broker.consumer_many(stream)``.
    As a context manager it calls :meth:`cleanup` and closes on exit.
    """

    def __init__(
        self,
        *,
        client: AsyncCommands,
        stream: str,
        group: str,
        name: str,
        retry_policy: RetryPolicy,
        min_idle: float,
        lease: Lease | None,
        locks: set[Any],
        settings: Stream | None = None,
        observers: Observers | None = None,
    ) -> None:
        self._stream = stream
        self._group = group
        self._name = name
        self._policy = retry_policy
        self._min_idle = min_idle
        self._closed = False
        self._stop = AsyncBackend.new_flag()
        driver = self._driver = AsyncDriver(client, self._stop, observers)
        machine = self._machine = driver.machine = ConsumerMachine(
            stream=stream,
            group=group,
            name=name,
            policy=retry_policy,
            acker=driver.ack_event,
            clock=time.monotonic,
            wall_ms=_wall_ms,
            lease=lease,
            settings=settings,
            observers=observers,
        )
        self._lock = None
        if lease is not None:
            self._lock = AsyncLock(
                client,
                lease,
                owner=self,
                registry=locks,
                refresh=lambda: driver.drive(machine.refresh_lock(keeper=True)),
            )
            lease.on_confirm = self._lock.ensure_keeper

    @property
    def name(self) -> str:
        """The consumer's name in the group."""
        return self._name

    @property
    def stream(self) -> str:
        """The stream this consumer reads."""
        return self._stream

    @property
    def group(self) -> str:
        """The consumer group it reads in."""
        return self._group

    @property
    def retry_policy(self) -> RetryPolicy:
        """When events go to the dead letters, and the backoff of ``run``."""
        return self._policy

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} stream={self._stream!r} group={self._group!r} "
            f"name={self._name!r}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the consumer {self._name!r} of {self._stream!r} is closed")

    # -- one batch ---------------------------------------------------------------------

    async def consume(self, count: int, block: float | _dt.timedelta, handler: AsyncHandler) -> int:
        """Read at most ``count`` events, waiting up to ``block``, and hand them over.

        Pending events of this consumer come first (oldest first). ``handler(events)`` is
        called once when there is a batch; events it leaves un-acked are acked when it
        returns; when it raises, they stay pending and the exception propagates unchanged.
        ``block`` is seconds or a ``timedelta``; ``0`` returns at once when nothing waits.
        Events read more often than the retry policy allows go to the dead letters instead.
        Returns how many events were handed over (0 on timeout, without calling handler).
        ``consumer_single`` raises :class:`ConsumerLockedError` while another one is live.
        """
        count = validate.count(count)
        block_ms = validate.ms(block, "block")
        AsyncBackend.check_handler(handler)
        self._check_open()
        return await self._driver.drive(self._machine.consume(count, block_ms), handler)

    async def autoclaim(
        self, count: int, min_idle: float | _dt.timedelta, handler: AsyncHandler
    ) -> int:
        """Claim events pending on any consumer for longer than ``min_idle`` and handle them.

        Claims ``count`` per round (XAUTOCLAIM), follows the cursor to the end, hands each
        round to ``handler`` with the same ack rules as :meth:`consume`, and returns how
        many events it handed over. Works with Redis 6.2 and 7+ replies.
        """
        count = validate.count(count)
        min_idle_ms = validate.ms(min_idle, "min_idle")
        AsyncBackend.check_handler(handler)
        self._check_open()
        return await self._driver.drive(self._machine.autoclaim(count, min_idle_ms), handler)

    # -- the run loop ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (thread- and signal-safe).

        A stop that comes before ``run`` starts (a SIGTERM right after the handler was
        installed) makes the next ``run`` return at once; it is spent when ``run`` returns.
        """
        self._stop.set()

    async def run(
        self,
        count: int,
        block: float | _dt.timedelta,
        handler: AsyncHandler,
        *,
        min_idle: float | _dt.timedelta | None = None,
    ) -> int:
        """Consume in a loop until :meth:`stop` (or :meth:`aclose`); return how many events
        ended acked by the handler (also those it acked inside a batch that then raised).

        - A handler error is logged with the event IDs and does not stop the loop; a failed
          batch is retried one event at a time at once (each retry a delivery of its own,
          so ``delivery_count`` grows), so one poison event cannot drag the healthy ones to
          the dead letters; what still fails stays pending and is handed over again after
          the retry policy's backoff, until it goes to the dead letters.
        - ``consumer_many`` also claims events pending on any consumer for longer than
          ``min_idle`` (default: the consumer's, 60 s), every ``min_idle / 2``.
        - ``consumer_single`` waits as a hot standby while another holds the stream.
        - Connection failures (and READONLY / LOADING / BUSY / ...) are retried with capped,
          jittered backoff, logged once per outage; a vanished stream or group is
          recreated. Other Redis errors (a key of the wrong type, missing ACL permissions),
          a handler the API cannot call, :class:`ClosedError` (the engine was closed) and
          ``BaseException`` from the handler propagate: they need a human.
        """
        count = validate.count(count)
        block_ms = validate.ms(min(validate.seconds(block, "block"), RUN_BLOCK_SLICE), "block")
        idle = self._min_idle if min_idle is None else validate.seconds(min_idle, "min_idle")
        AsyncBackend.check_handler(handler)
        self._check_open()
        flow = self._machine.run(count, block_ms, validate.ms(idle, "min_idle"), self._stop.is_set)
        try:
            return await self._driver.drive(flow, handler)
        finally:
            self._stop.clear()  # the stop is spent: a later run() runs again
            if self._lock is not None:
                await self._lock.release()

    async def process(
        self,
        handler: Callable[[AsyncEvent], Any],
        *,
        concurrency: int | None = None,
        key: str | Callable[[AsyncEvent], Hashable] | None = None,
        block: float | _dt.timedelta = RUN_BLOCK_SLICE,
        min_idle: float | _dt.timedelta | None = None,
        shutdown_timeout: float | _dt.timedelta = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> int:
        """Handle events one at a time, up to ``concurrency`` at once, until :meth:`stop`;
        return how many a handler finished without an error. ``handler(event)`` takes
        **one** event; :meth:`run` is for batch handlers.

        - **A sliding window**: a new event starts as soon as one finishes; reads ask only
          for free slots; finished events are acked together every few milliseconds.
          ``concurrency`` defaults to 10 (1 for ``consumer_single`` without ``key``).
        - **Order per key**: ``key`` (a function of the event, or the name of a meta field)
          makes events with the same key run one at a time, in stream order, among the
          events this consumer got; a failed event holds its key until it succeeds or is
          dead-lettered. Without ``key`` no order is kept (``consumer_many``), or the whole
          stream's (``consumer_single``, which then takes only ``concurrency=1``).
        - **Retries hold no slot**: a failed event waits for the retry policy's backoff
          outside the window; ``raise fluxabee.Retry(after=...)`` sets that wait instead
          (logged at info level, still counted toward ``max_deliveries``).
        - **Leases**: every event held is renewed every ``min_idle / 3`` (XCLAIM to itself,
          JUSTID), so no other consumer claims it; ``consumer_many`` also claims entries
          idle longer than ``min_idle`` (default: the consumer's) every ``min_idle / 2``.
        - **Stop**: :meth:`stop` stops reading, lets handlers finish for up to
          ``shutdown_timeout`` (then asyncio handlers are cancelled; under threads
          ``process`` returns without waiting), acks what finished and hands back what
          was never started (their idle time set past ``min_idle``, so the next claim of
          any consumer takes them). Unfinished events stay pending, never acked.

        Under asyncio an ``async def`` handler runs as tasks and a plain ``def`` one in
        threads; under the sync API the handler runs in a pool of ``concurrency`` threads.
        Outages are waited out as in :meth:`run`; errors that need a human propagate.
        """
        ordered = self._lock is not None
        if concurrency is None:
            concurrency = 1 if ordered and key is None else DEFAULT_CONCURRENCY
        concurrency = validate.count(concurrency, "concurrency")
        if ordered and key is None and concurrency > 1:
            raise InvalidArgumentError(
                "consumer_single without key keeps the whole stream's order: only "
                "concurrency=1 can keep it (pass key= to run different keys in parallel)"
            )
        key_of = key_function(key)
        block_ms = validate.ms(min(validate.seconds(block, "block"), RUN_BLOCK_SLICE), "block")
        idle = self._min_idle if min_idle is None else validate.seconds(min_idle, "min_idle")
        grace = validate.seconds(shutdown_timeout, "shutdown_timeout")
        AsyncBackend.check_handler(handler)
        self._check_open()
        window = Window(
            concurrency=concurrency,
            key=key_of,
            ordered=ordered,
            policy=self._policy,
            min_idle=idle,
            clock=time.monotonic,
            claims=not ordered,
        )
        processor = AsyncProcessor(
            driver=self._driver,
            machine=self._machine,
            stop=self._stop,
            handler=handler,
            window=window,
            block_ms=block_ms,
            min_idle_ms=validate.ms(idle, "min_idle"),
            shutdown_timeout=grace,
            observers=self._machine.observers,
        )
        try:
            return await processor.run()
        finally:
            self._stop.clear()  # the stop is spent: a later run() or process() runs again
            if self._lock is not None:
                await self._lock.release()

    # -- leaving -----------------------------------------------------------------------

    async def cleanup(self) -> bool:
        """Leave the group without losing anything; returns whether the name was removed.

        A consumer that still holds pending entries stays in the group with them (so
        ``autoclaim`` or a restarted ``consumer_single`` gets them); one that holds none is
        deleted, atomically (a Lua script checks and deletes in one step). The lock of a
        ``consumer_single`` is released. The consumer can go on consuming afterwards.
        """
        self._check_open()
        if self._lock is not None:
            await self._lock.release()
        return await self._driver.drive(self._machine.cleanup())

    async def aclose(self) -> None:
        """Stop a running :meth:`run` (after the batch in hand), release the lock of a
        ``consumer_single``; the consumer cannot be used afterwards (:class:`ClosedError`)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._lock is not None:
            await self._lock.release()

    async def __aenter__(self) -> AsyncConsumer:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """:meth:`cleanup`, then :meth:`aclose`. A cleanup failure while the block's own
        exception propagates is logged, never put in its place (at debug level when both are
        connection failures: the block's error already says what went wrong). Leaving the
        block of a consumer already closed (its :meth:`aclose`, or its engine's, ran inside
        the block) does nothing: there is nothing left to clean up with."""
        if self._closed:
            return
        try:
            await self.cleanup()
        except ClosedError:
            pass  # the engine was closed inside the block: no connection to clean up with
        except Exception as failure:
            if exc is None:
                raise
            if isinstance(failure, BrokerConnectionError) and isinstance(
                exc, BrokerConnectionError
            ):
                logger.debug(
                    "cleanup of consumer %s of %s skipped: %s",
                    self._name,
                    self._stream,
                    failure,
                )
                return
            logger.warning(
                "cleanup of consumer %s of %s failed while an exception propagated",
                self._name,
                self._stream,
                exc_info=True,
            )
        finally:
            await self.aclose()
