"""One lifecycle on every topology: close, use after close, errors of a wrong password or a
missing permission, and the pool timeout, on one server, a Cluster and a Sentinel-managed
master alike (issue 14, items 5, 6, 13 and 30)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    BrokerAuthenticationError,
    BrokerConnectionError,
    ClosedError,
    Config,
    PermissionDeniedError,
    RedisPool,
)
from fluxabee._constants import DEFAULT_SOCKET_TIMEOUT
from tests.cluster import ClusterServer
from tests.servers import RedisServer
from tests.topologies import (  # noqa: F401 - the fixtures
    STREAM,
    Topology,
    sentinel_setup_fixture,
    topology_fixture,
)


async def ignore(events: list[AsyncEvent]) -> None:
    pass


# -- item 5: a closed engine is closed on every topology ----------------------------------


async def test_given_a_running_run_when_the_handler_closes_the_engine_then_run_raises_closed_and_the_event_stays_pending(  # noqa: E501
    topology: Topology,
) -> None:
    engine = AsyncEngine(topology.config())
    broker = engine.new_context().event_broker()
    await broker.publish_now(STREAM, "x")
    consumer = broker.consumer_many(STREAM)

    async def handler(events: list[AsyncEvent]) -> None:
        await engine.aclose()

    with pytest.raises(ClosedError):
        await consumer.run(10, 5.0, handler)
    assert topology.pending() == 1  # never acked, not lost


async def test_given_a_closed_engine_then_every_use_raises_closed_and_nothing_is_handed_over(
    topology: Topology, caplog: pytest.LogCaptureFixture
) -> None:
    engine = AsyncEngine(topology.config())
    broker = engine.new_context().event_broker()
    consumer = broker.consumer_many(STREAM)
    await consumer.consume(10, 0, ignore)  # the group exists, connections are pooled
    await broker.publish_now(STREAM, "waiting")
    broker.publish(STREAM, 1)
    broker.publish(STREAM, 2)
    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        await engine.aclose()
    assert "2 events still buffered" in caplog.text
    seen: list[AsyncEvent] = []
    with pytest.raises(ClosedError):
        await consumer.consume(10, 0, seen.extend)
    with pytest.raises(ClosedError):
        await consumer.run(10, 0, seen.extend)
    with pytest.raises(ClosedError):
        await broker.publish_now(STREAM, "late")
    with pytest.raises(ClosedError):
        broker.publish(STREAM, "late")
    with pytest.raises(ClosedError):
        engine.new_context()
    assert seen == []
    assert topology.pending() == 0  # the waiting event was not handed over by a closed engine
    assert int(topology.run(STREAM, "XLEN", STREAM)) == 1
    await engine.aclose()  # closing twice is fine


# -- item 13: leaving the block of a consumer closed inside it ----------------------------


@pytest.mark.parametrize("closing", ["consumer", "engine"])
async def test_leaving_the_block_of_a_consumer_closed_inside_it_does_nothing(
    topology: Topology, closing: str
) -> None:
    engine = AsyncEngine(topology.config())
    try:
        consumer = engine.new_context().event_broker().consumer_many(STREAM)
        async with consumer:
            await consumer.consume(10, 0, ignore)
            await (consumer.aclose() if closing == "consumer" else engine.aclose())
        assert consumer.closed
        with pytest.raises(ClosedError):  # still closed for any use
            await consumer.consume(10, 0, ignore)
    finally:
        await engine.aclose()


# -- item 6: the same errors on every topology ------------------------------------------


async def test_a_wrong_password_is_an_authentication_error_on_every_topology(
    topology: Topology,
) -> None:
    async with AsyncEngine(topology.config(userinfo="nobody:s3cr3t-pw@")) as engine:
        broker = engine.new_context().event_broker()
        with pytest.raises(BrokerAuthenticationError, match="WRONGPASS") as raised:
            await broker.publish_now(STREAM, "x")
        assert "s3cr3t-pw" not in str(raised.value)


async def test_a_command_the_acl_user_may_not_run_is_a_permission_error_on_every_topology(
    topology: Topology,
) -> None:
    topology.on_every_node("ACL", "SETUSER", "no-xadd", "on", ">pw", "~*", "&*", "+@all", "-xadd")
    try:
        async with AsyncEngine(topology.config(userinfo="no-xadd:pw@")) as engine:
            broker = engine.new_context().event_broker()
            with pytest.raises(PermissionDeniedError, match="XADD"):
                await broker.publish_now(STREAM, "x")
    finally:
        topology.on_every_node("ACL", "DELUSER", "no-xadd")


# -- item 30: the pool's timeout -----------------------------------------------------------


async def test_given_a_stopped_server_and_a_small_timeout_then_a_command_fails_within_it(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    pool = RedisPool(uri=server.url, streams=[STREAM], timeout=0.2)
    async with AsyncEngine(Config(redis_pools=[pool])) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(STREAM, "warm")  # a pooled connection
        server.server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(BrokerConnectionError, match=r"(?i)time"):
                await broker.publish_now(STREAM, "x")
            assert time.monotonic() - started < DEFAULT_SOCKET_TIMEOUT / 2  # not the default
        finally:
            server.server.resume()


async def test_given_a_stopped_cluster_node_and_a_small_timeout_then_a_command_fails_within_it(
    cluster: ClusterServer,
) -> None:
    seed = f"127.0.0.1:{cluster.masters()[0].port}"
    pool = RedisPool(uri=seed, cluster=True, streams=[STREAM], timeout=0.2)
    async with AsyncEngine(Config(redis_pools=[pool])) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(STREAM, "warm")  # the map is known, a connection pooled
        node = cluster.master_for_slot(cluster.keyslot(STREAM))
        cluster.pause(node)
        try:
            started = time.monotonic()
            with pytest.raises(BrokerConnectionError):
                await broker.publish_now(STREAM, "x")
            assert time.monotonic() - started < DEFAULT_SOCKET_TIMEOUT / 2
        finally:
            cluster.resume(node)
