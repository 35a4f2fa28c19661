"""A vanished stream or group is recreated by every flow, and errors that need a human stop
``run`` at once (issue 14, items 8, 9 and 20)."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    BrokerAuthenticationError,
    Config,
    PermissionDeniedError,
    RedisPool,
)
from tests._async.test_faults import Waker, blocked_clients
from tests.faulty import AsyncFaultyBackend, FaultPlan
from tests.servers import RedisServer


async def test_run_recreates_a_stream_whose_loss_a_claim_noticed_first(
    config: Config, rclient: redis.Redis
) -> None:
    plan = FaultPlan()  # no fault: it records the commands, in order
    handled: list[str] = []
    mark: list[int] = []
    async with AsyncEngine(config, network_backend=AsyncFaultyBackend(plan)) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream", min_idle=0)
        rclient.xadd("test-stream", {"s": msgpack.packb("before")})

        def handler(events: list[AsyncEvent]) -> None:
            handled.extend(e.body for e in events)
            if handled == ["before"]:
                rclient.delete("test-stream")
                mark.append(len(plan.writes))
                time.sleep(0.05)  # past the claim interval (10 ms with min_idle=0)
            if "after" in handled:
                consumer.stop()

        after = ("after DEL: a claim, the group recreated, a blocked read",
                 lambda: bool(mark) and blocked_clients(rclient) == 1,
                 lambda: rclient.xadd("test-stream", {"s": msgpack.packb("after")}))  # fmt: skip
        with Waker(after, on_error=consumer.stop):
            await consumer.run(10, 1.0, handler)
    assert handled == ["before", "after"]
    noticed = [w for w in plan.writes[mark[0] :] if b"XAUTOCLAIM" in w or b"XREADGROUP" in w]
    assert b"XAUTOCLAIM" in noticed[0]  # the claim met the vanished group first
    assert rclient.xlen("test-stream") == 0


@pytest.mark.parametrize("matrix_server", ["redis-6.2"], indirect=True)
async def test_consumer_single_run_recreates_a_vanished_stream_on_redis_6_2(
    matrix_url: str,
) -> None:
    # Redis 6.2 reports the NOGROUP met inside the locked read's script as
    # "ERR Error running script ... @user_script:1: NOGROUP ...".
    rclient = redis.Redis.from_url(matrix_url)
    handled: list[str] = []
    deleted: list[bool] = []
    config = Config(redis_pools=[RedisPool(uri=matrix_url, streams=["test-stream"])])
    try:
        async with AsyncEngine(config) as engine:
            consumer = engine.new_context().event_broker().consumer_single("test-stream")
            rclient.xadd("test-stream", {"s": msgpack.packb("before")})

            def handler(events: list[AsyncEvent]) -> None:
                handled.extend(e.body for e in events)
                if handled == ["before"]:
                    rclient.delete("test-stream")
                    deleted.append(True)
                if "after" in handled:
                    consumer.stop()

            def waiting_again() -> bool:
                recreated = bool(deleted) and rclient.exists("test-stream") == 1
                return recreated and blocked_clients(rclient) == 1

            def publish_after() -> None:
                rclient.xadd("test-stream", {"s": msgpack.packb("after")})

            after = ("the group recreated and the locked read waiting again", waiting_again,
                     publish_after)  # fmt: skip
            with Waker(after, on_error=consumer.stop):
                await consumer.run(10, 1.0, handler)
            await consumer.aclose()
        assert handled == ["before", "after"]
    finally:
        rclient.close()


async def test_run_raises_a_wrong_password_at_once(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory(extra_args=["--requirepass", "s3cret"])
    url = f"redis://:wrong@127.0.0.1:{server.port}/0"
    config = Config(redis_pools=[RedisPool(uri=url, streams=["test-stream"])])
    async with AsyncEngine(config) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")

        def handler(events: list[AsyncEvent]) -> None:
            pytest.fail("nothing to hand over")

        with pytest.raises(BrokerAuthenticationError, match="WRONGPASS"):
            await consumer.run(10, 0.1, handler)


async def test_run_raises_a_missing_permission_at_once(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    admin = server.client()
    try:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-xautoclaim")
    finally:
        admin.close()
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    config = Config(redis_pools=[RedisPool(uri=url, streams=["test-stream"])])
    async with AsyncEngine(config) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")

        def handler(events: list[AsyncEvent]) -> None:
            pytest.fail("nothing to hand over")

        with pytest.raises(PermissionDeniedError, match="NOPERM"):
            await consumer.run(10, 0.1, handler)


async def test_process_raises_a_wrong_password_at_once(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory(extra_args=["--requirepass", "s3cret"])
    url = f"redis://:wrong@127.0.0.1:{server.port}/0"
    config = Config(redis_pools=[RedisPool(uri=url, streams=["test-stream"])])
    async with AsyncEngine(config) as engine:
        consumer = engine.new_context().event_broker().consumer_many("test-stream")

        def handler(event: AsyncEvent) -> None:
            pytest.fail("nothing to hand over")

        with pytest.raises(BrokerAuthenticationError, match="WRONGPASS"):
            await consumer.process(handler, block=0.1)
