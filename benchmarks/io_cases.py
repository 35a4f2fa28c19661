"""IO-bound handlers: ``process`` (a window of events in flight) against the ideal and peers.

Each workload is a list of handler durations (seconds) and, for the keyed one, a key per
event. A handler "does IO" by sleeping that long (``await asyncio.sleep`` under asyncio,
``time.sleep`` in threads). ``ideal(...)`` is the rate of a window of the same size with
no overhead on exactly those events: each event starts as soon as a slot is free (and,
keyed, once the previous event of its key ended), in stream order. Every case returns
events/s; the keyed cases also check that no key was handled out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable
from typing import Any

import fluxabee

from .baselines import fresh_stream

#: Events published per pipeline while filling a stream (not timed).
FILL_BATCH = 1000
#: Keys of the keyed workload.
KEYS = 1000


def uniform(n: int) -> list[float]:
    """Every handler takes 10 ms."""
    return [0.01] * n


def tail(n: int) -> list[float]:
    """10 ms, and 1 s for one event in fifty (a slow call now and then)."""
    return [1.0 if i % 50 == 49 else 0.01 for i in range(n)]


def keys_of(n: int) -> list[str]:
    """A key per event, ``KEYS`` keys spread round robin."""
    return [str(i % KEYS) for i in range(n)]


WORKLOADS: dict[str, Callable[[int], list[float]]] = {"uniform": uniform, "tail": tail}


def ideal(durations: list[float], window: int, keys: list[str] | None = None) -> float:
    """Events/s of a window of ``window`` slots with no overhead on ``durations``."""
    slots = [0.0] * window  # when each slot is free again (a min-heap)
    key_free: dict[str, float] = {}
    end = 0.0
    for i, took in enumerate(durations):
        free = heapq.heappop(slots)
        start = max(free, key_free.get(keys[i], 0.0)) if keys else free
        done = start + took
        if keys:
            key_free[keys[i]] = done
        heapq.heappush(slots, done)
        end = max(end, done)
    return len(durations) / end


def _config(url: str, stream: str) -> fluxabee.Config:
    return fluxabee.Config(redis_pools=[fluxabee.RedisPool(uri=url, streams=[stream])])


def _fill(url: str, stream: str, n: int, keys: list[str] | None) -> None:
    with fluxabee.Engine(_config(url, stream)) as engine:
        broker = engine.new_context().event_broker()
        for i in range(n):
            broker.publish(stream, i, meta={"k": keys[i]} if keys else None)
            if i % FILL_BATCH == FILL_BATCH - 1:
                broker.flush()
        broker.flush()


class Checker:
    """Counts events, checks that each key's events were handled in stream order, and
    times the run from the first handler's start to the last handler's end (the span the
    ideal is computed over: connecting and creating groups are not part of it)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.last: dict[str, int] = {}
        self.out_of_order = 0
        self.first = 0.0
        self.end = 0.0

    def start(self) -> None:
        if not self.first:
            self.first = time.perf_counter()

    def rate(self) -> float:
        return self.seen / (self.end - self.first)

    def saw(self, event: Any) -> bool:
        self.end = time.perf_counter()
        key = event.meta.get("k")
        if key is not None:
            if self.last.get(key, -1) > event.body:
                self.out_of_order += 1
            self.last[key] = event.body
        self.seen += 1
        return self.seen >= self.n


def process_async(
    url: str, durations: list[float], concurrency: int, keys: list[str] | None = None
) -> float:
    """``AsyncEngine``, ``consumer_many(...).process(async handler, concurrency=...)``."""
    n = len(durations)
    stream = fresh_stream("io-async")
    _fill(url, stream, n, keys)
    check = Checker(n)

    async def main() -> None:
        async with fluxabee.AsyncEngine(_config(url, stream)) as engine:
            consumer = engine.new_context().event_broker().consumer_many(stream)

            async def handler(event: fluxabee.AsyncEvent) -> None:
                check.start()
                await asyncio.sleep(durations[event.body])
                if check.saw(event):
                    consumer.stop()

            await consumer.process(
                handler, concurrency=concurrency, key="k" if keys else None, block=0.1
            )

    asyncio.run(main())
    rate = check.rate()
    if check.out_of_order:
        raise AssertionError(f"{check.out_of_order} events handled out of key order")
    return rate


def process_threads(
    url: str, durations: list[float], concurrency: int, keys: list[str] | None = None
) -> float:
    """``Engine``, ``consumer_many(...).process(handler, concurrency=...)`` in threads."""
    n = len(durations)
    stream = fresh_stream("io-threads")
    _fill(url, stream, n, keys)
    check = Checker(n)
    with fluxabee.Engine(_config(url, stream)) as engine:
        consumer = engine.new_context().event_broker().consumer_many(stream)

        def handler(event: fluxabee.Event) -> None:
            check.start()
            time.sleep(durations[event.body])
            if check.saw(event):
                consumer.stop()

        consumer.process(handler, concurrency=concurrency, key="k" if keys else None, block=0.1)
    rate = check.rate()
    if check.out_of_order:
        raise AssertionError(f"{check.out_of_order} events handled out of key order")
    return rate


def noop_process_async(url: str, n: int, concurrency: int = 100) -> float:
    """A handler that does nothing: the per-event cost of ``process`` (timed from the call
    to the return, as :func:`noop_run_async`)."""
    stream = fresh_stream("io-noop")
    _fill(url, stream, n, None)

    async def main() -> float:
        async with fluxabee.AsyncEngine(_config(url, stream)) as engine:
            consumer = engine.new_context().event_broker().consumer_many(stream)
            seen = 0

            async def handler(event: fluxabee.AsyncEvent) -> None:
                nonlocal seen
                seen += 1
                if seen >= n:
                    consumer.stop()

            start = time.perf_counter()
            await consumer.process(handler, concurrency=concurrency, block=0.1)
            return n / (time.perf_counter() - start)

    return asyncio.run(main())


def noop_run_async(url: str, n: int, count: int = 100) -> float:
    """A batch handler that does nothing: today's ``run`` path, for the per-event cost."""
    stream = fresh_stream("io-run")
    _fill(url, stream, n, None)

    async def main() -> float:
        async with fluxabee.AsyncEngine(_config(url, stream)) as engine:
            consumer = engine.new_context().event_broker().consumer_many(stream)
            seen = 0

            async def handler(events: list[fluxabee.AsyncEvent]) -> None:
                nonlocal seen
                seen += len(events)
                if seen >= n:
                    consumer.stop()

            start = time.perf_counter()
            await consumer.run(count, 0.1, handler)
            return n / (time.perf_counter() - start)

    return asyncio.run(main())


def faststream(
    url: str, durations: list[float], workers: int = 100, keys: list[str] | None = None
) -> float:
    """FastStream 0.7: ``@broker.subscriber(stream=StreamSub(..., group=...),
    max_workers=workers)``, logger off, the same handler sleeps (it keeps no key order:
    the keyed workload runs unkeyed there). Only in the benchmark's own environment."""
    from faststream.redis import RedisBroker, StreamSub  # noqa: PLC0415 - a peer, optional

    n = len(durations)
    stream = fresh_stream("io-faststream")
    check = Checker(n)

    async def main() -> None:
        broker = RedisBroker(url, logger=None)  # type: ignore[arg-type]
        client = await broker.connect()
        for start in range(0, n, FILL_BATCH):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(n, start + FILL_BATCH)):
                await broker.publish({"i": i}, stream=stream, pipeline=pipe)
            await pipe.execute()
        await broker.stop()
        with contextlib.suppress(Exception):
            await client.xgroup_create(stream, "consumer_group", id="0", mkstream=True)
        broker = RedisBroker(url, logger=None)  # type: ignore[arg-type]
        done = asyncio.Event()

        @broker.subscriber(  # type: ignore[misc]
            stream=StreamSub(stream, group="consumer_group", consumer="one"),
            max_workers=workers,
        )
        async def on_event(body: dict[str, Any]) -> None:
            check.start()
            await asyncio.sleep(durations[body["i"]])
            check.end = time.perf_counter()
            check.seen += 1
            if check.seen >= n:
                done.set()

        await broker.start()
        try:
            await asyncio.wait_for(done.wait(), 60 + n * max(durations))
        finally:
            await broker.stop()

    asyncio.run(main())
    return check.rate()
