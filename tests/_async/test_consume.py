"""Consuming: single and many consumers, batches, acks, pending-first, autoclaim, cleanup."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
import redis

from fluxabee import AsyncEvent, AsyncEventBroker, InvalidArgumentError, WrongTypeError


@dataclass
class Person:
    Name: str
    Age: int = 0


class Boom(Exception):
    pass


async def publish(broker: AsyncEventBroker, stream: str, bodies: list[object]) -> list[str]:
    for body in bodies:
        broker.publish(stream, body)
    return await broker.flush()


async def test_single_consumer_hands_over_old_events_in_order_and_acks_them(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    ids = await publish(broker, "test-stream", ["a", "b", "c"])
    consumer = broker.consumer_single("test-stream")
    assert consumer.name == "consumer-single"
    seen: list[AsyncEvent] = []

    handled = await consumer.consume(5, 0, seen.extend)

    assert handled == 3
    assert [e.id for e in seen] == ids
    assert [e.body for e in seen] == ["a", "b", "c"]
    assert all(e.acked and e.delivery_count == 1 for e in seen)
    assert rclient.xlen("test-stream") == 0
    assert rclient.xpending("test-stream", "consumer_group")["pending"] == 0


async def test_count_limits_the_batch(broker: AsyncEventBroker) -> None:
    await publish(broker, "test-stream", list(range(5)))
    consumer = broker.consumer_single("test-stream")
    batches: list[list[int]] = []

    async def handler(events: list[AsyncEvent]) -> None:
        batches.append([e.body for e in events])

    assert await consumer.consume(2, 0, handler) == 2
    assert await consumer.consume(2, 0, handler) == 2
    assert await consumer.consume(2, 0, handler) == 1
    assert await consumer.consume(2, 0, handler) == 0
    assert batches == [[0, 1], [2, 3], [4]]


async def test_timeout_returns_zero_without_calling_the_handler(broker: AsyncEventBroker) -> None:
    consumer = broker.consumer_many("test-stream")
    calls: list[object] = []
    assert await consumer.consume(10, dt.timedelta(milliseconds=50), calls.append) == 0
    assert await consumer.consume(10, 0, calls.append) == 0
    assert calls == []


async def test_bad_arguments_are_clear_errors(broker: AsyncEventBroker) -> None:
    consumer = broker.consumer_many("test-stream")
    with pytest.raises(InvalidArgumentError):
        await consumer.consume(0, 0, print)
    with pytest.raises(InvalidArgumentError):
        await consumer.consume(1, -1, print)


async def test_meta_tag_and_unserialize(broker: AsyncEventBroker) -> None:
    broker.publish("test-stream", Person(Name="a1", Age=7), source="billing")
    await broker.flush()
    seen: list[AsyncEvent] = []
    await broker.consumer_single("test-stream").consume(1, 0, seen.extend)
    event = seen[0]
    assert event.stream == "test-stream"
    assert event.meta == {"source": "billing"}
    assert event.tag("source") == "billing"
    assert event.tag("missing") == ""
    assert event.unserialize(Person) == Person(Name="a1", Age=7)


async def test_ack_inside_the_handler_deletes_at_once_and_is_idempotent(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["a", "b"])
    lengths: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        await events[0].ack()
        await events[0].ack()
        lengths.append(rclient.xlen("test-stream"))

    await broker.consumer_single("test-stream").consume(10, 0, handler)
    assert lengths == [1]
    assert rclient.xlen("test-stream") == 0


async def test_handler_error_leaves_events_pending_and_they_come_first_next_time(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["a", "b"])
    consumer = broker.consumer_single("test-stream")

    async def failing(events: list[AsyncEvent]) -> None:
        await events[0].ack()
        raise Boom("handler failed")

    with pytest.raises(Boom, match="handler failed"):
        await consumer.consume(10, 0, failing)
    assert rclient.xpending("test-stream", "consumer_group")["pending"] == 1

    await publish(broker, "test-stream", ["c"])
    batches: list[list[tuple[str, int]]] = []

    async def record(events: list[AsyncEvent]) -> None:
        batches.append([(e.body, e.delivery_count) for e in events])

    await consumer.consume(10, 0, record)
    await consumer.consume(10, 0, record)
    assert batches == [[("b", 2)], [("c", 1)]]
    assert rclient.xlen("test-stream") == 0


async def test_restarted_single_consumer_reads_its_pending_events_first(
    broker: AsyncEventBroker,
) -> None:
    await publish(broker, "test-stream", ["a", "b"])

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    crashed = broker.consumer_single("test-stream")
    with pytest.raises(Boom):
        await crashed.consume(10, 0, crash)
    assert await crashed.cleanup() is False  # holds events: stays in the group, lock released
    await publish(broker, "test-stream", ["c"])

    seen: list[AsyncEvent] = []
    restarted = broker.consumer_single("test-stream")
    await restarted.consume(10, 0, seen.extend)
    assert [(e.body, e.delivery_count) for e in seen] == [("a", 2), ("b", 2)]


async def test_many_consumers_have_unique_generated_names_and_share_the_work(
    broker: AsyncEventBroker,
) -> None:
    first, second = broker.consumer_many("test-stream"), broker.consumer_many("test-stream")
    pattern = r"consumer-\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}-\d{16}"
    assert re.fullmatch(pattern, first.name)
    assert first.name != second.name
    await publish(broker, "test-stream", list(range(4)))
    got: list[int] = []

    async def take(events: list[AsyncEvent]) -> None:
        got.extend(e.body for e in events)

    assert await first.consume(2, 0, take) == 2
    assert await second.consume(10, 0, take) == 2
    assert sorted(got) == [0, 1, 2, 3]


async def test_autoclaim_takes_over_stale_events_and_follows_the_cursor(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", list(range(5)))
    crashed = broker.consumer_many("test-stream")

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await crashed.consume(10, 0, crash)

    rescuer = broker.consumer_many("test-stream")
    calls: list[object] = []
    assert await rescuer.autoclaim(2, dt.timedelta(minutes=10), calls.append) == 0
    assert calls == []

    rounds: list[list[tuple[int, int]]] = []

    async def handle(events: list[AsyncEvent]) -> None:
        rounds.append([(e.body, e.delivery_count) for e in events])

    assert await rescuer.autoclaim(2, 0, handle) == 5
    assert [len(r) for r in rounds] == [2, 2, 1]
    assert [item for r in rounds for item in r] == [(i, 2) for i in range(5)]
    assert rclient.xlen("test-stream") == 0


async def test_cleanup_removes_an_idle_consumer_but_keeps_one_holding_events(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["a"])
    done = broker.consumer_many("test-stream")
    await done.consume(10, 0, lambda events: None)
    holding = broker.consumer_many("test-stream")
    await publish(broker, "test-stream", ["b"])

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await holding.consume(10, 0, crash)

    assert await done.cleanup() is True
    assert await holding.cleanup() is False
    names = {c["name"].decode() for c in rclient.xinfo_consumers("test-stream", "consumer_group")}
    assert names == {holding.name}

    seen: list[AsyncEvent] = []
    assert await holding.consume(10, 0, seen.extend) == 1  # still works after cleanup
    assert await holding.cleanup() is True


async def test_consumer_context_manager_cleans_up(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["a"])
    async with broker.consumer_many("test-stream") as consumer:
        await consumer.consume(10, 0, lambda events: None)
    assert rclient.xinfo_consumers("test-stream", "consumer_group") == []


async def test_group_is_created_idempotently_and_never_over_another_key(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.consumer_single("test-stream").consume(1, 0, print)
    await broker.consumer_many("test-stream").consume(1, 0, print)
    assert rclient.xinfo_groups("test-stream")[0]["name"] == b"consumer_group"

    rclient.set("test-group", "precious")
    with pytest.raises(WrongTypeError):
        await broker.consumer_many("test-group").consume(1, 0, print)
    assert rclient.get("test-group") == b"precious"


async def test_a_deleted_stream_and_group_are_recreated(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    consumer = broker.consumer_many("test-stream")
    await publish(broker, "test-stream", ["a"])
    assert await consumer.consume(1, 0, lambda events: None) == 1
    rclient.delete("test-stream")
    await publish(broker, "test-stream", ["b"])
    seen: list[AsyncEvent] = []
    assert await consumer.consume(1, 0, seen.extend) == 1
    assert seen[0].body == "b"
