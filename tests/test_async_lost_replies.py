"""asyncio only: the scenario of issue 14, item 1, with a real task cancellation.

A consumer blocks in ``XREADGROUP ... >``; an XADD makes Redis serve the blocked read (the
entry is now in this consumer's pending list, its reply on the wire); the ``consume()``
task is cancelled before it reads that reply. The next ``consume()`` hands the entry over.
"""

from __future__ import annotations

import asyncio

import msgpack
import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, Config

GROUP = "consumer_group"


async def until_blocked(rclient: redis.Redis) -> None:
    """Poll (5 ms) until Redis reports one blocked client; fail after 10 s."""
    for _ in range(2000):
        if int(rclient.info("clients")["blocked_clients"]) == 1:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the consumer never blocked in XREADGROUP")


async def test_a_consume_cancelled_while_its_served_read_is_on_the_wire_loses_nothing(
    config: Config, rclient: redis.Redis
) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend((e.body, e.delivery_count) for e in events)

    async with AsyncEngine(config) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")
        task = asyncio.get_running_loop().create_task(consumer.consume(10, 30.0, handler))
        await until_blocked(rclient)
        # A blocking call: the event loop does not run until Redis answered it, and Redis
        # served the blocked XREADGROUP before that answer.
        entry_id = rclient.xadd("test-stream", {"s": msgpack.packb("a")}).decode()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == []
        rows = rclient.xpending_range("test-stream", GROUP, "-", "+", 10)
        assert [(r["message_id"].decode(), r["consumer"].decode()) for r in rows] == [
            (entry_id, consumer.name)
        ]
        assert await consumer.consume(10, 0, handler) == 1
        assert seen == [("a", 2)]
        assert rclient.xpending("test-stream", GROUP)["pending"] == 0
