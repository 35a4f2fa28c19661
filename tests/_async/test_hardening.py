"""Hardening: each defect a review and a newcomer's first hour found, pinned against real
Redis, in both APIs (this file is the source of ``tests/_sync/test_hardening.py``)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    BrokerConnectionError,
    ClosedError,
    Config,
    ConsumerLockedError,
    InvalidArgumentError,
    PartialFlushError,
    PermissionDeniedError,
    RedisPool,
    RetryPolicy,
    WrongTypeError,
)
from fluxabee._keys import key_slot
from tests.faulty import AsyncFaultyBackend, FaultPlan
from tests.helpers import AsyncHelpers
from tests.servers import RedisServer

GROUP = "consumer_group"
FAST = RetryPolicy(max_deliveries=5, backoff=0.01, max_backoff=0.02)


class Boom(Exception):
    pass


class Poison(Exception):
    pass


def one_stream(server: RedisServer, *streams: str) -> Config:
    return Config(redis_pools=[RedisPool(uri=server.url, streams=list(streams or ["s"]))])


async def ignore(events: list[AsyncEvent]) -> None:
    pass


# -- 1. an interrupted flush keeps every unconfirmed event --------------------------------


async def test_given_a_stalled_redis_when_flush_is_interrupted_then_every_unconfirmed_event_stays_buffered(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    assert server.process is not None
    admin = server.client()
    try:
        async with AsyncEngine(one_stream(server)) as engine:
            broker = engine.new_context().event_broker()
            await broker.publish_now("s", "warm")
            for i in range(3):
                broker.publish("s", i)
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                await AsyncHelpers.interrupted(broker.flush, 0.3)
                assert broker.buffered == 3
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert len(await broker.flush()) == 3
            assert broker.buffered == 0
        bodies = [msgpack.unpackb(f[b"s"]) for _, f in admin.xrange("s")]
    finally:
        admin.close()
    # The interrupted write may have landed too (its reply never came): copies, never gaps.
    assert {"warm", 0, 1, 2} <= set(bodies)


# -- 2 and 9. closed engines and consumers -----------------------------------------------


async def test_given_a_running_run_when_the_handler_closes_the_engine_then_run_raises_closed_and_the_event_stays_pending(  # noqa: E501
    config: Config, rclient: redis.Redis
) -> None:
    engine = AsyncEngine(config)
    broker = engine.new_context().event_broker()
    await broker.publish_now("test-stream", "x")
    consumer = broker.consumer_many("test-stream")

    async def handler(events: list[AsyncEvent]) -> None:
        await engine.aclose()

    with pytest.raises(ClosedError):
        await consumer.run(10, 5.0, handler)
    assert rclient.xpending("test-stream", GROUP)["pending"] == 1  # never acked, not lost


async def test_given_buffered_events_when_the_engine_closes_then_a_warning_counts_them_and_a_closed_engine_refuses_work(  # noqa: E501
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    engine = AsyncEngine(config)
    broker = engine.new_context().event_broker()
    consumer = broker.consumer_many("test-stream")
    broker.publish("test-stream", 1)
    broker.publish("test-stream", 2)
    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        await engine.aclose()
    assert "2 events still buffered" in caplog.text
    assert engine.closed
    with pytest.raises(ClosedError):
        broker.publish("test-stream", 3)
    with pytest.raises(ClosedError):
        await broker.publish_now("test-stream", 3)
    with pytest.raises(ClosedError):
        engine.new_context()
    with pytest.raises(ClosedError):
        broker.consumer_many("test-stream")
    with pytest.raises(ClosedError):
        await consumer.consume(10, 0, ignore)
    await engine.aclose()  # closing twice is fine


async def test_a_closed_consumer_refuses_work_and_ends_its_run(broker: AsyncEventBroker) -> None:
    consumer = broker.consumer_many("test-stream")
    await broker.publish_now("test-stream", "x")

    async def handler(events: list[AsyncEvent]) -> None:
        await consumer.aclose()  # from inside: run ends after this batch

    assert await consumer.run(10, 5.0, handler) == 1
    assert consumer.closed
    with pytest.raises(ClosedError, match="closed"):
        await consumer.consume(10, 0, ignore)
    with pytest.raises(ClosedError):
        await consumer.run(10, 0, ignore)


# -- 6 and 8. one validator for every argument -------------------------------------------


@pytest.mark.parametrize("bad", [True, None, 1.5, -1, 0, "5"])
async def test_every_count_is_validated_and_named(broker: AsyncEventBroker, bad: Any) -> None:
    consumer = broker.consumer_many("test-stream")
    for call in (
        lambda: broker.dead_letters("test-stream", count=bad),
        lambda: consumer.consume(bad, 0, ignore),
        lambda: consumer.autoclaim(bad, 0, ignore),
        lambda: consumer.run(bad, 0, ignore),
    ):
        with pytest.raises(InvalidArgumentError, match="count"):
            await call()


@pytest.mark.parametrize("bad", [True, None, -1, float("nan"), "5"])
async def test_every_duration_is_validated_and_named(broker: AsyncEventBroker, bad: Any) -> None:
    consumer = broker.consumer_many("test-stream")
    with pytest.raises(InvalidArgumentError, match="block"):
        await consumer.consume(1, bad, ignore)
    with pytest.raises(InvalidArgumentError, match="block"):
        await consumer.run(1, bad, ignore)
    with pytest.raises(InvalidArgumentError, match="min_idle"):
        await consumer.autoclaim(1, bad, ignore)
    with pytest.raises(InvalidArgumentError, match="min_idle"):
        broker.consumer_many("test-stream", min_idle=bad)
    with pytest.raises(InvalidArgumentError, match="idle"):
        await broker.prune_consumers("test-stream", idle=bad)


@pytest.mark.parametrize("ttl", [0, 0.0, -3])
async def test_a_lock_ttl_must_be_positive(broker: AsyncEventBroker, ttl: float) -> None:
    with pytest.raises(InvalidArgumentError, match="lock_ttl"):
        broker.consumer_single("test-stream", lock_ttl=ttl)


async def test_a_handler_that_is_not_callable_is_refused_before_anything_is_read(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", "x")
    consumer = broker.consumer_many("test-stream")
    with pytest.raises(InvalidArgumentError, match="callable"):
        await consumer.consume(1, 0, "handler")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="callable"):
        await consumer.run(1, 0, None)  # type: ignore[arg-type]
    assert rclient.xlen("test-stream") == 1
    assert not rclient.exists("{test-stream}:dead")


# -- 7 and 11. counting, and every hand-over a delivery ------------------------------------


async def test_run_counts_the_events_a_handler_acked_inside_a_batch_that_then_raised(
    broker: AsyncEventBroker,
) -> None:
    for i in range(5):
        broker.publish("test-stream", i)
    await broker.flush()
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    calls = 0
    done: set[str] = set()

    async def handler(events: list[AsyncEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await events[0].ack()
            await events[1].ack()
            done.update(e.id for e in events[:2])
            raise Boom
        done.update(e.id for e in events)
        if len(done) == 5:
            consumer.stop()

    assert await consumer.run(10, 0.1, handler) == 5


async def test_every_hand_over_counts_as_a_delivery_and_redis_agrees(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    good = await broker.publish_now("test-stream", "good")
    bad = await broker.publish_now("test-stream", "bad")
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    seen: list[list[tuple[str, int]]] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.append([(e.id, e.delivery_count) for e in events])
        if any(e.body == "bad" for e in events):
            if len(events) == 1:
                consumer.stop()
            raise Boom

    await consumer.run(10, 0.1, handler)
    assert seen == [[(good, 1), (bad, 1)], [(good, 2)], [(bad, 2)]]
    (row,) = rclient.xpending_range("test-stream", GROUP, "-", "+", 10)
    assert (row["message_id"].decode(), row["times_delivered"]) == (bad, 2)


# -- 10. the user's exception wins over a failed cleanup -----------------------------------


async def test_given_redis_down_inside_a_consumer_block_then_the_users_exception_propagates_and_the_cleanup_failure_is_logged(  # noqa: E501
    server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory()
    async with AsyncEngine(one_stream(server)) as engine:
        broker = engine.new_context().event_broker()
        consumer = broker.consumer_many("s")
        with caplog.at_level(logging.WARNING, logger="fluxabee"), pytest.raises(ValueError):
            async with consumer:
                server.kill()
                raise ValueError("mine")
        assert "cleanup of consumer" in caplog.text
        assert consumer.closed
        other = broker.consumer_many("s")
        with pytest.raises(BrokerConnectionError):  # without an exception of its own: raised
            async with other:
                pass


# -- 13. statistics under an ACL user without TIME -----------------------------------------


async def test_statistics_without_permission_for_time_name_the_command(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    admin = server.client()
    try:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-time")
    finally:
        admin.close()
    config = Config(
        redis_pools=[RedisPool(uri=f"redis://app:pw@127.0.0.1:{server.port}/0", streams=["s"])]
    )
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        with pytest.raises(PermissionDeniedError) as info:
            await broker.stream_statistics("s")
    assert info.value.command == "TIME"
    assert "time" in str(info.value).lower()


# -- 16 and section 3: lost replies, through an injected network backend ------------------


async def test_given_the_reply_of_a_read_of_new_entries_is_lost_then_consume_hands_them_over_next_time(  # noqa: E501
    config: Config, rclient: redis.Redis
) -> None:
    rclient.xgroup_create("test-stream", GROUP, "0", mkstream=True)
    rclient.xadd("test-stream", {"s": msgpack.packb("a")})
    rclient.xadd("test-stream", {"s": msgpack.packb("b")})
    plan = FaultPlan(b"$1\r\n>\r\n")  # XREADGROUP ... STREAMS test-stream >
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")
        with pytest.raises(BrokerConnectionError):
            await consumer.consume(10, 0, ignore)
        assert plan.fired.is_set()
        assert plan.count(b"$1\r\n>\r\n") == 1  # not silently sent again
        assert rclient.xpending("test-stream", GROUP)["pending"] == 2  # delivered, unseen
        seen: list[tuple[Any, int]] = []

        async def handler(events: list[AsyncEvent]) -> None:
            seen.extend((e.body, e.delivery_count) for e in events)

        assert await consumer.consume(10, 0, handler) == 2
    assert seen == [("a", 2), ("b", 2)]
    assert rclient.xlen("test-stream") == 0


async def test_given_the_reply_of_an_xadd_is_lost_then_it_is_never_sent_again(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan()
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("test-stream", "first")  # its connection is pooled
        plan.marker, plan.times = b"XADD", 1
        with pytest.raises(BrokerConnectionError):
            await broker.publish_now("test-stream", "second")
        assert rclient.xlen("test-stream") == 2  # it ran once; no resend on a new connection

        plan.marker, plan.times = b"XADD", 1
        broker.publish("test-stream", "third")
        with pytest.raises(PartialFlushError):
            await broker.flush()
        assert broker.buffered == 1  # kept (it may have landed: the reply was lost)
        assert rclient.xlen("test-stream") == 3
        broker.discard()
    assert plan.count(b"XADD") == 3  # each written once


# -- section 3: the lock's token check, the dead letters' order ---------------------------


async def test_a_single_consumer_cannot_refresh_a_lock_another_holds(
    engine: AsyncEngine, rclient: redis.Redis
) -> None:
    holder = engine.new_context().event_broker().consumer_single("test-stream", lock_ttl=30)
    await holder.consume(1, 0, ignore)  # takes the lock
    token = rclient.get("{test-stream}:lock")
    assert token is not None
    other = engine.new_context().event_broker().consumer_single("test-stream", lock_ttl=30)
    with pytest.raises(ConsumerLockedError):
        await other.autoclaim(10, 0, ignore)
    assert rclient.get("{test-stream}:lock") == token
    await holder.aclose()
    assert rclient.get("{test-stream}:lock") is None


async def test_an_event_whose_dead_letter_cannot_be_written_stays_pending_in_the_stream(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.set("{test-stream}:dead", "not a stream")
    await broker.publish_now("test-stream", "x")
    consumer = broker.consumer_many("test-stream", retry_policy=RetryPolicy(max_deliveries=1))

    async def fail(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await consumer.consume(10, 0, fail)
    with pytest.raises(WrongTypeError, match="stay pending"):
        await consumer.consume(10, 0, fail)
    assert rclient.xlen("test-stream") == 1
    assert rclient.xpending("test-stream", GROUP)["pending"] == 1
    assert rclient.get("{test-stream}:dead") == b"not a stream"


async def test_a_dead_letter_whose_replay_cannot_be_written_stays_a_dead_letter(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", "x")
    consumer = broker.consumer_many("test-stream", retry_policy=RetryPolicy(max_deliveries=1))

    async def fail(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await consumer.consume(10, 0, fail)
    assert await consumer.consume(10, 0, fail) == 0  # dead-lettered instead of handed over
    assert rclient.xlen("{test-stream}:dead") == 1
    rclient.delete("test-stream")
    rclient.set("test-stream", "not a stream")
    with pytest.raises(WrongTypeError):
        await broker.replay_dead_letters("test-stream")
    assert rclient.xlen("{test-stream}:dead") == 1


# -- section 4: what users reached for ----------------------------------------------------


async def test_meta_keys_named_stream_or_body_go_through_the_meta_mapping(
    broker: AsyncEventBroker,
) -> None:
    meta = {"stream": "x", "body": "y", "content-type": "application/json"}
    broker.publish("test-stream", "v", meta=meta, source="billing")
    await broker.flush()
    await broker.publish_now("test-stream", "w", meta={"stream": "z"})
    seen: list[AsyncEvent] = []
    await broker.consumer_many("test-stream").consume(10, 0, seen.extend)
    assert [e.meta for e in seen] == [{**meta, "source": "billing"}, {"stream": "z"}]
    assert seen[0].tag("stream") == "x"
    with pytest.raises(InvalidArgumentError, match="twice"):
        broker.publish("test-stream", "v", meta={"source": "a"}, source="b")
    with pytest.raises(InvalidArgumentError, match="mapping"):
        broker.publish("test-stream", "v", meta=[("a", "b")])  # type: ignore[arg-type]
    assert broker.buffered == 0


async def test_dead_letter_on_sends_an_event_to_the_dead_letters_without_retries(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", "ok")
    poison = await broker.publish_now("test-stream", "poison")
    policy = RetryPolicy(max_deliveries=10, backoff=0.01, dead_letter_on=(Poison,))
    consumer = broker.consumer_many("test-stream", retry_policy=policy)
    handled: list[Any] = []

    async def handler(events: list[AsyncEvent]) -> None:
        if any(e.body == "poison" for e in events):
            raise Poison("never retry this")
        handled.extend(e.body for e in events)
        consumer.stop()

    assert await consumer.run(10, 0.1, handler) == 1
    (letter,) = await broker.dead_letters("test-stream")
    assert (letter.event.id, letter.deliveries) == (poison, 2)  # the batch, then alone
    assert "Poison: never retry this" in letter.error
    assert handled == ["ok"]
    assert rclient.xlen("test-stream") == 0


async def test_statistics_report_pending_age_dead_letters_in_one_round_trip_per_pool(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan()
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("test-stream", "x")
        rclient.xadd("{test-stream}:dead", {"s": b"\xa1d"})
        consumer = broker.consumer_many("test-stream")

        async def fail(events: list[AsyncEvent]) -> None:
            raise Boom

        with pytest.raises(Boom):
            await consumer.consume(10, 0, fail)
        before = len(plan.writes)
        everything = await broker.streams_statistics()
        assert len(plan.writes) == before + 1  # three streams, one pipeline
    stats = everything[0]
    assert stats.stream == "test-stream"
    assert stats.oldest_pending_age is not None and stats.oldest_pending_age >= 0
    assert stats.oldest_event_age is not None
    assert stats.dead_letters == 1
    assert everything[1].oldest_pending_age is None
    assert everything[1].oldest_event_age is None


async def test_prune_consumers_removes_idle_generated_names_that_hold_nothing(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", "x")
    holder = broker.consumer_many("test-stream")

    async def fail(events: list[AsyncEvent]) -> None:
        raise Boom

    with pytest.raises(Boom):
        await holder.consume(1, 0, fail)  # holds one pending entry
    idle = [broker.consumer_many("test-stream") for _ in range(2)]
    for consumer in idle:
        await consumer.consume(1, 0, ignore)
    await broker.consumer_single("test-stream").consume(1, 0, ignore)
    rclient.xgroup_createconsumer("test-stream", GROUP, "someone-else")
    assert await broker.prune_consumers("test-stream", idle=3600) == []
    names = {c.name for c in idle}
    assert set(await broker.prune_consumers("test-stream", idle=0)) == names
    left = {c["name"].decode() for c in rclient.xinfo_consumers("test-stream", GROUP)}
    assert left == {holder.name, "consumer-single", "someone-else"}
    assert await broker.prune_consumers("other-stream", idle=0) == []  # no stream: nothing


async def test_scripts_run_by_evalsha_and_survive_a_script_flush(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.xgroup_create("test-stream", GROUP, "0", mkstream=True)
    rclient.config_resetstat()
    for _ in range(3):
        assert await broker.consumer_many("test-stream").cleanup()
    stats: dict[str, Any] = rclient.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 1  # loaded once
    assert stats["cmdstat_evalsha"]["calls"] == 2
    rclient.script_flush()
    assert await broker.consumer_many("test-stream").cleanup()  # NOSCRIPT: sent again as EVAL
    stats = rclient.info("commandstats")
    assert (stats["cmdstat_eval"]["calls"], stats["cmdstat_evalsha"]["calls"]) == (2, 3)


async def test_a_stream_whose_name_has_a_stray_brace_keeps_its_dead_letters_in_its_slot(
    make_config: Callable[..., Config], rclient: redis.Redis
) -> None:
    async with AsyncEngine(make_config("a{}b")) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("a{}b", "x")
        consumer = broker.consumer_many("a{}b", retry_policy=RetryPolicy(max_deliveries=1))

        async def fail(events: list[AsyncEvent]) -> None:
            raise Boom

        with pytest.raises(Boom):
            await consumer.consume(1, 0, fail)
        assert await consumer.consume(1, 0, fail) == 0
        (letter,) = await broker.dead_letters("a{}b")
    assert letter.event.body == "x"
    (key,) = [k.decode() for k in rclient.keys("*a{}b:dead")]
    assert key_slot(key) == key_slot("a{}b")


async def test_a_connection_failure_names_the_address_and_never_the_password(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    port = server.port
    server.stop()
    config = Config(
        redis_pools=[RedisPool(uri=f"redis://app:s3cr3t@127.0.0.1:{port}/0", streams=["s"])]
    )
    async with AsyncEngine(config) as engine:
        with pytest.raises(BrokerConnectionError) as info:
            await engine.new_context().event_broker().publish_now("s", "x")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "s3cr3t" not in str(info.value)
