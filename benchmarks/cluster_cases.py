"""Cluster cases: publish + flush and consume across six streams, on a 3-master Redis
Cluster and on one server, in the same run (the ratio is cluster / single node).

On one machine the cluster's three masters share the two cores with the benchmark, so
the figures show what routing costs the client (a pipeline per master, the slot map),
not what a real cluster's extra machines would add.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fluxabee

from ._bodies import DEFAULT_SIZE, make_body
from .baselines import fresh_stream

STREAMS = 6
BATCH = 1000


@contextmanager
def run_cluster() -> Iterator[str]:
    """A throwaway 3-master cluster on 127.0.0.1; yields a seed node's URL."""
    from tests.cluster import ClusterServer  # noqa: PLC0415 - the suite's own cluster fixture

    with ClusterServer(masters=3) as cluster:
        yield cluster.url


def _config(url: str, streams: list[str], cluster: bool) -> fluxabee.Config:
    return fluxabee.Config(
        redis_pools=[fluxabee.RedisPool(uri=url, cluster=cluster, streams=streams)]
    )


def _streams(tag: str) -> list[str]:
    return [fresh_stream(f"{tag}-{i}") for i in range(STREAMS)]


def publish_sync(url: str, n: int, *, cluster: bool) -> float:
    """``publish`` x n over six streams + ``flush`` per 1000, sync."""
    streams = _streams("cl-pub-sync")
    bodies = [make_body(DEFAULT_SIZE, i) for i in range(BATCH)]
    with fluxabee.Engine(_config(url, streams, cluster)) as engine:
        broker = engine.new_context().event_broker()
        for stream in streams:
            broker.publish_now(stream, "warm-up")
        start = time.perf_counter()
        done = 0
        while done < n:
            for i, body in enumerate(bodies[: min(BATCH, n - done)]):
                broker.publish(streams[i % STREAMS], body)
            done += len(broker.flush())
        return n / (time.perf_counter() - start)


async def _publish_async(url: str, n: int, cluster: bool) -> float:
    streams = _streams("cl-pub-async")
    bodies = [make_body(DEFAULT_SIZE, i) for i in range(BATCH)]
    async with fluxabee.AsyncEngine(_config(url, streams, cluster)) as engine:
        broker = engine.new_context().event_broker()
        for stream in streams:
            await broker.publish_now(stream, "warm-up")
        start = time.perf_counter()
        done = 0
        while done < n:
            for i, body in enumerate(bodies[: min(BATCH, n - done)]):
                broker.publish(streams[i % STREAMS], body)
            done += len(await broker.flush())
        return n / (time.perf_counter() - start)


def publish_async(url: str, n: int, *, cluster: bool) -> float:
    """The asyncio version: one pipeline per master, sent concurrently."""
    return asyncio.run(_publish_async(url, n, cluster))


def _touch(events: list[Any]) -> None:
    for event in events:
        event.body  # noqa: B018 - decoding the body is part of the measured work


def _prefill(engine: fluxabee.Engine, streams: list[str], n: int) -> None:
    broker = engine.new_context().event_broker()
    for i in range(n):
        broker.publish(streams[i % STREAMS], make_body(DEFAULT_SIZE, i))
        if i % BATCH == BATCH - 1:
            broker.flush()
    broker.flush()


def consume_sync(url: str, n: int, *, cluster: bool) -> float:
    """Six ``consumer_many`` (one per stream) in turn, ``consume(1000, 0)`` each, sync."""
    streams = _streams("cl-con-sync")
    with fluxabee.Engine(_config(url, streams, cluster)) as engine:
        _prefill(engine, streams, n)
        broker = engine.new_context().event_broker()
        consumers = [broker.consumer_many(stream) for stream in streams]
        start = time.perf_counter()
        done = 0
        while done < n:
            for consumer in consumers:
                done += consumer.consume(BATCH, 0, _touch)
        return n / (time.perf_counter() - start)


async def _consume_async(url: str, n: int, cluster: bool) -> float:
    streams = _streams("cl-con-async")
    with fluxabee.Engine(_config(url, streams, cluster)) as engine:
        _prefill(engine, streams, n)
    async with fluxabee.AsyncEngine(_config(url, streams, cluster)) as engine:
        broker = engine.new_context().event_broker()
        consumers = [broker.consumer_many(stream) for stream in streams]
        start = time.perf_counter()
        done = 0
        while done < n:
            counts = await asyncio.gather(*(c.consume(BATCH, 0, _touch) for c in consumers))
            done += sum(counts)
        return n / (time.perf_counter() - start)


def consume_async(url: str, n: int, *, cluster: bool) -> float:
    """The asyncio version: the six consumers read concurrently."""
    return asyncio.run(_consume_async(url, n, cluster))
