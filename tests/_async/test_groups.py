"""Choosing a group: the default, unknown groups, per-group names and pruning; statistics
per group; unknown lag. On the session server (the matrix runs the fan-out scenarios)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    InvalidArgumentError,
    RedisPool,
    Stream,
    TrimRefusedError,
    UnknownGroupError,
    UnknownStreamError,
)
from fluxabee._retention import id_key

ORDERS = Stream("orders", groups=["billing", "search"])


async def ignore(events: list[AsyncEvent]) -> None:
    pass


@pytest.fixture
def config(redis_url: str) -> Config:
    return Config(redis_pools=[RedisPool(uri=redis_url, streams=[ORDERS, "plain"])])


@pytest.fixture
async def broker(config: Config) -> AsyncIterator[AsyncEventBroker]:
    async with AsyncEngine(config) as engine:
        yield engine.new_context().event_broker()


async def test_a_consumer_joins_the_first_declared_group_unless_told_otherwise(
    broker: AsyncEventBroker,
) -> None:
    assert broker.consumer_many("orders").group == "billing"
    assert broker.consumer_many("orders", group="search").group == "search"
    assert broker.consumer_single("orders", group="search").group == "search"
    assert broker.consumer_many("plain").group == "consumer_group"
    assert "group='search'" in repr(broker.consumer_many("orders", group="search"))


async def test_an_undeclared_group_is_an_error_naming_the_stream_and_its_groups(
    broker: AsyncEventBroker,
) -> None:
    with pytest.raises(UnknownGroupError) as caught:
        broker.consumer_many("orders", group="email")
    assert str(caught.value) == (
        "group 'email' is not declared for stream 'orders' (its groups: 'billing', 'search')"
    )
    assert (caught.value.stream, caught.value.group) == ("orders", "email")
    assert caught.value.groups == ("billing", "search")
    with pytest.raises(UnknownGroupError, match="'consumer_group'"):
        broker.consumer_single("plain", group="billing")
    with pytest.raises(UnknownGroupError):
        await broker.prune_consumers("orders", idle=0, group="email")
    with pytest.raises(UnknownGroupError):
        await broker.replay_dead_letters("orders", group="email")
    with pytest.raises(InvalidArgumentError, match="group must be a non-empty str"):
        broker.consumer_many("orders", group="")
    with pytest.raises(UnknownStreamError):
        await broker.trim("nope")


async def test_prune_consumers_works_in_the_group_it_is_given(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("orders", "x")
    search = broker.consumer_many("orders", group="search")
    assert await search.consume(10, 0, lambda es: None) == 1
    assert await broker.prune_consumers("orders", idle=dt.timedelta(0)) == []  # billing's
    assert await broker.prune_consumers("orders", idle=0, group="search") == [search.name]
    assert rclient.xinfo_consumers("orders", "search") == []


async def test_statistics_list_every_declared_group_and_unknown_lag_is_none(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    for body in range(4):
        broker.publish("orders", body)
    ids = await broker.flush()
    assert await broker.consumer_many("orders").consume(4, 0, lambda es: None) == 4
    # An XDEL past search's position (a Go FluxaORM consumer acks that way): Redis cannot
    # count search's lag any more and says nil; fluxabee reports None, never 0.
    rclient.xdel("orders", ids[2])
    stats = await broker.stream_statistics("orders")
    assert [g.name for g in stats.groups] == ["billing", "search"]
    billing, search = stats.groups
    assert billing.lag == 0 and billing.pending == 0
    assert search.lag is None and search.pending == 0
    assert search.last_delivered_id == "0-0"
    assert stats.length == 3 and not stats.over_cap
    before = await broker.stream_statistics("plain")
    assert (before.group, before.groups, before.length) == (None, (), 0)


async def test_an_explicit_trim_never_cuts_what_a_group_still_needs_unless_forced(
    config: Config, rclient: redis.Redis
) -> None:
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(6):
            broker.publish("orders", i)
        ids = await broker.flush()
        billing = broker.consumer_many("orders", group="billing")
        search = broker.consumer_many("orders", group="search")
        assert await billing.consume(4, 0, ignore) == 4  # billing acked 0..3
        assert await search.consume(2, 0, ignore) == 2  # search acked 0..1
        await broker.trim("orders")  # retention: 0 and 1, which every group acked
        assert rclient.xlen("orders") == 4
        with pytest.raises(TrimRefusedError) as info:
            await broker.trim("orders", max_len=3)  # would cut 2, which search has not read
        assert info.value.holders == ("search",)
        # search needs what follows its last delivered ids[1]: the ID right after it, which
        # is ids[2] only when both XADDs fell in one millisecond (never assume they did).
        assert info.value.safe_id is not None
        assert id_key(ids[1]) < id_key(info.value.safe_id) <= id_key(ids[2])
        assert rclient.xlen("orders") == 4  # nothing removed
        assert await broker.trim("orders", min_id=ids[2]) == 0  # nothing below it is left
        with pytest.raises(TrimRefusedError):
            await broker.trim("orders", min_id=ids[5])
        assert await broker.trim("orders", min_id=ids[5], force=True) == 3
        assert [e[0].decode() for e in rclient.xrange("orders")] == [ids[5]]
        for bad in ({"min_id": "x-1"}, {"max_len": -1}, {"min_id": ids[0], "max_len": 1}):
            with pytest.raises(InvalidArgumentError):
                await broker.trim("orders", **bad)  # type: ignore[arg-type]
