"""Fixtures: real redis-server processes on free loopback ports, a clean database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from fluxabee import Config, RedisPool
from tests.servers import RedisServer

#: Streams every test config declares.
STREAMS = ("test-stream", "test-group", "other-stream")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (tests flush it; fault tests use their own)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, flushed before the test."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = redis_server.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the test's database, for set-up and assertions."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_config(redis_url: str) -> Callable[..., Config]:
    """Build a one-pool config on the test server: ``make_config("s1", "s2")``."""

    def build(*streams: str, url: str | None = None) -> Config:
        return Config(
            redis_pools=[
                RedisPool(code="default", uri=url or redis_url, streams=list(streams or STREAMS))
            ]
        )

    return build


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """The default test config: streams ``test-stream``, ``test-group``, ``other-stream``."""
    return make_config()


@pytest.fixture
def server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (for fault tests); all are stopped at teardown."""
    servers: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        server = RedisServer(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.close()
