"""The core scenarios on every server of the matrix: Redis 6.2, 7.0, 8.2 and Valkey 9.1.

Publish, consume and ack; consumer_single order; autoclaim, also of an entry deleted
while pending (Redis 6.2 answers XAUTOCLAIM with a bare nil there); run with retries, dead
letters and replay; statistics (lag only where the server reports it); a stream flushed
under a running consumer (Redis 6.2 does not wake a blocked XREADGROUP); ``retention:
trim``. Where servers differ, the tests ask the server what it has, never its version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    RedisPool,
    RetryPolicy,
    Stream,
)
from tests.helpers import AsyncHelpers

FAST = RetryPolicy(max_deliveries=2, backoff=0.001, max_backoff=0.01)
GROUP = "consumer_group"


class Boom(Exception):
    pass


@pytest.fixture
def config(matrix_url: str) -> Config:
    streams: list[str | Stream] = ["plain", Stream("trimmed", retention="trim")]
    return Config(redis_pools=[RedisPool(uri=matrix_url, streams=streams)])


@pytest.fixture
def rclient(matrix_url: str) -> redis.Redis:
    return redis.Redis.from_url(matrix_url)


@pytest.fixture
async def broker(config: Config) -> AsyncIterator[AsyncEventBroker]:
    async with AsyncEngine(config) as engine:
        yield engine.new_context().event_broker()


def calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def publish(broker: AsyncEventBroker, stream: str, bodies: list[Any]) -> list[str]:
    for body in bodies:
        broker.publish(stream, body)
    return await broker.flush()


async def test_publish_consume_and_ack_in_order_leaves_the_stream_empty(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    ids = await publish(broker, "plain", ["a", "b", "c", "d"])
    seen: list[AsyncEvent] = []
    single = broker.consumer_single("plain")
    assert await single.consume(2, 0, seen.extend) == 2
    assert await broker.consumer_many("plain").consume(10, 0, seen.extend) == 2
    assert [e.id for e in seen] == ids
    assert [e.body for e in seen] == ["a", "b", "c", "d"]
    assert rclient.xlen("plain") == 0  # XACK + XDEL: the stream's length is its backlog
    assert rclient.xpending("plain", GROUP)["pending"] == 0
    await single.cleanup()


async def test_autoclaim_hands_over_live_entries_and_acks_away_one_deleted_while_pending(
    broker: AsyncEventBroker, config: Config, rclient: redis.Redis
) -> None:
    ids = await publish(broker, "plain", ["a", "b", "c"])
    async with AsyncEngine(config) as other:
        crashed = other.new_context().event_broker().consumer_many("plain")

        def crash(events: list[AsyncEvent]) -> None:
            raise Boom("died")

        with pytest.raises(Boom):
            await crashed.consume(10, 0, crash)
    rclient.xdel("plain", ids[1])  # deleted while pending (a Go consumer's XDEL, say)

    claimer = broker.consumer_many("plain")
    seen: list[AsyncEvent] = []
    assert await claimer.autoclaim(10, 0, seen.extend) == 2
    assert [(e.id, e.body, e.delivery_count) for e in seen] == [(ids[0], "a", 2), (ids[2], "c", 2)]
    # Nothing stays pending on anyone: the deleted entry was acked away, also on 6.2.
    assert rclient.xpending("plain", GROUP)["pending"] == 0
    assert rclient.xlen("plain") == 0


async def test_run_retries_dead_letters_a_poison_event_and_replay_brings_it_back(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "plain", ["ok", "poison"])
    consumer = broker.consumer_many("plain", retry_policy=FAST)
    handled: list[Any] = []

    def handler(events: list[AsyncEvent]) -> None:
        if any(e.body == "poison" for e in events):
            raise Boom("no")
        handled.extend(e.body for e in events)

    async def stop_once_dead_lettered() -> None:
        await AsyncHelpers.wait_for(lambda: rclient.xlen("{plain}:dead") == 1)
        consumer.stop()

    results = await AsyncHelpers.run_all(
        lambda: consumer.run(10, 0.05, handler), stop_once_dead_lettered
    )
    assert results[0] == 1 and handled == ["ok"]
    (letter,) = await broker.dead_letters("plain")
    # FAST allows 2 deliveries: the batch one (excused: the batch was split), then two alone
    assert (letter.event.body, letter.deliveries, letter.group) == ("poison", 3, GROUP)
    assert rclient.xlen("plain") == 0
    assert await broker.replay_dead_letters("plain") == 1
    (entry,) = rclient.xrange("plain")
    assert b"fluxabee-group" not in entry[1]  # one group: FluxaORM's layout, unchanged
    assert await broker.consumer_many("plain").consume(10, 0, lambda es: None) == 1
    assert rclient.xlen("plain") == rclient.xlen("{plain}:dead") == 0


async def test_statistics_report_lag_only_where_the_server_knows_it(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "plain", [1, 2, 3])
    consumer = broker.consumer_many("plain")
    assert await consumer.consume(1, 0, lambda es: None) == 1
    stats = await broker.stream_statistics("plain")
    assert stats.length == 2 and stats.group is not None
    assert stats.groups == (stats.group,)
    reported = [g for g in rclient.xinfo_groups("plain") if "lag" in g]
    assert stats.group.lag == (2 if reported else None)  # 6.2 has no lag: unknown, not 0


async def test_a_stream_flushed_under_a_running_consumer_is_recreated_and_consumed(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    # Redis 7+ wakes the blocked XREADGROUP with UNBLOCKED; 6.2 lets it time out (run
    # blocks at most 1 s) and answers the next read with NOGROUP. Either way: recreate.
    await broker.publish_now("plain", "before")
    consumer = broker.consumer_many("plain")
    handled: list[str] = []

    def handler(events: list[AsyncEvent]) -> None:
        handled.extend(e.body for e in events)
        if "after" in handled:
            consumer.stop()

    def blocked() -> bool:
        return int(rclient.info("clients")["blocked_clients"]) == 1

    async def flush_then_publish() -> None:
        await AsyncHelpers.wait_for(lambda: handled == ["before"] and blocked())
        rclient.flushall()
        await AsyncHelpers.wait_for(lambda: bool(rclient.exists("plain")) and blocked())
        rclient.xadd("plain", {"s": msgpack.packb("after")})

    results = await AsyncHelpers.run_all(lambda: consumer.run(10, 1.0, handler), flush_then_publish)
    assert results[0] == 2 and handled == ["before", "after"]
    assert rclient.xlen("plain") == 0


async def test_retention_trim_acks_with_xack_only_and_trims_what_was_acked(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "trimmed", list(range(40)))
    xdels = calls(rclient, "xdel")
    consumer = broker.consumer_many("trimmed")
    seen: list[Any] = []

    def handler(events: list[AsyncEvent]) -> None:
        seen.extend(e.body for e in events)
        if len(seen) == 40:
            consumer.stop()

    assert await consumer.run(10, 0.05, handler) == 40
    assert calls(rclient, "xdel") == xdels  # XACK only
    assert calls(rclient, "xtrim") >= 1  # run trimmed at least once (the first batch)
    await broker.trim("trimmed")
    assert rclient.xlen("trimmed") == 0
    assert rclient.xpending("trimmed", GROUP)["pending"] == 0
