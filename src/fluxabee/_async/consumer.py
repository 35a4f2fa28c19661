"""A consumer of one stream's ``consumer_group``: consume, autoclaim, run, cleanup.

The reading rules live in :mod:`.reader` and the pure modules; this module is the public
surface and the ``run`` loop: retries with backoff, poison isolation, claiming stale
events, riding out outages, and (for ``consumer_single``) waiting as a hot standby.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .._backends import AsyncBackend
from .._constants import RUN_BLOCK_SLICE
from .._policy import RetryPolicy, reconnect_delay
from .._protocol import check_count, to_ms, to_seconds
from .._scripts import cleanup_consumer
from ..errors import BrokerConnectionError, ConsumerLockedError
from ..event import AsyncEvent
from .client import AsyncPoolClient
from .lock import AsyncLock
from .reader import AsyncReader

logger = logging.getLogger("fluxabee")

#: A batch handler: takes the events, may ack some; may be ``async def`` under asyncio.
AsyncHandler = Callable[[list[AsyncEvent]], Any]


class AsyncConsumer:
    """Reads one stream as one named consumer of the group ``consumer_group``.

    Made by ``broker.consumer_single(stream)`` or ``broker.consumer_many(stream)``.
    Use it as a context manager to call :meth:`cleanup` on exit.
    """

    def __init__(
        self,
        *,
        client: AsyncPoolClient,
        stream: str,
        name: str,
        retry_policy: RetryPolicy,
        min_idle: float,
        lock_ttl: float | None,
        locks: set[Any],
    ) -> None:
        self._client = client
        self._stream = stream
        self._name = name
        self._policy = retry_policy
        self._min_idle = min_idle
        self._lock = (
            None
            if lock_ttl is None
            else AsyncLock(client, stream, lock_ttl, owner=self, registry=locks)
        )
        self._reader = AsyncReader(
            client=client, stream=stream, name=name, policy=retry_policy, lock=self._lock
        )
        self._stop = AsyncBackend.new_flag()

    @property
    def name(self) -> str:
        """The consumer's name in the group."""
        return self._name

    @property
    def stream(self) -> str:
        """The stream this consumer reads."""
        return self._stream

    @property
    def retry_policy(self) -> RetryPolicy:
        """When events go to the dead letters, and the backoff of ``run``."""
        return self._policy

    def __repr__(self) -> str:
        return f"<{type(self).__name__} stream={self._stream!r} name={self._name!r}>"

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
        count = check_count(count)
        block_ms = to_ms(block, "block")
        events = await self._reader.events(await self._reader.read(count, block_ms))
        if not events:
            return 0
        return await self._reader.hand_over(events, handler)

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
        if self._lock is not None and not await self._lock.refresh():
            raise ConsumerLockedError(f"stream {self._stream!r} is held by another consumer_single")
        start, total = "0-0", 0
        while True:
            entries, cursor = await self._reader.claim(count, min_idle_ms, start)
            events = await self._reader.events(entries)
            if events:
                total += await self._reader.hand_over(events, handler)
            if cursor in ("0-0", "0"):
                return total
            start = cursor

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
        """Consume in a loop until :meth:`stop`; return how many events were handled.

        - A handler error is logged with the event IDs and does not stop the loop; a failed
          batch is retried one event at a time at once (so one poison event cannot drag the
          healthy ones to the dead letters); what still fails stays pending and is handed
          over again after the retry policy's backoff, until it goes to the dead letters.
        - ``consumer_many`` also claims events pending on any consumer for longer than
          ``min_idle`` (default: the consumer's, 60 s), every ``min_idle / 2``.
        - ``consumer_single`` waits as a hot standby while another holds the stream.
        - Connection failures (and READONLY / LOADING / BUSY / ...) are retried with capped,
          jittered backoff, logged once per outage; a vanished stream or group is
          recreated. Other Redis errors (a key of the wrong type, missing ACL permissions)
          and ``BaseException`` from the handler propagate: they need a human.
        """
        count = check_count(count)
        block_s = to_seconds(block, "block")
        idle = self._min_idle if min_idle is None else to_seconds(min_idle, "min_idle")
        total, outage_started, attempt = 0, 0.0, 0
        next_claim = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if self._lock is None and time.monotonic() >= next_claim:
                        total += await self._claim_stale(count, idle, handler)
                        next_claim = time.monotonic() + max(idle / 2, 0.01)
                    total += await self._run_once(count, min(block_s, RUN_BLOCK_SLICE), handler)
                except ConsumerLockedError:
                    await self._stop.wait(self._lock.poll_interval if self._lock else 1.0)
                    continue
                except BrokerConnectionError as exc:  # RedisUnavailableError too
                    attempt += 1
                    if attempt == 1:
                        outage_started = time.monotonic()
                        logger.warning(
                            "fluxabee: consumer %s of %s lost Redis (%s); retrying",
                            self._name,
                            self._stream,
                            exc,
                        )
                    self._reader.reset()
                    await self._stop.wait(reconnect_delay(attempt))
                    continue
                if attempt:
                    logger.warning(
                        "fluxabee: consumer %s of %s reconnected after %.1f s",
                        self._name,
                        self._stream,
                        time.monotonic() - outage_started,
                    )
                    attempt = 0
        finally:
            self._stop.clear()  # the stop is spent: a later run() runs again
            if self._lock is not None:
                await self._lock.release()
        return total

    async def _run_once(self, count: int, block_s: float, handler: AsyncHandler) -> int:
        events = await self._reader.events(await self._reader.read(count, to_ms(block_s, "block")))
        return await self._deliver(events, handler)

    async def _claim_stale(self, count: int, min_idle: float, handler: AsyncHandler) -> int:
        start, total, min_idle_ms = "0-0", 0, to_ms(min_idle, "min_idle")
        while not self._stop.is_set():
            entries, cursor = await self._reader.claim(count, min_idle_ms, start)
            total += await self._deliver(await self._reader.events(entries), handler)
            if cursor in ("0-0", "0"):
                break
            start = cursor
        return total

    async def _deliver(self, events: list[AsyncEvent], handler: AsyncHandler) -> int:
        """Hand over with poison isolation and backoff; handler errors are logged, not raised."""
        if not events:
            return 0
        failure = await self._reader.try_hand_over(events, handler)
        if failure is None:
            return len(events)
        _log_failure(self._stream, events, failure)
        handled = 0
        if len(events) > 1:  # isolate the poison: retry the rest one event at a time
            for event in events:
                if event.acked:
                    continue
                failure = await self._reader.try_hand_over([event], handler)
                if failure is None:
                    handled += 1
                    continue
                _log_failure(self._stream, [event], failure)
                if self._lock is not None:
                    break  # consumer_single keeps order: the rest waits behind it
        failed = [e for e in events if not e.acked]
        if failed:
            delay = self._policy.delay(max(e.delivery_count for e in failed))
            if self._lock is not None:
                await self._stop.wait(delay)
            else:
                self._reader.pending_due = time.monotonic() + delay
        return handled

    # -- leaving -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Release the ``consumer_single`` lock (if held) and stop refreshing it."""
        if self._lock is not None:
            await self._lock.release()

    async def cleanup(self) -> bool:
        """Leave the group without losing anything; returns whether the name was removed.

        A consumer that still holds pending entries stays in the group with them (so
        ``autoclaim`` or a restarted ``consumer_single`` gets them); one that holds none is
        deleted, atomically (a Lua script checks and deletes in one step). The lock of a
        ``consumer_single`` is released. The consumer can go on consuming afterwards.
        """
        await self.aclose()
        result = await self._client.call(cleanup_consumer(self._stream, self._name))
        self._reader.pending_first = True
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


def _log_failure(stream: str, events: list[AsyncEvent], exc: BaseException) -> None:
    logger.error(
        "fluxabee: handler failed on %d events of %s (ids %s): %r",
        len(events),
        stream,
        ", ".join(e.id for e in events[:20]) + (" ..." if len(events) > 20 else ""),
        exc,
        exc_info=exc,
    )
