"""Traffic for the failover and resharding tests: a publisher that flushes until its
events are confirmed, a bounded wait, and a helper thread that acts on conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fluxabee import AsyncEvent, AsyncEventBroker, BrokerConnectionError, ReplicationError


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


class Publisher:
    """Publishes batches to one stream and flushes until none is left buffered.

    With ``wait_replicas`` an event counts as confirmed once a replica has it too (it
    survives its master's death); ``failed_flushes`` counts the flushes that raised.
    """

    def __init__(self, broker: AsyncEventBroker, stream: str, wait_replicas: int | None) -> None:
        self.broker = broker
        self.stream = stream
        self.wait_replicas = wait_replicas
        #: Entry IDs Redis confirmed, in order.
        self.confirmed: list[str] = []
        self.failed_flushes = 0

    async def publish(self, batch: list[Any]) -> None:
        """Publish ``batch`` and flush until it is all confirmed."""
        for body in batch:
            self.broker.publish(self.stream, body)
        while self.broker.buffered:
            try:
                self.confirmed += await self.broker.flush(
                    wait_replicas=self.wait_replicas, timeout=1.0
                )
            except (BrokerConnectionError, ReplicationError) as exc:
                self.failed_flushes += 1
                self.confirmed += [i for i in getattr(exc, "ids", []) if i is not None]
                time.sleep(0.05)  # the outage goes on: try again shortly


class Steps:
    """A helper thread: each step waits (polling, bounded) for its condition, then acts."""

    def __init__(self, *steps: tuple[str, Callable[[], bool], Callable[[], object]]) -> None:
        self._steps = steps
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            for what, condition, action in self._steps:
                wait_for(what, condition)
                action()
        except BaseException as exc:
            self._error = exc

    def start(self) -> Steps:
        """Start the thread."""
        self._thread.start()
        return self

    def join(self) -> None:
        """Wait for the thread; re-raise what went wrong in it."""
        self._thread.join(90)
        if self._error is not None:
            raise self._error


class Failover:
    """What :func:`ride_out_failover` saw: IDs confirmed and handled, flushes that raised."""

    def __init__(self, confirmed: list[str], handled: list[str], failed_flushes: int) -> None:
        self.confirmed = confirmed
        self.handled = handled
        self.failed_flushes = failed_flushes
        #: Confirmed IDs no handler saw.
        self.lost = set(confirmed) - set(handled)
        #: Handler calls beyond the first for an ID.
        self.duplicates = len(handled) - len(set(handled))

    def __str__(self) -> str:
        return (
            f"confirmed={len(self.confirmed)} lost={len(self.lost)} "
            f"duplicates={self.duplicates} failed flushes={self.failed_flushes}"
        )


async def ride_out_failover(
    broker: AsyncEventBroker,
    stream: str,
    fail_over: Callable[[], object],
    failed_over: Callable[[], bool],
) -> Failover:
    """The failover scenario: 20 events confirmed by a replica, ``run()`` consuming; once 5
    are handled a helper thread calls ``fail_over`` (kill the master, wait for the new one);
    once ``failed_over()`` holds, the handler publishes 20 more; ``run()`` stops when every
    confirmed event was handled."""
    publisher = Publisher(broker, stream, wait_replicas=1)
    confirmed = publisher.confirmed
    await publisher.publish(list(range(20)))
    consumer = broker.consumer_many(stream)
    handled: list[str] = []
    killer = Steps(("some events handled", lambda: len(handled) >= 5, fail_over)).start()

    async def handler(events: list[AsyncEvent]) -> None:
        handled.extend(e.id for e in events)
        if len(handled) >= 5 and len(confirmed) == 20:
            wait_for("the failover", failed_over)
            await publisher.publish([f"after-{i}" for i in range(20)])
        if len(confirmed) == 40 and set(confirmed) <= set(handled):
            consumer.stop()

    try:
        await consumer.run(2, 0.2, handler)
    finally:
        killer.join()
    return Failover(confirmed, handled, publisher.failed_flushes)
