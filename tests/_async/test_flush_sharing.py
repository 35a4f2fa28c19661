"""What a flush promises when the buffer is shared, changed or refused mid-flight (issue 14,
items 10, 17 and 21), against real servers, in both APIs.

:class:`StepwiseBackend` sends a pipeline one command at a time, each after its reply
came back (the replies are handed to the client as usual): a test can act between two
commands of one flush, deterministically (publish, discard, change the server's
``maxmemory``), exactly where another task or thread could.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import hiredis
import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncNetworkBackend,
    AsyncStream,
    Config,
    RedisPool,
    RedisReplyError,
)
from fluxabee._connparams import ConnParams
from fluxabee._protocol import pack_command
from tests.helpers import AsyncHelpers
from tests.servers import RedisServer

#: The sync twin of this module shares a broker between threads, this one between tasks.
SYNC = not AsyncEngine.__name__.startswith("Async")


def commands_of(data: bytes | list[bytes]) -> list[bytes]:
    """The packed commands of a pipeline, one ``bytes`` each."""
    reader = hiredis.Reader()
    reader.feed(b"".join(data) if isinstance(data, list) else data)
    found = []
    while (command := reader.gets()) is not False:
        found.append(pack_command(command))
    return found


class StepwiseStream:
    """Writes one command, reads its whole reply, calls ``before`` ahead of the next."""

    def __init__(self, inner: AsyncStream, before: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._before = before
        self._replies = b""

    async def write(self, data: bytes | list[bytes]) -> None:
        for command in commands_of(data):
            self._before(command)
            await self._inner.write(command)
            reader = hiredis.Reader()
            while True:
                chunk = await self._inner.read(5.0)
                assert chunk, "the server closed the connection"
                self._replies += chunk
                reader.feed(chunk)
                if reader.gets() is not False:
                    break

    async def read(self, timeout: float | None) -> bytes:
        if self._replies:
            replies, self._replies = self._replies, b""
            return replies
        return await self._inner.read(timeout)

    async def stale(self) -> bool:
        return await self._inner.stale()

    async def close(self) -> None:
        await self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


class StepwiseBackend(AsyncNetworkBackend):
    def __init__(self, before: Callable[[bytes], None]) -> None:
        self.before = before

    async def connect(self, params: ConnParams, timeout: float) -> AsyncStream:
        return StepwiseStream(await super().connect(params, timeout), self.before)


class SlowStream:
    """A real connection over a slow network: each write of events waits ``delay`` first."""

    def __init__(self, inner: AsyncStream, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    async def write(self, data: bytes | list[bytes]) -> None:
        if b"XADD" in (b"".join(data) if isinstance(data, list) else data):
            await AsyncHelpers.pause(self._delay)
        await self._inner.write(data)

    async def read(self, timeout: float | None) -> bytes:
        return await self._inner.read(timeout)

    async def stale(self) -> bool:
        return await self._inner.stale()

    async def close(self) -> None:
        await self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


class SlowBackend(AsyncNetworkBackend):
    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def connect(self, params: ConnParams, timeout: float) -> AsyncStream:
        return SlowStream(await super().connect(params, timeout), self.delay)


class XaddCounter:
    """Calls ``act(n)`` before the ``n``-th XADD (from 1) a backend sends."""

    def __init__(self, act: Callable[[int], None]) -> None:
        self.act = act
        self.sent = 0

    def __call__(self, command: bytes) -> None:
        if b"XADD" in command:
            self.sent += 1
            self.act(self.sent)


def bodies(client: redis.Redis, stream: str) -> list[Any]:
    return [msgpack.unpackb(fields[b"s"]) for _, fields in client.xrange(stream)]


# -- item 10: discard() then publish() while a flush is in flight ---------------------------


async def test_discard_then_publish_during_a_flush_keeps_the_new_event_buffered(
    redis_url: str, rclient: redis.Redis
) -> None:
    config = Config(redis_pools=[RedisPool(uri=redis_url, streams=["s"])])
    broker_box: list[Any] = []
    dropped: list[int] = []

    def meanwhile(n: int) -> None:
        if n == 2:  # the flush sent its first event and waits to send the second
            broker = broker_box[0]
            dropped.append(broker.discard())
            broker.publish("s", "published-meanwhile")

    async with AsyncEngine(config, network_backend=StepwiseBackend(XaddCounter(meanwhile))) as e:
        broker = e.new_context().event_broker()
        broker_box.append(broker)
        broker.publish("s", "one")
        broker.publish("s", "two")
        assert len(await broker.flush()) == 2
        assert broker.buffered == 1  # was 0: the flush cut the new event from the buffer
        assert dropped == [0]  # the flush owned its two events: nothing else was buffered
        assert len(await broker.flush()) == 1
    assert bodies(rclient, "s") == ["one", "two", "published-meanwhile"]


# -- item 17: an event refused in the middle of a flush -------------------------------------


async def test_an_event_refused_mid_flush_stays_buffered_and_lands_after_the_later_ones(
    server_factory: Callable[..., RedisServer],
) -> None:
    # The documented exception to "order within a stream is kept" (README, Delivery
    # guarantees): Redis refuses the 2nd of 3 XADDs (OOM at maxmemory) and accepts the 3rd.
    server = server_factory(extra_args=["--maxmemory-policy", "noeviction"])
    admin = server.client()

    def squeeze(n: int) -> None:
        admin.config_set("maxmemory", "1" if n == 2 else "0")

    config = Config(redis_pools=[RedisPool(uri=server.url, streams=["s"])])
    try:
        async with AsyncEngine(config, network_backend=StepwiseBackend(XaddCounter(squeeze))) as e:
            broker = e.new_context().event_broker()
            for body in (1, 2, 3):
                broker.publish("s", body)
            with pytest.raises(RedisReplyError, match="OOM") as info:
                await broker.flush()
            assert info.value.prefix == "OOM"
            assert bodies(admin, "s") == [1, 3]  # the 3rd landed before the 2nd
            assert broker.buffered == 1  # the refused one, never lost
            assert len(await broker.flush()) == 1
        assert bodies(admin, "s") == [1, 3, 2]
    finally:
        admin.close()


# -- item 21: one broker shared between tasks (asyncio) or threads (sync) -------------------


class Landed:
    """Which bodies are in a stream now, read incrementally (safe between threads)."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self._client = client
        self._stream = stream
        self._seen: set[Any] = set()
        self._last = "-"
        self._guard = threading.Lock()

    def __contains__(self, body: object) -> bool:
        with self._guard:
            if body not in self._seen:
                start = self._last if self._last == "-" else f"({self._last}"
                for entry_id, fields in self._client.xrange(self._stream, min=start):
                    self._seen.add(msgpack.unpackb(fields[b"s"]))
                    self._last = entry_id.decode()
            return body in self._seen


async def test_a_shared_broker_flush_returns_only_once_its_callers_events_are_in_redis(
    redis_url: str, rclient: redis.Redis
) -> None:
    # 2,000 tasks (asyncio) or 8 threads (sync) share one broker, each publishing and then
    # flushing, over a slow network: another caller's flush is often sending this caller's
    # event when it calls flush; its flush must still return only once the event landed.
    workers, rounds = (8, 25) if SYNC else (2000, 1)
    config = Config(redis_pools=[RedisPool(uri=redis_url, streams=["s"])])
    landed = Landed(rclient, "s")
    returned: list[list[str]] = []
    missing: list[str] = []
    async with AsyncEngine(config, network_backend=SlowBackend(0.01)) as engine:
        broker = engine.new_context().event_broker()

        def worker(w: int) -> Callable[[], Any]:
            async def publish_and_flush() -> None:
                for r in range(rounds):
                    body = f"{w}:{r}"
                    broker.publish("s", body)
                    await AsyncHelpers.pause(0)  # another caller may flush it now
                    returned.append(await broker.flush())
                    if body not in landed:
                        missing.append(body)

            return publish_and_flush

        await AsyncHelpers.run_all(*(worker(w) for w in range(workers)))
        assert broker.buffered == 0
    assert missing == []
    ids = [entry_id for batch in returned for entry_id in batch]
    # Every event was sent exactly once, by whichever flush took it: a flush's IDs are
    # those of the events it sent (other callers' too), so many flushes return [].
    assert len(ids) == len(set(ids)) == workers * rounds == rclient.xlen("s")
    assert len(returned) == workers * rounds
    assert returned.count([]) > 0
