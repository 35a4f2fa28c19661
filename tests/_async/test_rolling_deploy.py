"""A group added in a rolling deploy (or by a Go service) keeps its events: consumers on
the old, one-group config stop deleting what it still needs (issue 14, item 15).

Two engines on two configs stand for the two deploys; each scenario runs on every server
of the matrix (XACKDEL on Redis 8.2, XACK and trims elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, AsyncEventBroker, Config, RedisPool, Stream

STREAM = "orders"


def ignore(events: list[AsyncEvent]) -> None:
    pass


async def publish(broker: AsyncEventBroker, count: int) -> list[str]:
    for n in range(count):
        broker.publish(STREAM, n)
    return await broker.flush()


def config(url: str, stream: str | Stream) -> Config:
    return Config(redis_pools=[RedisPool(uri=url, streams=[stream])])


@pytest.fixture
def rclient(matrix_url: str) -> redis.Redis:
    return redis.Redis.from_url(matrix_url)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not declare" in r.getMessage()]


async def test_a_group_added_by_a_newer_deploy_keeps_what_old_config_consumers_ack(
    matrix_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fluxabee")
    new_stream = Stream(STREAM, groups=["consumer_group", "audit"])
    async with (
        AsyncEngine(config(matrix_url, STREAM)) as old,
        AsyncEngine(config(matrix_url, new_stream)) as new,
    ):
        old_broker = old.new_context().event_broker()
        new_broker = new.new_context().event_broker()
        # Before the deploy: one group, whose acks delete at once (FluxaORM's XACK + XDEL).
        await publish(old_broker, 3)
        assert await old_broker.consumer_many(STREAM).consume(10, 0, ignore) == 3
        assert rclient.xlen(STREAM) == 0 and warnings(caplog) == []
        # The new deploy's first consumer creates the groups it declares.
        audit = new_broker.consumer_many(STREAM, group="audit")
        assert await audit.consume(10, 0, ignore) == 0
        published = await publish(new_broker, 4)
        # A process still on the old config handles the new events ...
        assert await old_broker.consumer_many(STREAM).consume(10, 0, ignore) == 4
        assert rclient.xlen(STREAM) == 4  # ... and leaves them for audit
        assert warnings(caplog) == [
            f"stream {STREAM} has groups its config does not declare (audit): acks "
            "no longer delete entries, trims remove what every group acked; declare them, "
            "or XGROUP DESTROY them once they are gone for good"
        ]
        seen: list[str] = []
        assert await audit.consume(10, 0, lambda es: seen.extend(e.id for e in es)) == 4
        assert seen == published  # nothing lost
        await old_broker.trim(STREAM)  # what both groups acked goes (XACKDEL: gone already)
        assert rclient.xlen(STREAM) == 0


async def test_a_group_a_go_service_created_keeps_what_fluxabee_consumers_ack(
    matrix_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fluxabee")
    async with AsyncEngine(config(matrix_url, STREAM)) as engine:
        broker = engine.new_context().event_broker()
        rclient.xgroup_create(STREAM, "go-audit", id="$", mkstream=True)  # FluxaORM's way
        published = await publish(broker, 5)
        consumer = broker.consumer_many(STREAM)
        assert await consumer.consume(10, 0, ignore) == 5
        assert rclient.xlen(STREAM) == 5
        assert "(go-audit)" in warnings(caplog)[0]
        read: Callable[[], Any] = lambda: rclient.xreadgroup(  # noqa: E731
            "go-audit", "go-1", {STREAM: ">"}, count=10
        )
        ids = [i.decode() for i, _ in read()[0][1]]
        assert ids == published
        rclient.xack(STREAM, "go-audit", *ids)
        assert await broker.trim(STREAM) in (0, 5)  # 0 where XACKDEL ... ACKED removed them
        assert rclient.xlen(STREAM) == 0
