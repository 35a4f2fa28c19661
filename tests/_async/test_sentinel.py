"""Sentinel: the master is asked of the sentinels, and a failover is ridden out with traffic
(one master, one replica, one sentinel, all real processes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from fluxabee import (
    AsyncEngine,
    BrokerAuthenticationError,
    BrokerConnectionError,
    Config,
    RedisPool,
)
from tests._async.traffic import ride_out_failover, wait_for
from tests.sentinel import MASTER_NAME, SentinelServer


def sentinel_config(setup: SentinelServer, *, password: str | None = None) -> Config:
    auth = f":{password}@" if password else ""
    return Config(
        redis_pools=[
            RedisPool(
                uri=f"redis://{auth}sentinel-master/0",  # the host is asked of the sentinels
                sentinels=[f"127.0.0.1:{port}" for _, port in setup.sentinels],
                master_name=MASTER_NAME,
                sentinel_password=setup.sentinel_password,
                streams=["s"],
            )
        ]
    )


async def test_the_master_is_found_through_the_sentinels_with_passwords(
    sentinel_factory: Callable[..., SentinelServer],
) -> None:
    setup = sentinel_factory(master_password="m-secret", sentinel_password="s-secret")
    async with AsyncEngine(sentinel_config(setup, password="m-secret")) as engine:
        broker = engine.new_context().event_broker()
        entry_id = await broker.publish_now("s", "hello")
        seen: list[Any] = []
        await broker.consumer_many("s").consume(10, 0, seen.extend)
    assert [e.id for e in seen] == [entry_id]
    client = setup.client(setup.current_master())
    try:
        assert client.xlen("s") == 0  # consumed and deleted on the master the sentinel named
    finally:
        client.close()
    async with AsyncEngine(sentinel_config(setup, password="wrong")) as engine:
        with pytest.raises(BrokerAuthenticationError):
            await engine.new_context().event_broker().publish_now("s", "x")


async def test_given_the_master_killed_under_traffic_then_run_rides_out_the_failover_and_nothing_confirmed_is_lost(  # noqa: E501
    sentinel_factory: Callable[..., SentinelServer],
) -> None:
    setup = sentinel_factory()
    promoted: list[tuple[str, int]] = []

    def fail_over() -> None:
        setup.kill_master()
        promoted.append(setup.wait_failover())

    async with AsyncEngine(sentinel_config(setup)) as engine:
        broker = engine.new_context().event_broker()
        seen = await ride_out_failover(broker, "s", fail_over, lambda: bool(promoted))
    print(f"sentinel failover: {seen}")
    assert not seen.lost
    assert promoted


async def test_given_a_graceful_failover_then_a_readonly_reply_makes_the_client_ask_the_sentinels_again(  # noqa: E501
    sentinel_factory: Callable[..., SentinelServer],
) -> None:
    setup = sentinel_factory()
    old = setup.current_master()
    async with AsyncEngine(sentinel_config(setup)) as engine:
        broker = engine.new_context().event_broker()
        broker.publish("s", "before")  # a pooled connection to the first master
        await broker.flush(wait_replicas=1)  # and on the replica: the failover keeps it
        admin = setup.sentinel_client()
        try:
            admin.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        finally:
            admin.close()
        wait_for("the old master to be a replica", lambda: _role(setup, old) == "slave")
        broker.publish("s", "after")
        with pytest.raises(BrokerConnectionError):  # READONLY from the demoted node: kept
            await broker.flush()
        assert broker.buffered == 1
        assert len(await broker.flush()) == 1  # the sentinels were asked again
    client = setup.client(setup.current_master())
    try:
        assert client.xlen("s") == 2
    finally:
        client.close()


def _role(setup: SentinelServer, server: Any) -> str:
    """The node's ROLE; ``""`` while it drops its clients to switch roles."""
    client = setup.client(server)
    try:
        return str(client.execute_command("ROLE")[0])
    except redis.exceptions.ConnectionError:
        return ""
    finally:
        client.close()
