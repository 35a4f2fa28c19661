"""``process`` hands back what it read and never started, on every server of the matrix:
``XNACK ... SILENT`` where the server has it (Redis 8.8+), else ``XCLAIM`` to itself with
the idle time set past ``min_idle``. Which one a server takes is asked of the server itself
(``COMMAND INFO``), never guessed from its version; the test of the other path is skipped
there, saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, AsyncEventBroker, Config, RedisPool

STREAM = "handback"


@pytest.fixture
def config(matrix_url: str) -> Config:
    """The stream on the matrix server."""
    return Config(redis_pools=[RedisPool(uri=matrix_url, streams=[STREAM])])


@pytest.fixture
def rclient(matrix_url: str) -> redis.Redis:
    """redis-py on the matrix server, for set-up and assertions."""
    return redis.Redis.from_url(matrix_url)


@pytest.fixture
async def broker(config: Config) -> AsyncIterator[AsyncEventBroker]:
    async with AsyncEngine(config) as engine:
        yield engine.new_context().event_broker()


def has_command(client: redis.Redis, name: str) -> bool:
    """What the server itself says (COMMAND INFO), as fluxabee asks it."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("COMMAND", lambda reply, **options: reply)  # the raw reply
    reply = raw.execute_command("COMMAND", "INFO", name)
    return bool(reply) and reply[0] is not None


async def stop_after_the_first(broker: AsyncEventBroker) -> tuple[str, str, list[int]]:
    """Five events of one key; the handler of the first stops ``process``, so the four
    queued behind it were read and never started: they are handed back. Returns the
    consumer's name, its group and what it started."""
    for n in range(5):
        broker.publish(STREAM, n, meta={"k": "a"})
    await broker.flush()
    first = broker.consumer_many(STREAM)
    started: list[int] = []

    async def handler(event: AsyncEvent) -> None:
        started.append(event.body)
        first.stop()

    assert await first.process(handler, key="k", min_idle=30.0, block=0.05) == 1
    return first.name, first.group, started


async def taken_at_once(broker: AsyncEventBroker) -> list[int]:
    """What a second consumer's claim of entries idle over 30 s takes now."""
    second = broker.consumer_many(STREAM)
    taken: list[int] = []

    async def take(events: list[AsyncEvent]) -> None:
        taken.extend(e.body for e in events)

    await second.autoclaim(10, 30.0, take)
    return taken


async def test_stop_hands_back_with_xnack_where_the_server_has_it(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    if not has_command(rclient, "XNACK"):
        pytest.skip("the XNACK hand-back needs Redis 8.8+: the server lacks XNACK (COMMAND INFO)")
    _, group, started = await stop_after_the_first(broker)
    assert started == [0]
    pending = rclient.xpending_range(STREAM, group, "-", "+", 10)
    assert len(pending) == 4
    for entry in pending:
        assert entry["consumer"] == b""  # released to the group, no one's any more
        assert entry["times_delivered"] == 0  # SILENT: the unstarted delivery did not count
    assert await taken_at_once(broker) == [1, 2, 3, 4]


async def test_stop_hands_back_with_xclaim_idle_where_the_server_lacks_xnack(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    if has_command(rclient, "XNACK"):
        pytest.skip("the server has XNACK (COMMAND INFO): it hands back with XNACK instead")
    name, group, started = await stop_after_the_first(broker)
    assert started == [0]
    pending = rclient.xpending_range(STREAM, group, "-", "+", 10)
    assert len(pending) == 4
    for entry in pending:
        assert entry["consumer"] == name.encode()  # still its own, but idle past min_idle
        assert entry["time_since_delivered"] >= 2 * 30_000
        assert entry["times_delivered"] == 1  # JUSTID: the hand-back is no delivery
    assert await taken_at_once(broker) == [1, 2, 3, 4]
