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


async def test_a_connection_in_use_across_a_switchover_is_never_reused_on_the_old_master(
    sentinel_factory: Callable[..., SentinelServer],
) -> None:
    # Given a connection in use on the first master (a command in flight) when the
    # sentinels name another master and the client learns it (from another connection),
    # the old master still writable: a partition, where no sentinel could reach it to kill
    # its clients (as a graceful failover does)
    setup = sentinel_factory()
    old, new = setup.master, setup.replica
    engine = AsyncEngine(sentinel_config(setup))
    client: Any = engine._clients.client("default")  # the Sentinel pool client itself
    try:
        await client.call([b"SET", b"k", b"0"])  # the first master, found and pooled
        in_flight, _ = await client._acquire()
        _split_brain(setup, new)
        client.topology_changed()  # as a READONLY or a failure on another connection does
        await client.call([b"SET", b"k", b"1"])  # the sentinels are asked: the new master
        # When the command in flight ends and its connection goes back to the pool
        client._release(in_flight)
        # Then the next command goes to the new master, never to the old one
        await client.call([b"SET", b"k", b"2"])
    finally:
        await engine.aclose()
    assert [_get(setup, server, "k") for server in (old, new)] == ["0", "2"]


def _split_brain(setup: SentinelServer, new: Any) -> None:
    """Promote ``new`` by hand and make the sentinel name it; the old master stays one."""
    client = setup.client(new)
    try:
        client.execute_command("REPLICAOF", "NO", "ONE")
    finally:
        client.close()
    admin = setup.sentinel_client()
    try:
        admin.execute_command("SENTINEL", "REMOVE", MASTER_NAME)
        admin.execute_command("SENTINEL", "MONITOR", MASTER_NAME, "127.0.0.1", new.port, 1)
    finally:
        admin.close()
    wait_for("the sentinel to name the new master", lambda: setup.current_master() is new)


def _get(setup: SentinelServer, server: Any, key: str) -> Any:
    client = setup.client(server)
    try:
        return client.get(key)
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
