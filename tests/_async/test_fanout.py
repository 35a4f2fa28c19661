"""Fan-out: several consumer groups per stream, retention, on every server of the matrix.

Each scenario runs on Redis 6.2, 7.0, 8.2 and Valkey 9.1 (``matrix_url``): what differs is
what the server has (XACKDEL on 8.2; lag on 7+), which the tests ask the server itself,
never its version. A :class:`~tests.retention.RetentionChecker` watches every stream: no
entry may leave it before every declared group handled (or dead-lettered) it. The last
scenario runs on a 3-master Redis Cluster: every command of a stream stays in its slot.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    ConsumerLockedError,
    RedisPool,
    RetryPolicy,
    Stream,
)
from fluxabee._keys import key_slot
from tests.cluster import ClusterServer
from tests.helpers import AsyncHelpers
from tests.retention import RetentionChecker

ORDERS = Stream("orders", groups=["billing", "search"])
THREE = Stream("three", groups=["a", "b", "c"])
CAPPED = Stream("capped", groups=["billing", "search"], max_len=5, max_age="1h")
FAST = RetryPolicy(max_deliveries=2, backoff=0.001, max_backoff=0.01)


class Boom(Exception):
    pass


@pytest.fixture
def config(matrix_url: str) -> Config:
    """Streams with several groups (and a plain one) on the matrix server."""
    streams: list[str | Stream] = [ORDERS, THREE, CAPPED, "plain"]
    return Config(redis_pools=[RedisPool(uri=matrix_url, streams=streams)])


@pytest.fixture
def rclient(matrix_url: str) -> redis.Redis:
    """redis-py on the matrix server, for set-up and assertions."""
    return redis.Redis.from_url(matrix_url)


@pytest.fixture
async def broker(config: Config) -> AsyncIterator[AsyncEventBroker]:
    async with AsyncEngine(config) as engine:
        yield engine.new_context().event_broker()


def has_xackdel(client: redis.Redis) -> bool:
    """What the server itself says (COMMAND INFO), as fluxabee asks it."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("COMMAND", lambda reply, **options: reply)  # the raw reply
    reply = raw.execute_command("COMMAND", "INFO", "XACKDEL")
    return bool(reply) and reply[0] is not None


def calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def has_lag(client: redis.Redis, stream: str) -> bool:
    return all("lag" in g for g in client.xinfo_groups(stream))


async def publish(broker: AsyncEventBroker, stream: str, bodies: list[Any]) -> list[str]:
    for body in bodies:
        broker.publish(stream, body)
    return await broker.flush()


async def drain(broker: AsyncEventBroker, group: str, checker: RetentionChecker) -> int:
    """Consume ``checker.stream`` in ``group`` until it is empty, checking every batch."""
    consumer = broker.consumer_many(checker.stream, group=group)

    def handler(events: list[AsyncEvent]) -> None:
        checker.check()
        checker.done(group, events)

    total = 0
    while handled := await consumer.consume(7, 0, handler):
        total += handled
    return total


# -- two and three groups ------------------------------------------------------------------


async def test_two_groups_each_read_every_event_and_an_entry_leaves_once_both_acked(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    checker = RetentionChecker(rclient, "orders", ORDERS.groups)
    checker.add(await publish(broker, "orders", list(range(30))))
    xdels = calls(rclient, "xdel")

    # billing reads everything: nothing may leave, search has read nothing yet
    assert await drain(broker, "billing", checker) == 30
    assert rclient.xlen("orders") == 30
    stats = await broker.stream_statistics("orders")
    billing, search = stats.groups
    assert (billing.name, billing.pending, search.name, search.pending) == (
        "billing",
        0,
        "search",
        0,
    )
    assert stats.group == billing  # the first declared group
    if has_lag(rclient, "orders"):  # Redis 7+: search's lag is untouched by billing's acks
        assert (billing.lag, search.lag) == (0, 30)
    else:  # Redis 6.2 has no lag: unknown, not 0
        assert (billing.lag, search.lag) == (None, None)
    assert await broker.trim("orders") == 0

    # search catches up: every entry both acked goes, by XACKDEL or by a trim
    assert await drain(broker, "search", checker) == 30
    await broker.trim("orders")
    assert rclient.xlen("orders") == 0
    checker.complete()
    assert calls(rclient, "xdel") == xdels  # never a blind XDEL on a fan-out stream
    if has_xackdel(rclient):
        assert calls(rclient, "xackdel") > 0
    else:
        assert calls(rclient, "xackdel") == 0 and calls(rclient, "xtrim") > 0


async def test_three_groups_run_side_by_side_while_events_arrive(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    checker = RetentionChecker(rclient, "three", THREE.groups)
    total = 120
    consumers = {g: broker.consumer_many("three", group=g) for g in THREE.groups}
    checker.add([await broker.publish_now("three", -1)])  # before any group exists

    def handler_for(group: str) -> Any:
        def handler(events: list[AsyncEvent]) -> None:
            checker.check()
            checker.done(group, events)
            if len(checker.handled[group]) == total + 1:
                consumers[group].stop()

        return handler

    async def publisher() -> None:
        for start in range(0, total, 20):
            checker.add(await publish(broker, "three", list(range(start, start + 20))))

    def runner(group: str) -> Any:
        return lambda: consumers[group].run(10, 0.05, handler_for(group))

    results = await AsyncHelpers.run_all(publisher, *(runner(g) for g in THREE.groups))
    assert results[1:] == [total + 1] * 3
    await broker.trim("three")
    assert rclient.xlen("three") == 0
    checker.complete()
    assert checker.checks >= 3


# -- a slow group, caps --------------------------------------------------------------------


async def test_a_slow_group_holds_retention_back_and_a_cap_is_reported_not_cut(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    checker = RetentionChecker(rclient, "capped", CAPPED.groups)
    checker.add(await publish(broker, "capped", list(range(12))))
    assert await broker.trim("capped") == 0  # creates both groups at 0 first: nothing goes
    assert sorted(g["name"].decode() for g in rclient.xinfo_groups("capped")) == [
        "billing",
        "search",
    ]
    assert await drain(broker, "billing", checker) == 12

    caplog.set_level(logging.WARNING, "fluxabee")
    assert await broker.trim("capped") == 0
    assert rclient.xlen("capped") == 12  # max_len 5, yet search has not read these
    stats = await broker.stream_statistics("capped")
    assert stats.over_cap and stats.length == 12
    warned = [r.getMessage() for r in caplog.records if "over its cap" in r.getMessage()]
    assert warned and "length 12 > max_len 5" in warned[0] and "search" in warned[0]

    # search reads half: what both acked may go (and only that)
    search = broker.consumer_many("capped", group="search")

    def half(events: list[AsyncEvent]) -> None:
        checker.check()
        checker.done("search", events)

    assert await search.consume(6, 0, half) == 6
    await broker.trim("capped")
    assert rclient.xlen("capped") == 6
    checker.check()
    assert await drain(broker, "search", checker) == 6
    await broker.trim("capped")
    assert rclient.xlen("capped") == 0
    assert not (await broker.stream_statistics("capped")).over_cap
    checker.complete()


# -- a crashed consumer in one group -------------------------------------------------------


async def test_a_crashed_consumer_in_one_group_holds_its_entries_until_a_live_one_claims_them(
    broker: AsyncEventBroker, config: Config, rclient: redis.Redis
) -> None:
    checker = RetentionChecker(rclient, "orders", ORDERS.groups)
    checker.add(await publish(broker, "orders", list(range(10))))

    # a billing worker takes everything and dies before acking (its engine goes away)
    async with AsyncEngine(config) as other:
        crashed = other.new_context().event_broker().consumer_many("orders", group="billing")

        def crash(events: list[AsyncEvent]) -> None:
            raise Boom("worker died")

        with pytest.raises(Boom):
            await crashed.consume(100, 0, crash)
    assert await drain(broker, "search", checker) == 10
    await broker.trim("orders")
    assert rclient.xlen("orders") == 10  # billing still holds all ten, pending
    billing = (await broker.stream_statistics("orders")).groups[0]
    assert billing.pending == 10
    checker.check()

    # a live billing worker claims what the dead one held, and retention follows
    live = broker.consumer_many("orders", group="billing", min_idle=0.05)

    def handler(events: list[AsyncEvent]) -> None:
        checker.check()
        checker.done("billing", events)
        if len(checker.handled["billing"]) == 10:
            live.stop()

    assert await live.run(10, 0.1, handler) == 10
    await broker.trim("orders")
    assert rclient.xlen("orders") == 0
    checker.complete()


# -- dead letters in one group, replay to that group only ----------------------------------


async def test_dead_letters_in_one_group_while_the_other_is_healthy_and_replay_to_that_group(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    checker = RetentionChecker(rclient, "orders", ORDERS.groups)
    checker.add(await publish(broker, "orders", ["ok-1", "poison", "ok-2"]))
    billing = broker.consumer_many("orders", group="billing", retry_policy=FAST)

    def picky(events: list[AsyncEvent]) -> None:
        checker.check()
        if any(e.body == "poison" for e in events):
            raise Boom("billing cannot take it")
        checker.done("billing", events)

    async def stop_once_dead_lettered() -> None:
        await AsyncHelpers.wait_for(lambda: rclient.xlen("{orders}:dead") == 1)
        billing.stop()

    assert await drain(broker, "search", checker) == 3
    results = await AsyncHelpers.run_all(
        lambda: billing.run(10, 0.05, picky), stop_once_dead_lettered
    )
    assert results[0] == 2  # ok-1 and ok-2; the poison went to the dead letters
    (letter,) = await broker.dead_letters("orders")
    # FAST allows 2 deliveries: the batch one (excused: split), then two alone
    assert (letter.group, letter.event.body, letter.deliveries) == ("billing", "poison", 3)
    assert "billing cannot take it" in letter.error
    await broker.trim("orders")
    assert rclient.xlen("orders") == 0  # billing dead-lettered it, search acked it
    checker.complete()

    # replay: back to billing only; search acks the copy without handing it over
    assert await broker.replay_dead_letters("orders", group="search") == 0
    assert await broker.replay_dead_letters("orders", group="billing") == 1
    (entry,) = rclient.xrange("orders")
    assert entry[1][b"fluxabee-group"] == b"billing"
    handed: list[Any] = []
    search = broker.consumer_many("orders", group="search")
    assert await search.consume(10, 0, handed.extend) == 0
    assert handed == []
    fixed = broker.consumer_many("orders", group="billing")
    assert await fixed.consume(10, 0, handed.extend) == 1
    assert [(e.body, e.meta) for e in handed] == [("poison", {})]
    await broker.trim("orders")
    assert rclient.xlen("orders") == 0
    assert await broker.dead_letters("orders") == []


# -- one single consumer per group ---------------------------------------------------------


async def test_consumer_single_holds_one_lock_per_stream_and_group(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "orders", ["a", "b"])
    seen: dict[str, list[Any]] = {"billing": [], "search": []}
    billing = broker.consumer_single("orders", group="billing")
    search = broker.consumer_single("orders", group="search")
    assert await billing.consume(10, 0, lambda es: seen["billing"].extend(e.body for e in es)) == 2
    assert await search.consume(10, 0, lambda es: seen["search"].extend(e.body for e in es)) == 2
    assert seen == {"billing": ["a", "b"], "search": ["a", "b"]}
    assert rclient.exists("{orders}:lock:billing", "{orders}:lock:search") == 2
    with pytest.raises(ConsumerLockedError):
        await broker.consumer_single("orders", group="billing").consume(10, 0, print)
    await billing.cleanup()
    await search.cleanup()
    assert rclient.exists("{orders}:lock:billing", "{orders}:lock:search") == 0
    await broker.trim("orders")
    assert rclient.xlen("orders") == 0


# -- the same on a Redis Cluster -----------------------------------------------------------


async def test_fan_out_on_a_cluster_keeps_every_command_in_the_streams_slot(
    cluster: ClusterServer,
) -> None:
    streams = cluster.spread(2)  # on two different masters
    settings = [Stream(name, groups=["billing", "search"]) for name in streams]
    seeds = [f"127.0.0.1:{n.port}" for n in cluster.masters()[:1]]
    config = Config(redis_pools=[RedisPool(uri=seeds, cluster=True, streams=settings)])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(20):
            broker.publish(streams[i % 2], i)
        ids = await broker.flush()
        for index, stream in enumerate(streams):
            node = cluster.master_for_slot(key_slot(stream))
            client = redis.Redis(host="127.0.0.1", port=node.port)
            checker = RetentionChecker(client, stream, ("billing", "search"))
            checker.add(ids[index::2])
            single = broker.consumer_single(stream, group="search")  # a lock in the slot
            assert await drain(broker, "billing", checker) == 10
            assert client.xlen(stream) == 10

            def handler(events: list[AsyncEvent], checker: RetentionChecker = checker) -> None:
                checker.check()
                checker.done("search", events)

            assert await single.consume(100, 0, handler) == 10
            await single.cleanup()
            await broker.trim(stream)
            assert client.xlen(stream) == 0
            checker.complete()
            client.close()
