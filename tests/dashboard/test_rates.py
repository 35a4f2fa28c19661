"""The counters the dashboard's rates come from, on every kind of server of the matrix."""

from __future__ import annotations

from fluxabee import AsyncEngine, Config, RedisPool, Stream


async def test_statistics_carry_entries_added_and_read_where_the_server_tells(
    matrix_url: str, matrix_server: object
) -> None:
    config = Config(
        redis_pools=[RedisPool(uri=matrix_url, streams=[Stream("r", groups=["a", "b"])])]
    )
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(5):
            broker.publish("r", n)
        await broker.flush()
        consumer = broker.consumer_many("r", group="a")

        async def handle(events: list[object]) -> None:
            pass

        assert await consumer.consume(3, 0, handle) == 3
        stats = await broker.stream_statistics("r")
    read = [(g.name, g.entries_read) for g in stats.groups]
    if "redis-6.2" in repr(matrix_server):  # no entries-added / entries-read before 7.0
        assert (stats.entries_added, read) == (None, [("a", None), ("b", None)])
    else:  # a group that read nothing yet has no counter (Redis says nil)
        assert (stats.entries_added, read) == (5, [("a", 3), ("b", None)])
