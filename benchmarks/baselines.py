"""Raw redis-py baselines: the ceiling any Python library on redis-py can reach.

Every case takes ``url: str, n: int, ...``, works on a fresh stream name, times only
its hot part with ``time.perf_counter`` and returns events per second.

Run ``python -m benchmarks.baselines [n] [runs]`` from the repository root to print
a table against a throwaway ``redis-server``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

import msgpack
import redis
import redis.asyncio as aredis

from ._bodies import body_bytes, make_body
from ._report import Case, measure_all, print_table
from ._server import run_server

GROUP = "consumer_group"
CONSUMER = "c1"
FIELD = b"s"
DEFAULT_N = 20_000
#: Upper bound for one timed loop; a stuck case raises instead of hanging the run.
CASE_TIMEOUT = 120.0


def fresh_stream(case: str) -> str:
    """A stream name no earlier run has used."""
    return f"bench:{case}:{uuid.uuid4().hex[:12]}"


def _batches(n: int, batch: int) -> Iterable[int]:
    """Sizes of successive batches covering ``n`` items."""
    done = 0
    while done < n:
        size = min(batch, n - done)
        yield size
        done += size


def _check_deadline(deadline: float, case: str, done: int, n: int) -> None:
    if time.perf_counter() > deadline:
        msg = f"{case}: timed out after {CASE_TIMEOUT:.0f}s ({done}/{n} events)"
        raise TimeoutError(msg)


# -- publish ------------------------------------------------------------------------


def raw_publish_sync(url: str, n: int, body: bytes, batch: int = 1000) -> float:
    """``XADD stream * s <body>`` through a non-transactional pipeline, ``batch`` per trip."""
    stream = fresh_stream("raw-pub-sync")
    client = redis.Redis.from_url(url)
    try:
        client.ping()  # connect outside the timed part
        start = time.perf_counter()
        for size in _batches(n, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(size):
                pipe.xadd(stream, {FIELD: body})
            pipe.execute()
        elapsed = time.perf_counter() - start
        client.delete(stream)
    finally:
        client.close()
    return n / elapsed


async def raw_publish_async_coro(url: str, n: int, body: bytes, batch: int = 1000) -> float:
    """``raw_publish_sync`` with ``redis.asyncio``."""
    stream = fresh_stream("raw-pub-async")
    client = aredis.Redis.from_url(url)
    try:
        await client.ping()
        start = time.perf_counter()
        for size in _batches(n, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(size):
                pipe.xadd(stream, {FIELD: body})
            await pipe.execute()
        elapsed = time.perf_counter() - start
        await client.delete(stream)
    finally:
        await client.aclose()
    return n / elapsed


def raw_publish_async(url: str, n: int, body: bytes, batch: int = 1000) -> float:
    """Sync wrapper (``asyncio.run``) around :func:`raw_publish_async_coro`."""
    return asyncio.run(raw_publish_async_coro(url, n, body, batch))


# -- consume ------------------------------------------------------------------------


def prefill(client: redis.Redis, stream: str, n: int, size: int = 100, batch: int = 1000) -> None:
    """Fill ``stream`` with ``n`` entries ``s=msgpack(make_body(size, i))`` (not timed)."""
    i = 0
    for chunk in _batches(n, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(chunk):
            pipe.xadd(stream, {FIELD: msgpack.packb(make_body(size, i))})
            i += 1
        pipe.execute()


def _prefill_and_group(url: str, stream: str, n: int) -> None:
    client = redis.Redis.from_url(url)
    try:
        prefill(client, stream, n)
        client.xgroup_create(stream, GROUP, id="0")
    finally:
        client.close()


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a single-stream XREADGROUP reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(e[0], e[1]) for per_stream in reply.values() for e in per_stream[0]]
    return list(reply[0][1])


def raw_consume_sync(url: str, n: int, count: int = 1000) -> float:
    """XREADGROUP ``count`` at a time, msgpack-decode, then XACK + XDEL (multi-ID) per batch."""
    stream = fresh_stream("raw-con-sync")
    _prefill_and_group(url, stream, n)
    client = redis.Redis.from_url(url)
    unpackb = msgpack.unpackb
    consumed = 0
    try:
        client.ping()
        start = time.perf_counter()
        deadline = start + CASE_TIMEOUT
        while consumed < n:
            entries = _entries(
                client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=count, block=1000)
            )
            if not entries:
                _check_deadline(deadline, "raw_consume_sync", consumed, n)
                continue
            ids = []
            for entry_id, fields in entries:
                unpackb(fields[FIELD])
                ids.append(entry_id)
            pipe = client.pipeline(transaction=False)
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            pipe.execute()
            consumed += len(ids)
        elapsed = time.perf_counter() - start
        client.delete(stream)
    finally:
        client.close()
    return consumed / elapsed


async def raw_consume_async_coro(url: str, n: int, count: int = 1000) -> float:
    """:func:`raw_consume_sync` with ``redis.asyncio``."""
    stream = fresh_stream("raw-con-async")
    _prefill_and_group(url, stream, n)
    client = aredis.Redis.from_url(url)
    unpackb = msgpack.unpackb
    consumed = 0
    try:
        await client.ping()
        start = time.perf_counter()
        deadline = start + CASE_TIMEOUT
        while consumed < n:
            entries = _entries(
                await client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=count, block=1000)
            )
            if not entries:
                _check_deadline(deadline, "raw_consume_async", consumed, n)
                continue
            ids = []
            for entry_id, fields in entries:
                unpackb(fields[FIELD])
                ids.append(entry_id)
            pipe = client.pipeline(transaction=False)
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
            consumed += len(ids)
        elapsed = time.perf_counter() - start
        await client.delete(stream)
    finally:
        await client.aclose()
    return consumed / elapsed


def raw_consume_trim_sync(url: str, n: int, count: int = 1000, every: int = 10) -> float:
    """:func:`raw_consume_sync` acking with XACK only, and an exact ``XTRIM MINID`` past the
    last acked entry every ``every`` batches (and once at the end): what ``retention: trim``
    does, by hand, with one consumer (so the safe MINID is just past its last ack)."""
    stream = fresh_stream("raw-con-trim")
    _prefill_and_group(url, stream, n)
    client = redis.Redis.from_url(url)
    unpackb = msgpack.unpackb
    consumed = batches = 0
    try:
        client.ping()
        start = time.perf_counter()
        deadline = start + CASE_TIMEOUT
        while consumed < n:
            entries = _entries(
                client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=count, block=1000)
            )
            if not entries:
                _check_deadline(deadline, "raw_consume_trim_sync", consumed, n)
                continue
            ids = []
            for entry_id, fields in entries:
                unpackb(fields[FIELD])
                ids.append(entry_id)
            client.xack(stream, GROUP, *ids)
            consumed += len(ids)
            batches += 1
            if batches % every == 0 or consumed >= n:
                ms, seq = ids[-1].split(b"-")
                client.xtrim(stream, minid=f"{int(ms)}-{int(seq) + 1}", approximate=False)
        elapsed = time.perf_counter() - start
        client.delete(stream)
    finally:
        client.close()
    return consumed / elapsed


def raw_consume_async(url: str, n: int, count: int = 1000) -> float:
    """Sync wrapper (``asyncio.run``) around :func:`raw_consume_async_coro`."""
    return asyncio.run(raw_consume_async_coro(url, n, count))


# -- runner -------------------------------------------------------------------------


def cases(size: int = 100) -> dict[str, Case]:
    """Name -> ``f(url, n) -> events/s`` for every baseline on a ``size``-byte body."""
    body = body_bytes(size)
    return {
        "raw_publish_sync": lambda url, n: raw_publish_sync(url, n, body),
        "raw_publish_async": lambda url, n: raw_publish_async(url, n, body),
        "raw_consume_sync": lambda url, n: raw_consume_sync(url, n, 1000),
        "raw_consume_async": lambda url, n: raw_consume_async(url, n, 1000),
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else DEFAULT_N
    runs = int(argv[1]) if len(argv) > 1 else 3
    with run_server() as url:
        print_table(measure_all(cases(), url, n, runs), n, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
