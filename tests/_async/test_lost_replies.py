"""Lost replies on a real server: an interrupted step never strands a delivered event.

Each scenario interrupts one step that delivers (``XREADGROUP >``, the locked read of
``consumer_single``, XAUTOCLAIM, the redelivery of poison isolation) after Redis ran it,
or the ack after the handler returned, before Redis saw it. The interruption is the one
the API meets (a ``CancelledError`` under asyncio, a ``KeyboardInterrupt`` in the sync
API), raised by the network backend at that point, deterministically. The entry then sits
in this consumer's pending list unseen: the next ``consume()`` must hand it over (issue
14, item 1).
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack
import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, Config, RetryPolicy
from tests.faulty import AsyncFaultyBackend, FaultPlan
from tests.helpers import AsyncHelpers

GROUP = "consumer_group"
#: The last argument of a read of new entries (``XREADGROUP ... >``, or the locked read's).
NEW = b"$1\r\n>\r\n"


class Boom(Exception):
    pass


def holders(rclient: redis.Redis, stream: str = "test-stream") -> dict[str, str]:
    """``{entry id: consumer}`` of the group's pending list."""
    rows = rclient.xpending_range(stream, GROUP, "-", "+", 100)
    return {r["message_id"].decode(): r["consumer"].decode() for r in rows}


def add(rclient: redis.Redis, *bodies: str) -> list[str]:
    return [rclient.xadd("test-stream", {"s": msgpack.packb(b)}).decode() for b in bodies]


class Seen:
    """A handler that records the bodies and delivery counts it was handed."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, int]] = []

    async def __call__(self, events: list[AsyncEvent]) -> None:
        self.events += [(e.body, e.delivery_count) for e in events]


async def test_an_interrupted_read_of_new_entries_hands_its_entry_over_on_the_next_consume(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan(NEW, raises=AsyncHelpers.interruption)
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")
        (entry_id,) = add(rclient, "a")
        seen = Seen()
        with pytest.raises(AsyncHelpers.interruption):
            await consumer.consume(10, 5.0, seen)
        assert plan.fired.is_set() and seen.events == []
        assert holders(rclient) == {entry_id: consumer.name}  # delivered, its reply lost
        assert await consumer.consume(10, 0, seen) == 1
        assert seen.events == [("a", 2)]
        assert holders(rclient) == {}


async def test_an_interrupted_locked_read_hands_its_entry_over_on_the_next_consume(
    config: Config, rclient: redis.Redis
) -> None:
    # The locked read finds nothing (own pending nor new), waits with XREAD BLOCK, which
    # "a" wakes; the locked read of new entries that follows delivers "a" and is interrupted.
    plan = FaultPlan(NEW, raises=AsyncHelpers.interruption)
    plan.watch = (b"$5\r\nXREAD\r\n",)
    added: list[str] = []

    def add_once_waiting() -> None:
        if plan.watched.wait(30):
            added.extend(add(rclient, "a"))

    adder = threading.Thread(target=add_once_waiting)
    adder.start()
    try:
        async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
            consumer = engine.new_context().event_broker().consumer_single("test-stream")
            seen = Seen()
            with pytest.raises(AsyncHelpers.interruption):
                await consumer.consume(10, 20.0, seen)
            assert plan.fired.is_set() and seen.events == []
            # the XADD woke the read; the adder thread records its ID a moment later
            await AsyncHelpers.wait_for(lambda: bool(added))
            assert holders(rclient) == {added[0]: consumer.name}
            assert await consumer.consume(10, 0, seen) == 1
            assert seen.events == [("a", 2)]
            await consumer.aclose()
    finally:
        plan.watched.set()
        adder.join()


async def test_an_interrupted_autoclaim_hands_its_entries_over_on_the_next_consume(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan()
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        broker = engine.new_context().event_broker()
        crashed, claimer = broker.consumer_many("test-stream"), broker.consumer_many("test-stream")
        (entry_id,) = add(rclient, "a")

        async def fail(events: list[AsyncEvent]) -> None:
            raise Boom

        with pytest.raises(Boom):
            await crashed.consume(10, 0, fail)  # pending on "crashed"
        seen = Seen()
        assert await claimer.consume(10, 0, seen) == 0  # its own pending list is empty
        plan.marker, plan.raises = b"XAUTOCLAIM", AsyncHelpers.interruption
        with pytest.raises(AsyncHelpers.interruption):
            await claimer.autoclaim(10, 0, seen)
        assert holders(rclient) == {entry_id: claimer.name}  # claimed, the reply lost
        assert await claimer.consume(10, 0, seen) == 1
        assert seen.events == [("a", 3)]


async def test_an_interrupted_redelivery_hands_its_entries_over_on_the_next_consume(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan()
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        policy = RetryPolicy(backoff=60.0, max_backoff=60.0)
        consumer = (
            engine.new_context().event_broker().consumer_many("test-stream", retry_policy=policy)
        )
        ids = add(rclient, "a", "b", "c", "d")
        # The first batch (a, b) fails, alone too: it waits a backoff of 30-60 s. The second
        # (c, d) fails; the redelivery of c alone (poison isolation) loses its reply.
        plan.marker, plan.raises = ids[2].encode(), AsyncHelpers.interruption

        async def fail(events: list[AsyncEvent]) -> None:
            raise Boom

        with pytest.raises(AsyncHelpers.interruption):
            await consumer.run(2, 1.0, fail)
        assert plan.fired.is_set()
        assert set(holders(rclient)) == set(ids)
        seen = Seen()
        assert await consumer.consume(10, 0, seen) == 4  # re-read at once, backoff or not
        assert sorted(body for body, _ in seen.events) == ["a", "b", "c", "d"]


async def test_an_ack_interrupted_after_the_handler_returned_hands_the_event_over_again(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan(b"XACK", raises=AsyncHelpers.interruption, before=True)
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")
        (entry_id,) = add(rclient, "a")
        seen = Seen()
        with pytest.raises(AsyncHelpers.interruption):
            await consumer.consume(10, 0, seen)
        assert seen.events == [("a", 1)]  # handled; the ack never reached Redis
        assert holders(rclient) == {entry_id: consumer.name}
        assert await consumer.consume(10, 0, seen) == 1  # at least once: handed over again
        assert seen.events == [("a", 1), ("a", 2)]
        assert holders(rclient) == {} and rclient.xlen("test-stream") == 0
