"""fluxabee's own benchmark cases: publish + flush, consume + decode + ack, latency.

Every case takes ``(url, n)`` and returns events/second, timing only the hot part, on a
fresh stream, with the same bodies as the raw redis-py baselines (``_bodies.make_body``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import redis

import fluxabee

from ._bodies import DEFAULT_SIZE, make_body
from .baselines import fresh_stream, prefill

BATCH = 1000


def _config(url: str, stream: str | fluxabee.Stream) -> fluxabee.Config:
    return fluxabee.Config(redis_pools=[fluxabee.RedisPool(uri=url, streams=[stream])])


def publish_sync(url: str, n: int, size: int = DEFAULT_SIZE) -> float:
    """``publish`` x n + ``flush`` per 1000, sync ``Engine``."""
    stream = fresh_stream("fx-pub-sync")
    bodies = [make_body(size, i) for i in range(BATCH)]
    with fluxabee.Engine(_config(url, stream)) as engine:
        broker = engine.new_context().event_broker()
        broker.publish_now(stream, "warm-up")
        start = time.perf_counter()
        done = 0
        while done < n:
            for body in bodies[: min(BATCH, n - done)]:
                broker.publish(stream, body)
            done += len(broker.flush())
        return n / (time.perf_counter() - start)


async def _publish_async(url: str, n: int, size: int) -> float:
    stream = fresh_stream("fx-pub-async")
    bodies = [make_body(size, i) for i in range(BATCH)]
    async with fluxabee.AsyncEngine(_config(url, stream)) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(stream, "warm-up")
        start = time.perf_counter()
        done = 0
        while done < n:
            for body in bodies[: min(BATCH, n - done)]:
                broker.publish(stream, body)
            done += len(await broker.flush())
        return n / (time.perf_counter() - start)


def publish_async(url: str, n: int, size: int = DEFAULT_SIZE) -> float:
    """``publish`` x n + ``await flush()`` per 1000, ``AsyncEngine``."""
    return asyncio.run(_publish_async(url, n, size))


def _prefilled(url: str, tag: str, n: int, size: int) -> str:
    stream = fresh_stream(tag)
    client = redis.Redis.from_url(url)
    try:
        prefill(client, stream, n, size=size)
    finally:
        client.close()
    return stream


def _touch(events: list[Any]) -> None:
    for event in events:
        event.body  # noqa: B018 - decoding the body is part of the measured work


def consume_sync(
    url: str, n: int, count: int = BATCH, size: int = DEFAULT_SIZE, retention: str = "delete"
) -> float:
    """``consume(count, 0, handler)`` decoding every body, auto-ack (XACK + XDEL; with
    ``retention="trim"``: XACK, and an exact XTRIM MINID every 10 000 acks)."""
    stream = _prefilled(url, "fx-con-sync", n, size)
    settings = fluxabee.Stream(stream, retention=retention)  # type: ignore[arg-type]
    with fluxabee.Engine(_config(url, settings)) as engine:
        consumer = engine.new_context().event_broker().consumer_many(stream)
        start = time.perf_counter()
        done = 0
        while done < n:
            done += consumer.consume(count, 0, _touch)
        return n / (time.perf_counter() - start)


async def _consume_async(url: str, n: int, count: int, size: int, retention: str) -> float:
    stream = _prefilled(url, "fx-con-async", n, size)
    settings = fluxabee.Stream(stream, retention=retention)  # type: ignore[arg-type]
    async with fluxabee.AsyncEngine(_config(url, settings)) as engine:
        consumer = engine.new_context().event_broker().consumer_many(stream)
        start = time.perf_counter()
        done = 0
        while done < n:
            done += await consumer.consume(count, 0, _touch)
        return n / (time.perf_counter() - start)


def consume_async(
    url: str, n: int, count: int = BATCH, size: int = DEFAULT_SIZE, retention: str = "delete"
) -> float:
    """The asyncio version of :func:`consume_sync`."""
    return asyncio.run(_consume_async(url, n, count, size, retention))


def _paced(n: int, rate: float, send: Callable[[dict[str, Any]], object]) -> None:
    """Call ``send(body)`` ``n`` times at ``rate`` per second; the body carries the time."""
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(n):
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send({"i": i, "t": time.perf_counter()})


def _publish_at_rate(url: str, stream: str, n: int, rate: float) -> None:
    """The latency publisher: its own process, so no GIL is shared with the consumer."""
    with fluxabee.Engine(_config(url, stream)) as engine:
        broker = engine.new_context().event_broker()
        _paced(n, rate, lambda body: broker.publish_now(stream, body))


def _raw_publish_at_rate(url: str, stream: str, n: int, rate: float) -> None:
    client = redis.Redis.from_url(url)
    _paced(n, rate, lambda body: client.xadd(stream, {"s": msgpack.packb(body)}))
    client.close()


def raw_latency(url: str, n: int, rate: float = 1000.0) -> dict[str, float]:
    """The same measurement with raw redis-py on both sides (the machine's noise floor):
    XADD in a publisher process; XREADGROUP BLOCK + XACK + XDEL here."""
    stream = fresh_stream("raw-latency")
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "consumer_group", id="0", mkstream=True)
    publisher = multiprocessing.get_context("spawn").Process(
        target=_raw_publish_at_rate, args=(url, stream, n, rate)
    )
    publisher.start()
    latencies: list[float] = []
    deadline = time.monotonic() + n / rate + 30
    try:
        while len(latencies) < n and time.monotonic() < deadline:
            reply = client.xreadgroup("consumer_group", "c", {stream: ">"}, count=100, block=1000)
            if not reply:
                continue
            now = time.perf_counter()
            entries = reply[0][1]
            latencies.extend(now - msgpack.unpackb(f[b"s"])["t"] for _, f in entries)
            ids = [entry_id for entry_id, _ in entries]
            pipe = client.pipeline(transaction=False)
            pipe.xack(stream, "consumer_group", *ids)
            pipe.xdel(stream, *ids)
            pipe.execute()
    finally:
        publisher.join(timeout=30)
        if publisher.is_alive():
            publisher.kill()
        client.close()
    return _percentiles(latencies)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def latency(url: str, n: int, rate: float = 1000.0) -> dict[str, float]:
    """``publish_now`` -> handler latency at ``rate`` events/s with a blocking consumer.

    A publisher process sends ``perf_counter()`` (CLOCK_MONOTONIC: one clock for every
    process of the machine) in each body at a steady rate; this process runs
    ``consumer.run(100, 1.0, handler)``. Returns p50 / p99 / p99.9 / mean in ms.
    """
    stream = fresh_stream("fx-latency")
    latencies: list[float] = []
    with fluxabee.Engine(_config(url, stream)) as engine:
        consumer = engine.new_context().event_broker().consumer_many(stream)
        consumer.consume(1, 0, _touch)  # creates the group before the first publish

        def handler(events: list[fluxabee.Event]) -> None:
            now = time.perf_counter()
            latencies.extend(now - e.body["t"] for e in events)
            if len(latencies) >= n:
                consumer.stop()

        publisher = multiprocessing.get_context("spawn").Process(
            target=_publish_at_rate, args=(url, stream, n, rate)
        )
        publisher.start()
        watchdog = threading.Timer(n / rate + 30, consumer.stop)  # a dead publisher
        watchdog.start()
        try:
            consumer.run(100, 1.0, handler)
        finally:
            watchdog.cancel()
            publisher.join(timeout=30)
            if publisher.is_alive():
                publisher.kill()
    return _percentiles(latencies)
