"""``process`` under asyncio only: cancelling it leaves nothing stranded."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, AsyncEventBroker, Config, RetryPolicy
from fluxabee._workers import AsyncWorkers
from tests.helpers import AsyncHelpers


@pytest.fixture
async def async_broker(config: Config) -> AsyncIterator[AsyncEventBroker]:
    """An asyncio broker on the test server."""
    async with AsyncEngine(config) as engine:
        yield engine.new_context().event_broker()


async def test_cancelling_process_leaves_every_event_acked_or_pending_and_handed_later(
    async_broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    broker = async_broker
    for n in range(20):
        broker.publish("test-stream", n, meta={"k": str(n % 3)})
    await broker.flush()
    consumer = broker.consumer_many("test-stream")
    started: list[int] = []

    async def stuck(event: AsyncEvent) -> None:
        started.append(event.body)
        if event.body >= 3:
            await asyncio.sleep(3600)

    task = asyncio.create_task(consumer.process(stuck, concurrency=5, key="k", block=0.05))
    await AsyncHelpers.wait_for(lambda: len(started) == 3 + 3)  # 0, 1, 2 done; 3, 4, 5 stuck
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 0, 1, 2 acked; the three stuck ones and the two queued behind their keys stay pending
    assert rclient.xlen("test-stream") == 17
    assert rclient.xpending("test-stream", consumer.group)["pending"] == 5
    seen: list[int] = []

    async def handler(event: AsyncEvent) -> None:
        seen.append(event.body)
        if len(seen) == 17:
            consumer.stop()

    assert await consumer.process(handler, concurrency=5, key="k", block=0.05) == 17
    assert sorted(seen) == list(range(3, 20))
    for key in range(3):
        mine = [n for n in seen if n % 3 == key]
        assert mine == sorted(mine)  # the stranded ones first, in order per key
    assert rclient.xlen("test-stream") == 0


async def test_handlers_that_end_at_once_or_after_awaiting_fail_and_succeed_alike(
    async_broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    broker = async_broker
    for n in range(40):
        broker.publish("test-stream", n)
    await broker.flush()
    policy = RetryPolicy(max_deliveries=5, backoff=0.001, max_backoff=0.01)
    consumer = broker.consumer_many("test-stream", retry_policy=policy)
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=-1)
    done: list[int] = []
    failures: list[int] = []

    async def handler(event: AsyncEvent) -> None:
        n = event.body
        var.set(n)  # the first step runs eagerly: the rest must see what it set
        if n % 4 == 0 and event.delivery_count == 1:
            failures.append(n)
            raise ValueError("before any await")
        if n % 2:
            await asyncio.sleep(0)
            assert var.get() == n
            if n % 3 == 0 and event.delivery_count == 1:
                failures.append(n)
                raise ValueError("after an await")
        done.append(n)
        if len(done) == 40:
            consumer.stop()

    assert await consumer.process(handler, concurrency=8, block=0.05) == 40
    assert sorted(done) == list(range(40))
    assert sorted(failures) == sorted([n for n in range(40) if n % 4 == 0 or n % 6 == 3])
    assert var.get() == -1  # nothing leaked into the caller's context
    assert rclient.xlen("test-stream") == 0


async def test_a_cancel_lost_on_the_way_still_ends_process(
    async_broker: AsyncEventBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = AsyncWorkers.wait
    swallowed: list[bool] = []

    async def lossy(self: AsyncWorkers, timeout: float) -> list[Any]:
        try:
            return await original(self, timeout)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)  # as Python 3.11's wait_for can, in a race
            return []

    monkeypatch.setattr(AsyncWorkers, "wait", lossy)
    consumer = async_broker.consumer_many("test-stream")
    task = asyncio.create_task(consumer.process(print, block=0.05))
    await asyncio.sleep(0.1)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=10)
    assert done and task.cancelled() and swallowed
