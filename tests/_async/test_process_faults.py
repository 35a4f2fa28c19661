"""``process`` when an ack fails: its acks go out beside the loop, and one that fails (a
connection lost on the way) is sent again after the outage, with nothing handled twice."""

from __future__ import annotations

import logging

import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, Config
from tests.faulty import AsyncFaultyBackend, FaultPlan
from tests.helpers import AsyncHelpers


async def test_an_ack_lost_to_a_broken_connection_is_sent_again_and_nothing_is_handled_twice(
    config: Config, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fluxabee")
    # Every XACK fails before it is written (the retry on a fresh connection too), until
    # the plan is spent: the coalesced ack of the ten events fails as a whole.
    plan = FaultPlan(b"XACK", times=3, before=True)
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        broker = engine.new_context().event_broker()
        for n in range(10):
            broker.publish("test-stream", n)
        await broker.flush()
        consumer = broker.consumer_many("test-stream")
        seen: list[int] = []

        async def handler(event: AsyncEvent) -> None:
            seen.append(event.body)

        def all_acked() -> bool:
            return plan.times == 0 and rclient.xlen("test-stream") == 0

        async def watch() -> None:
            await AsyncHelpers.wait_for(all_acked)
            consumer.stop()

        results = await AsyncHelpers.run_all(
            lambda: consumer.process(handler, concurrency=10, block=0.05), watch
        )
    assert results[0] == 10
    assert sorted(seen) == list(range(10))  # each once: the failed ack was not a lost event
    assert plan.count(b"XACK") > 3  # sent again after the failures
    assert rclient.xpending("test-stream", consumer.group)["pending"] == 0
    assert "lost Redis" in caplog.text and "reconnected after" in caplog.text
