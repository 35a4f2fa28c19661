"""Interrupted at every await on Redis: no connection leaks, no buffered event is lost
(issue 14, items 2 and 3; httpcore's ``test_cancellations.py`` is the model), on one
server (with and without a password), a Cluster and a Sentinel pool.

Every connection of the engine goes through :class:`StoppingBackend`, which numbers the
points where a call waits on Redis (opening a connection, each write, each read, the
idle-connection check). A scenario is run once per point ``k``: at the ``k``-th point the
call is interrupted there, deterministically (asyncio: a cancellation that arrives at that
await; sync: a KeyboardInterrupt, as Ctrl-C would raise), until a run ends before its
``k``-th point. After each interruption every connection the server sees (CLIENT LIST)
must be one the engine holds idle, ready for reuse (none taken and forgotten), the
engine must go on working, its close must leave no connection behind, and every event
published through the buffer must reach Redis by the next ``flush``.

The stranding of delivered events by an interrupted read is another module's subject;
here consume / autoclaim / run / process / trim / cleanup / close are only held to their
connections (process's own stranding test cancels it under asyncio:
``tests/test_process_async_only.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    AsyncNetworkBackend,
    AsyncStream,
    Config,
    RedisPool,
)
from fluxabee._backends import _FINISHING
from fluxabee._connparams import ConnParams
from tests.cluster import ClusterServer
from tests.helpers import AsyncHelpers
from tests.sentinel import MASTER_NAME, SentinelServer
from tests.servers import RedisServer

SCENARIOS = [
    "publish_now",
    "flush",
    "consume",
    "autoclaim",
    "run",
    "process",
    "trim",
    "cleanup",
    "close",
]
#: More points than any scenario has: a scenario that never ends its loop is a failure.
MAX_POINTS = 150


class Boom(Exception):
    pass


class Stops:
    """Numbers the points where the call under test waits on Redis; interrupts it at ``at``."""

    def __init__(self) -> None:
        self.at = 0
        self.seen = 0
        self.owner: Any = None
        self.fired = ""

    def arm(self, at: int) -> None:
        self.at, self.seen, self.fired, self.owner = at, 0, "", None

    def disarm(self) -> None:
        self.owner = None

    async def point(self, what: str) -> None:
        owner = self.owner
        if owner is None or self.fired or not AsyncHelpers.counts(owner):
            return
        self.seen += 1
        if self.seen == self.at:
            self.fired = f"{what} (point {self.at})"
            await AsyncHelpers.interrupt(owner)


class StoppingStream:
    """A real connection whose every wait is a numbered point of :class:`Stops`."""

    def __init__(self, inner: AsyncStream, stops: Stops) -> None:
        self._inner = inner
        self._stops = stops

    async def write(self, data: bytes | list[bytes]) -> None:
        await self._stops.point("write")
        await self._inner.write(data)

    async def read(self, timeout: float | None) -> bytes:
        await self._stops.point("read")
        return await self._inner.read(timeout)

    async def stale(self) -> bool:
        await self._stops.point("stale")
        return await self._inner.stale()

    async def close(self) -> None:
        await self._inner.close()

    def abort(self) -> None:
        self._inner.abort()


class StoppingBackend(AsyncNetworkBackend):
    def __init__(self, stops: Stops) -> None:
        self.stops = stops

    async def connect(self, params: ConnParams, timeout: float) -> AsyncStream:
        await self.stops.point("connect")
        return StoppingStream(await super().connect(params, timeout), self.stops)


class Servers:
    """The servers' own view of the test's connections (CLIENT LIST, type normal)."""

    def __init__(
        self, ports: list[int], *, sentinels: list[int] | None = None, password: str | None = None
    ) -> None:
        #: The data servers (flushed, read), then the sentinels (only counted).
        self.data = [redis.Redis(host="127.0.0.1", port=p, password=password) for p in ports]
        self.clients = self.data + [redis.Redis(host="127.0.0.1", port=p) for p in sentinels or []]
        self.baseline = [self._ids(client) for client in self.clients]

    @staticmethod
    def _ids(client: redis.Redis) -> set[int]:
        return {int(c["id"]) for c in client.client_list(_type="normal")}

    def opened(self) -> int:
        """Connections opened since the test began (by the engine: the admin's are known)."""
        return sum(len(self._ids(c) - b) for c, b in zip(self.clients, self.baseline, strict=True))

    def flushall(self) -> None:
        for client in self.data:
            client.flushall()

    def bodies(self, streams: list[str]) -> list[Any]:
        found = []
        for client in self.data:
            for stream in streams:
                try:
                    entries = client.xrange(stream)
                except redis.ResponseError:  # MOVED: another node holds it
                    continue
                found += [msgpack.unpackb(fields[b"s"]) for _, fields in entries]
        return found

    def close(self) -> None:
        for client in self.clients:
            client.close()


def idle(engine: AsyncEngine) -> int:
    """The connections the engine holds idle (every pool, every Cluster node)."""
    total = 0
    for client in engine._clients._clients.values():
        nodes = getattr(client, "_nodes", None)
        for node in [client] if nodes is None else list(nodes.values()):
            total += len(node._idle)
    return total


class Where:
    def __init__(self, config: Config, servers: Servers, streams: list[str]) -> None:
        self.config = config
        self.servers = servers
        self.streams = streams


@pytest.fixture(params=["server", "password", "cluster", "sentinel"])
def where(request: pytest.FixtureRequest) -> Iterator[Where]:
    if request.param == "password":  # each new connection runs a handshake (AUTH, SELECT)
        start: Callable[..., RedisServer] = request.getfixturevalue("server_factory")
        server = start(extra_args=["--requirepass", "s3cret"])
        streams = ["s", "t", "u"]
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        config = Config(redis_pools=[RedisPool(uri=url, streams=streams)])
        servers = Servers([server.port], password="s3cret")
    elif request.param == "server":
        server: RedisServer = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_url")  # flushed
        streams = ["s", "t", "u"]
        config = Config(redis_pools=[RedisPool(uri=server.url, streams=streams)])
        servers = Servers([server.port])
    elif request.param == "sentinel":
        factory: Callable[..., SentinelServer] = request.getfixturevalue("sentinel_factory")
        setup = factory()
        streams = ["s", "t", "u"]
        pool = RedisPool(
            uri="redis://sentinel-master/0",  # the host is asked of the sentinel
            sentinels=[f"127.0.0.1:{port}" for _, port in setup.sentinels],
            master_name=MASTER_NAME,
            streams=streams,
        )
        config = Config(redis_pools=[pool])
        master = setup.current_master()
        servers = Servers([master.port], sentinels=[port for _, port in setup.sentinels])
    else:
        cluster: ClusterServer = request.getfixturevalue("cluster")
        streams = cluster.spread(3)  # one stream per master
        uris = [f"127.0.0.1:{n.port}" for n in cluster.masters()[:1]]
        config = Config(redis_pools=[RedisPool(uri=uris, cluster=True, streams=streams)])
        servers = Servers([n.port for n in cluster.masters()])
    yield Where(config, servers, streams)
    servers.close()


async def ignore(events: list[AsyncEvent]) -> None:
    pass


async def boom(events: list[AsyncEvent]) -> None:
    raise Boom


async def prepare(
    scenario: str, engine: AsyncEngine, broker: AsyncEventBroker, streams: list[str], k: int
) -> tuple[Callable[[], Any], list[Any]]:
    """Set the scenario up (uninterrupted) and return its call and the bodies it publishes."""
    stream = streams[0]
    published: list[Any] = []
    if scenario == "publish_now":

        async def call() -> None:
            for n in range(2):  # the second one reuses the first one's connection
                await broker.publish_now(stream, f"{k}:{n}")

        return call, published
    if scenario == "flush":
        for n, target in enumerate(streams):  # one pipeline per Cluster master
            broker.publish(target, f"{k}:{n}")
            published.append(f"{k}:{n}")

        async def flush_twice() -> None:
            await broker.flush()
            broker.publish(stream, f"{k}:late")
            published.append(f"{k}:late")
            await broker.flush()

        return flush_twice, published
    await broker.publish_now(stream, f"{k}:a")
    await broker.publish_now(stream, f"{k}:b")
    if scenario == "consume":
        consumer = broker.consumer_many(stream)

        async def consume_twice() -> None:
            await consumer.consume(1, 0, ignore)
            await consumer.consume(1, 0, ignore)

        return consume_twice, published
    if scenario == "autoclaim":
        with pytest.raises(Boom):  # both stay pending on another consumer
            await broker.consumer_many(stream).consume(10, 0, boom)
        claimer = broker.consumer_many(stream)

        async def autoclaim() -> None:
            await claimer.autoclaim(10, 0, ignore)

        return autoclaim, published
    if scenario == "run":
        runner = broker.consumer_many(stream)

        async def stop_after_one(events: list[AsyncEvent]) -> None:
            runner.stop()

        async def run() -> None:
            await runner.run(1, 0.05, stop_after_one)

        return run, published
    if scenario == "process":  # reads, acks and renewals beside the loop; its leaving
        worker = broker.consumer_many(stream)
        handled: list[str] = []

        async def handle(event: AsyncEvent) -> None:
            handled.append(event.id)
            if len(handled) == 2:
                worker.stop()

        async def process() -> None:
            await worker.process(handle, concurrency=2, block=0.05)

        return process, published
    if scenario == "trim":  # the length walk (a script), then XTRIM
        await broker.publish_now(stream, f"{k}:c")

        async def trim() -> None:
            await broker.trim(stream, max_len=1, force=True)

        return trim, published
    single = broker.consumer_single(stream, lock_ttl=30)  # no refresh during the test
    await single.consume(1, 0, ignore)  # holds the lock
    if scenario == "cleanup":

        async def cleanup() -> None:
            await single.cleanup()

        return cleanup, published
    assert scenario == "close"

    async def close() -> None:
        await engine.aclose()

    return close, published


async def interrupt_at(k: int, scenario: str, where: Where, stops: Stops) -> str:
    """Run ``scenario`` on a new engine, interrupted at its ``k``-th point, and check the
    connections and the buffer afterwards; where it was interrupted ("" if it ended first)."""
    servers = where.servers
    servers.flushall()
    engine = AsyncEngine(where.config, network_backend=StoppingBackend(stops))
    try:
        broker = engine.new_context().event_broker()
        call, published = await prepare(scenario, engine, broker, where.streams, k)

        async def owned() -> None:
            stops.owner = AsyncHelpers.me()
            await call()

        stops.arm(k)
        interrupted = await AsyncHelpers.attempt(owned)
        stops.disarm()
        assert interrupted == bool(stops.fired), (stops.fired, interrupted)

        # Every connection the server sees is one the engine holds idle, for reuse.
        await AsyncHelpers.wait_for(lambda: not _FINISHING, 10)
        await AsyncHelpers.wait_for(lambda: servers.opened() == idle(engine), 10)

        if not engine.closed:  # the engine goes on working, and the buffer with it
            await broker.flush()
            await broker.publish_now(where.streams[0], "after")
            assert set(published) <= set(servers.bodies(where.streams)), stops.fired
    finally:
        stops.disarm()
        await engine.aclose()
    await AsyncHelpers.wait_for(lambda: servers.opened() == 0, 10)  # close leaves none
    return stops.fired


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_interrupted_at_every_await_no_connection_leaks_and_no_buffered_event_is_lost(
    where: Where, scenario: str
) -> None:
    stops = Stops()
    interruptions: list[str] = []
    for k in range(1, MAX_POINTS + 1):
        fired = await interrupt_at(k, scenario, where, stops)
        if not fired:
            break
        interruptions.append(fired)
    else:
        pytest.fail(f"{scenario} did not end within {MAX_POINTS} points")
    assert len(interruptions) >= 3, interruptions  # it did wait on Redis, more than once
