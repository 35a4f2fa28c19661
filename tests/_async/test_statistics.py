"""Stream statistics: length, age, lag, pending, consumers."""

from __future__ import annotations

import pytest
import redis

from fluxabee import AsyncEvent, AsyncEventBroker, WrongTypeError


class Boom(Exception):
    pass


async def test_statistics_of_an_unknown_and_of_a_fresh_stream(
    broker: AsyncEventBroker,
) -> None:
    empty = await broker.stream_statistics("test-stream")
    assert (empty.stream, empty.pool, empty.length, empty.group) == (
        "test-stream",
        "default",
        0,
        None,
    )
    assert empty.oldest_event_age is None
    assert empty.oldest_pending_age is None
    assert empty.dead_letters == 0

    broker.publish("test-stream", "a")
    broker.publish("test-stream", "b")
    await broker.flush()
    stats = await broker.stream_statistics("test-stream")
    assert stats.length == 2
    assert 0 <= stats.oldest_event_age < 60
    assert stats.group is None


async def test_statistics_show_lag_pending_and_consumers(
    broker: AsyncEventBroker,
) -> None:
    for i in range(5):
        broker.publish("test-stream", i)
    ids = await broker.flush()
    consumer = broker.consumer_many("test-stream")

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await consumer.consume(2, 0, crash)

    stats = await broker.stream_statistics("test-stream")
    group = stats.group
    assert group is not None
    assert group.name == "consumer_group"
    assert group.pending == 2
    assert group.lag == 3
    assert group.last_delivered_id == ids[1]
    assert group.lowest_pending_id == ids[0]
    assert group.lowest_pending_age >= 0
    assert [(c.name, c.pending) for c in group.consumers] == [(consumer.name, 2)]
    assert group.consumers[0].idle >= 0
    assert stats.length == 5


async def test_streams_statistics_default_to_every_stream_in_config_order(
    broker: AsyncEventBroker,
) -> None:
    all_stats = await broker.streams_statistics()
    assert [s.stream for s in all_stats] == ["test-stream", "test-group", "other-stream"]
    some = await broker.streams_statistics("other-stream")
    assert [s.stream for s in some] == ["other-stream"]


async def test_statistics_of_a_key_of_another_type_raise(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.set("test-stream", "x")
    with pytest.raises(WrongTypeError):
        await broker.stream_statistics("test-stream")
