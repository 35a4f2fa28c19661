"""The run loop: stop, retries with backoff, dead letters, poison isolation, claiming."""

from __future__ import annotations

import logging

import pytest
import redis

from fluxabee import (
    AsyncConsumer,
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    ConsumerLockedError,
    InvalidArgumentError,
    RetryPolicy,
)

FAST = RetryPolicy(max_deliveries=3, backoff=0.001, max_backoff=0.01)


class Boom(Exception):
    pass


async def publish(broker: AsyncEventBroker, stream: str, bodies: list[object]) -> list[str]:
    for body in bodies:
        broker.publish(stream, body)
    return await broker.flush()


def stop_after(consumer: AsyncConsumer, seen: list[object], expected: int) -> None:
    if len(seen) >= expected:
        consumer.stop()


async def test_run_handles_everything_until_stop_and_returns_the_count(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", list(range(7)))
    consumer = broker.consumer_many("test-stream")
    seen: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend(e.body for e in events)
        stop_after(consumer, seen, 7)

    assert await consumer.run(3, 0.05, handler) == 7
    assert sorted(seen) == list(range(7))
    assert rclient.xlen("test-stream") == 0


async def test_stop_finishes_the_batch_in_hand_and_an_early_stop_is_not_lost(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", list(range(4)))
    consumer = broker.consumer_single("test-stream")
    consumer.stop()  # as if SIGTERM came between installing the handler and run()
    assert await consumer.run(2, 0.05, print) == 0
    batches: list[list[int]] = []

    async def handler(events: list[AsyncEvent]) -> None:
        consumer.stop()
        batches.append([e.body for e in events])

    assert await consumer.run(2, 0.05, handler) == 2  # the early stop was spent
    assert batches == [[0, 1]]
    assert rclient.xlen("test-stream") == 2  # the batch in hand was acked, the rest waits
    await consumer.cleanup()


async def test_handler_errors_are_logged_and_retried_without_stopping_the_loop(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await publish(broker, "test-stream", ["flaky"])
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    deliveries: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        deliveries.extend(e.delivery_count for e in events)
        if len(deliveries) < 3:
            raise Boom("not yet")
        consumer.stop()

    caplog.set_level(logging.WARNING, logger="fluxabee")
    assert await consumer.run(10, 0.01, handler) == 1
    assert deliveries == [1, 2, 3]
    assert caplog.text.count("handler failed") == 2
    assert ids[0] in caplog.text
    assert rclient.xlen("test-stream") == 0


async def test_events_past_max_deliveries_go_to_the_dead_letters_with_their_error(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await publish(broker, "test-stream", ["bad"])
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    deliveries: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        deliveries.extend(e.delivery_count for e in events)
        raise Boom("cannot handle")

    caplog.set_level(logging.WARNING, logger="fluxabee")
    for _ in range(3):
        with pytest.raises(Boom):
            await consumer.consume(10, 0, handler)
    assert await consumer.consume(10, 0, handler) == 0  # 4th read: dead-lettered instead
    assert deliveries == [1, 2, 3]
    letters = await broker.dead_letters("test-stream")
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event.id == ids[0]
    assert letter.event.body == "bad"
    assert letter.deliveries == 3
    assert "Boom: cannot handle" in letter.error
    assert rclient.xlen("test-stream") == 0
    assert "dead letters" in caplog.text


async def test_poison_event_is_isolated_from_its_batch(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["ok-1", "poison", "ok-2", "ok-3"])
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    handled: list[str] = []
    batches: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        batches.append(len(events))
        if any(e.body == "poison" for e in events):
            raise Boom("poison in batch")
        handled.extend(e.body for e in events)
        stop_after(consumer, handled, 3)

    assert await consumer.run(10, 0.01, handler) == 3
    assert batches == [4, 1, 1, 1, 1]  # the batch, then one event at a time
    assert handled == ["ok-1", "ok-2", "ok-3"]
    pending = rclient.xpending("test-stream", "consumer_group")
    assert pending["pending"] == 1  # only the poison waits for its retry
    assert rclient.xlen("{test-stream}:dead") == 0


async def test_consume_dead_letters_exceeded_events_instead_of_handing_them_over(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["x"])
    consumer = broker.consumer_many(
        "test-stream", retry_policy=RetryPolicy(max_deliveries=1, backoff=0)
    )

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await consumer.consume(1, 0, crash)
    calls: list[object] = []
    assert await consumer.consume(1, 0, calls.append) == 0
    assert calls == []
    assert rclient.xlen("{test-stream}:dead") == 1


async def test_dead_letters_replay_and_ack(broker: AsyncEventBroker, rclient: redis.Redis) -> None:
    broker.publish("test-stream", {"n": 1}, source="unit")
    broker.publish("test-stream", {"n": 2})
    await broker.flush()
    consumer = broker.consumer_many(
        "test-stream", retry_policy=RetryPolicy(max_deliveries=1, backoff=0)
    )

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await consumer.consume(10, 0, crash)
    await consumer.consume(10, 0, crash)  # both exceed: moved, handler not called
    letters = await broker.dead_letters("test-stream")
    assert [(d.event.body, d.event.meta) for d in letters] == [
        ({"n": 1}, {"source": "unit"}),
        ({"n": 2}, {}),
    ]
    await letters[1].event.ack()  # deletes that dead letter for good
    assert await broker.replay_dead_letters("test-stream") == 1
    assert rclient.xlen("{test-stream}:dead") == 0

    seen: list[AsyncEvent] = []
    assert await broker.consumer_many("test-stream").consume(10, 0, seen.extend) == 1
    assert (seen[0].body, seen[0].meta, seen[0].delivery_count) == (
        {"n": 1},
        {"source": "unit"},
        1,
    )


async def test_run_claims_events_of_a_dead_consumer(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["a", "b"])
    crashed = broker.consumer_many("test-stream")

    async def crash(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await crashed.consume(10, 0, crash)

    survivor = broker.consumer_many("test-stream", min_idle=0.001)
    seen: list[tuple[str, int]] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend((e.body, e.delivery_count) for e in events)
        stop_after(survivor, seen, 2)

    assert await survivor.run(10, 0.05, handler) == 2
    assert seen == [("a", 2), ("b", 2)]
    assert rclient.xlen("test-stream") == 0


async def test_retry_policy_and_run_arguments_are_validated(broker: AsyncEventBroker) -> None:
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(max_deliveries=0)
    with pytest.raises(InvalidArgumentError):
        RetryPolicy(backoff=-1)
    consumer = broker.consumer_many("test-stream")
    with pytest.raises(InvalidArgumentError):
        await consumer.run(0, 1, print)
    with pytest.raises(InvalidArgumentError):
        await consumer.run(1, 1, print, min_idle=-1)


async def test_single_consumer_is_locked_while_another_lives_and_free_after_cleanup(
    config: Config,
) -> None:
    async with AsyncEngine(config) as first_engine, AsyncEngine(config) as second_engine:
        holder = first_engine.new_context().event_broker().consumer_single("test-stream")
        other = second_engine.new_context().event_broker().consumer_single("test-stream")
        assert await holder.consume(1, 0, print) == 0
        with pytest.raises(ConsumerLockedError):
            await other.consume(1, 0, print)
        await holder.cleanup()
        assert await other.consume(1, 0, print) == 0
        with pytest.raises(ConsumerLockedError):
            await holder.consume(1, 0, print)
        await other.cleanup()


async def test_single_consumer_lock_expires_when_the_holder_stops_refreshing(
    config: Config, rclient: redis.Redis
) -> None:
    async with AsyncEngine(config) as first_engine, AsyncEngine(config) as second_engine:
        holder = (
            first_engine.new_context().event_broker().consumer_single("test-stream", lock_ttl=0.2)
        )
        assert await holder.consume(1, 0, print) == 0
        assert rclient.get("{test-stream}:lock") is not None
        await first_engine.aclose()  # stops the keeper and releases the lock
        assert rclient.get("{test-stream}:lock") is None
        other = second_engine.new_context().event_broker().consumer_single("test-stream")
        assert await other.consume(1, 0, print) == 0
