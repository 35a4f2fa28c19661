"""What only the asyncio API has to get right: cancellation, and tasks closing engines."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, ClosedError, Config, RedisPool
from fluxabee._scripts import script
from tests.faulty import AsyncFaultyBackend, FaultPlan
from tests.servers import RedisServer


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (yielding to the loop) until ``condition()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("leave", ["engine.aclose", "consumer.aclose", "consumer.cleanup"])
async def test_a_cancelled_close_propagates_at_once_and_the_lock_is_still_released(
    server_factory: Callable[..., RedisServer], leave: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory()
    assert server.process is not None
    admin = server.client()
    config = Config(redis_pools=[RedisPool(uri=server.url, streams=["s"])])
    plan = FaultPlan()
    refresh = script("lock_refresh")
    plan.watch = (refresh.sha, refresh.source)
    engine = AsyncEngine(config, network_backend=AsyncFaultyBackend(plan))
    consumer = engine.new_context().event_broker().consumer_single("s", lock_ttl=0.6)

    async def ignore(events: list[AsyncEvent]) -> None:
        pass

    try:
        await consumer.consume(1, 0, ignore)  # holds the lock; its keeper refreshes it
        assert admin.exists("{s}:lock")
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            plan.watched.clear()
            await until(plan.watched.is_set, "the keeper stuck in a refresh")
            work = {
                "engine.aclose": engine.aclose,
                "consumer.aclose": consumer.aclose,
                "consumer.cleanup": consumer.cleanup,
            }[leave]
            closing = asyncio.get_running_loop().create_task(work())
            lock = consumer._lock  # to see the close reach the keeper's join
            assert lock is not None
            await until(lock._stop.is_set, "aclose to wait for the keeper")
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(closing), 3)  # at once, not after Redis
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        if leave != "consumer.cleanup":
            await until(lambda: not admin.exists("{s}:lock"), "the shielded release to finish")
            assert "could not release" not in caplog.text  # released, not expired by TTL
    finally:
        await engine.aclose()
        admin.close()


async def test_closing_the_engine_wakes_a_run_blocked_in_a_read_with_a_closed_error(
    config: Config, rclient: redis.Redis
) -> None:
    engine = AsyncEngine(config)
    consumer = engine.new_context().event_broker().consumer_many("test-stream")

    async def ignore(events: list[AsyncEvent]) -> None:
        pass

    running = asyncio.get_running_loop().create_task(consumer.run(10, 30.0, ignore))
    await until(lambda: int(rclient.info("clients")["blocked_clients"]) == 1, "a blocked read")
    await engine.aclose()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(running, 5)
