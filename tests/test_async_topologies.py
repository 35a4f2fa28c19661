"""The asyncio half of one lifecycle on every topology: a cancelled close (issue 14, item 5).

A cancelled ``aclose`` raises its cancellation at once and the closing still finishes, on
one server, a Cluster and a Sentinel-managed master alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fluxabee import AsyncEngine, AsyncEvent, ClosedError
from fluxabee._keys import lock_key
from tests.topologies import (  # noqa: F401 - the fixtures
    STREAM,
    Topology,
    sentinel_setup_fixture,
    topology_fixture,
)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (yielding to the loop) until ``condition()``; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.005)


async def ignore(events: list[AsyncEvent]) -> None:
    pass


async def test_a_cancelled_close_raises_at_once_and_the_close_still_finishes(
    topology: Topology,
) -> None:
    engine = AsyncEngine(topology.config())
    broker = engine.new_context().event_broker()
    consumer = broker.consumer_single(STREAM, lock_ttl=30)
    await consumer.consume(1, 0, ignore)  # holds the lock: the close must release it
    key = lock_key(STREAM)
    assert topology.run(STREAM, "EXISTS", key) == 1
    closing = asyncio.get_running_loop().create_task(engine.aclose())
    await asyncio.sleep(0)  # the close has begun
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert engine.closed
    await until(lambda: topology.run(STREAM, "EXISTS", key) == 0, "the shielded release")
    with pytest.raises(ClosedError):
        await consumer.consume(1, 0, ignore)
    with pytest.raises(ClosedError):
        await broker.publish_now(STREAM, "late")
    await engine.aclose()  # and closing again is a no-op


async def test_closing_the_engine_wakes_a_run_blocked_in_a_read_with_a_closed_error(
    topology: Topology,
) -> None:
    engine = AsyncEngine(topology.config())
    consumer = engine.new_context().event_broker().consumer_many(STREAM)
    running = asyncio.get_running_loop().create_task(consumer.run(10, 30.0, ignore))

    def blocked() -> bool:
        info = topology.run(STREAM, "INFO", "clients")
        return int(info["blocked_clients"]) == 1

    await until(blocked, "a blocked read")
    await engine.aclose()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(running, 5)
