"""``trim(max_len=N)`` finds its cut on the server: it reads one ID whatever N, so its
memory stays bounded on a big stream, and it cuts exactly on every server of the matrix
(issue 14, item 11)."""

from __future__ import annotations

import tracemalloc

import redis

from fluxabee import AsyncEngine, AsyncEventBroker, Config, RedisPool

STREAM = "test-stream"
GROUP = "consumer_group"


def fill(rclient: redis.Redis, count: int, size: int) -> list[str]:
    """XADD ``count`` entries of ``size`` bytes, then a group that has read them all (so
    no trim is refused); their IDs, oldest first."""
    ids: list[str] = []
    body = b"x" * size
    for start in range(0, count, 5000):
        pipe = rclient.pipeline(transaction=False)
        for _ in range(start, min(count, start + 5000)):
            pipe.xadd(STREAM, {"s": body})
        ids += [i.decode() for i in pipe.execute()]
    rclient.xgroup_create(STREAM, GROUP, id="$")
    return ids


def first_id(rclient: redis.Redis) -> str:
    return str(rclient.xrange(STREAM, count=1)[0][0].decode())


async def test_trimming_a_big_stream_to_a_length_reads_one_id_not_the_entries_it_keeps(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    ids = fill(rclient, 50_000, 200)  # 10 MB of bodies
    tracemalloc.start()
    try:
        assert await broker.trim(STREAM, max_len=49_999) == 1  # the oldest end is nearer
        small = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        # The middle: 25 000 entries walked past on the server, in five round trips.
        assert await broker.trim(STREAM, max_len=25_000) == 24_999
        middle = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Reading the 25 000 kept entries, as before, peaked at many MB (67 MB for 200 000).
    assert small < 1_000_000 and middle < 1_000_000, (small, middle)
    assert rclient.xlen(STREAM) == 25_000
    assert first_id(rclient) == ids[-25_000]


async def test_a_length_cut_is_exact_from_either_end_and_counts_entries_not_ids(
    matrix_url: str,
) -> None:
    rclient = redis.Redis.from_url(matrix_url)
    ids = fill(rclient, 300, 10)
    gone = ids[100:110]  # deleted in the middle (a Go consumer's XDEL): not counted
    rclient.xdel(STREAM, *gone)
    kept = [i for i in ids if i not in gone]
    config = Config(redis_pools=[RedisPool(uri=matrix_url, streams=[STREAM])])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        assert await broker.trim(STREAM, max_len=250) == 40  # walks 41 from the oldest
        assert first_id(rclient) == kept[-250]
        assert await broker.trim(STREAM, max_len=20) == 230  # walks 20 from the newest
        assert first_id(rclient) == kept[-20] and rclient.xlen(STREAM) == 20
        assert await broker.trim(STREAM, max_len=20) == 0
        assert await broker.trim(STREAM, max_len=0) == 20
        assert rclient.xlen(STREAM) == 0
