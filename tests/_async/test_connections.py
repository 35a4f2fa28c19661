"""Connections: unix sockets, passwords, ACL users, databases, TLS, against real servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
from tests.servers import RedisServer


async def roundtrip(uri: str, stream: str = "s") -> list[object]:
    """Publish one event and consume it back through ``uri``."""
    config = Config(redis_pools=[RedisPool(uri=uri, streams=[stream])])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now(stream, {"via": uri.split(":", 1)[0]})
        seen: list[AsyncEvent] = []
        await broker.consumer_many(stream).consume(10, 0, seen.extend)
        return [e.body for e in seen]


async def test_unix_socket(server_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server_factory(extra_args=["--unixsocket", str(sock), "--unixsocketperm", "700"])
    assert await roundtrip(f"unix://{sock}?db=2") == [{"via": "unix"}]


async def test_password_and_database(server_factory: Callable[..., RedisServer]) -> None:
    server = server_factory(extra_args=["--requirepass", "s3cret"])
    port = server.port
    assert await roundtrip(f"redis://:s3cret@127.0.0.1:{port}/3") == [{"via": "redis"}]
    for db, expected in ((3, 1), (0, 0)):  # the stream lives in database 3 only
        client = redis.Redis(host="127.0.0.1", port=port, password="s3cret", db=db)
        try:
            assert client.exists("s") == expected
        finally:
            client.close()
    with pytest.raises(BrokerAuthenticationError):
        await roundtrip(f"redis://:wrong@127.0.0.1:{port}/0")


async def test_acl_user_and_missing_permission(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    client = server.client()
    try:
        client.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all")
        client.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@read")
    finally:
        client.close()
    assert await roundtrip(f"redis://app:pw@127.0.0.1:{server.port}/0") == [{"via": "redis"}]
    with pytest.raises(PermissionDeniedError):
        await roundtrip(f"redis://reader:pw@127.0.0.1:{server.port}/0", stream="t")
