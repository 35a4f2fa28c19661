"""Security: TLS with and without a client certificate, the minimal ACL user the docs
state, and secrets that never show in a repr, a message, a log line or a traceback."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    BrokerAuthenticationError,
    BrokerConnectionError,
    Config,
    FluxabeeError,
    LocalServer,
    PermissionDeniedError,
    RedisPool,
    RetryPolicy,
)
from tests.servers import RedisServer
from tests.tls import TLSFiles

#: The ACL rule of docs/security.md for a service on stream ``orders`` (Redis 7): one line.
DOCS_ACL_PREFIX = "ACL SETUSER app "


def docs_acl_line() -> str:
    """The ``ACL SETUSER`` line of the Security page, exactly as written."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    (line,) = [text for text in page.splitlines() if text.startswith(DOCS_ACL_PREFIX)]
    return line


def paste_into_redis_cli(server: RedisServer, line: str) -> None:
    """Send ``line`` as a user pasting it into ``redis-cli`` would (the server's own
    ``redis-cli`` when it has one; else a raw client with redis-cli's argument splitting)."""
    found = [Path(server.binary.path).with_name(name) for name in ("redis-cli", "valkey-cli")]
    cli = next((str(p) for p in found if p.exists()), None) or shutil.which("redis-cli")
    if cli is None:
        admin = server.client()
        try:
            assert admin.execute_command(*shlex.split(line)) in (b"OK", "OK", True)
        finally:
            admin.close()
        return
    result = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(server.port)],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "OK", result


class Boom(Exception):
    pass


async def roundtrip(pool: RedisPool) -> list[Any]:
    config = Config(redis_pools=[pool])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("s", {"over": "tls"})
        seen: list[AsyncEvent] = []
        await broker.consumer_many("s").consume(10, 0, seen.extend)
        return [e.body for e in seen]


async def test_tls_with_a_verified_server_certificate(
    tls_server_factory: Callable[..., LocalServer], tls_certs: TLSFiles
) -> None:
    server = tls_server_factory(auth_clients="no")
    pool = RedisPool(
        uri=f"rediss://127.0.0.1:{server.port}/0", ssl_ca_certs=str(tls_certs.ca), streams=["s"]
    )
    assert await roundtrip(pool) == [{"over": "tls"}]
    unverified = RedisPool(uri=f"rediss://127.0.0.1:{server.port}/0", streams=["s"])
    with pytest.raises(BrokerConnectionError, match=r"127\.0\.0\.1"):  # an unknown CA
        await roundtrip(unverified)


async def test_tls_with_a_client_certificate_from_yaml(
    tls_server_factory: Callable[..., LocalServer], tls_certs: TLSFiles
) -> None:
    server = tls_server_factory(auth_clients="yes")
    config = Config.from_yaml(
        f"default:\n"
        f"  redis: rediss://127.0.0.1:{server.port}/0\n"
        f"  ssl_ca_certs: {tls_certs.ca}\n"
        f"  ssl_certfile: {tls_certs.client_cert}\n"
        f"  ssl_keyfile: {tls_certs.client_key}\n"
        f"  streams: [s]\n"
    )
    assert await roundtrip(config.redis_pools[0]) == [{"over": "tls"}]
    without = RedisPool(
        uri=f"rediss://127.0.0.1:{server.port}/0", ssl_ca_certs=str(tls_certs.ca), streams=["s"]
    )
    with pytest.raises(BrokerConnectionError):  # the server wants a client certificate
        await roundtrip(without)


async def test_the_minimal_acl_user_runs_the_whole_cycle(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    paste_into_redis_cli(server, docs_acl_line())
    pool = RedisPool(uri=f"redis://app:app-secret@127.0.0.1:{server.port}/0", streams=["orders"])
    async with AsyncEngine(Config(redis_pools=[pool])) as engine:
        broker = engine.new_context().event_broker()
        for i in range(4):
            broker.publish("orders", "bad" if i == 3 else i)
        await broker.flush()
        crashed = broker.consumer_many("orders")

        async def fail(events: list[AsyncEvent]) -> None:
            raise Boom

        with pytest.raises(Boom):
            await crashed.consume(2, 0, fail)
        worker = broker.consumer_many("orders", retry_policy=RetryPolicy(max_deliveries=2))
        handled: list[Any] = []

        async def handler(events: list[AsyncEvent]) -> None:
            if any(e.body == "bad" for e in events):
                raise Boom
            handled.extend(e.body for e in events)

        assert await worker.autoclaim(10, 0, handler) == 2  # the crashed one's two
        assert await worker.consume(1, 0, handler) == 1
        for _ in range(2):
            with pytest.raises(Boom):
                await worker.consume(1, 0, handler)
        assert await worker.consume(1, 0, handler) == 0  # past max_deliveries: dead-lettered
        assert sorted(handled) == [0, 1, 2]
        (letter,) = await broker.dead_letters("orders")
        assert letter.event.body == "bad"
        stats = await broker.stream_statistics("orders")
        assert stats.dead_letters == 1 and stats.group is not None
        assert await broker.replay_dead_letters("orders") == 1
        single = broker.consumer_single("orders", lock_ttl=5)
        assert await single.consume(10, 0, lambda events: None) == 1
        await single.aclose()
        assert crashed.name in await broker.prune_consumers("orders", idle=0)
        assert await worker.cleanup()
    with pytest.raises(PermissionDeniedError, match="XADD"):  # another stream's key
        await _other_stream(server.port)


async def _other_stream(port: int) -> None:
    pool = RedisPool(uri=f"redis://app:app-secret@127.0.0.1:{port}/0", streams=["payments"])
    async with AsyncEngine(Config(redis_pools=[pool])) as engine:
        await engine.new_context().event_broker().publish_now("payments", "x")


#: Passwords holding each character that ends a URI part (the masking once stopped there).
SECRETS = [f"Sup3r{ch}S3cr3t" for ch in "#/?@:%& "]


@pytest.mark.parametrize("secret", SECRETS, ids=repr)
async def test_no_secret_ever_shows_in_a_repr_a_message_a_log_line_or_a_traceback(
    server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    server = server_factory(extra_args=["--requirepass", secret])
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    pw = quote(secret, safe="")  # in a URI that connects; raw below, where parsing fails
    pools = [
        RedisPool(code="ok", uri=f"redis://:{pw}@127.0.0.1:{server.port}/0", streams=["s"]),
        RedisPool(code="bad", uri=f"redis://:{pw}x@127.0.0.1:{server.port}/0", streams=["b"]),
        RedisPool(code="gone", uri=f"redis://u:{pw}@127.0.0.1:1/0", streams=["g"]),
        RedisPool(code="seeds", uri=[f"redis://:{pw}@127.0.0.1:1"], cluster=True, streams=["c"]),
        RedisPool(
            code="sentinel",
            uri=f"redis://:{pw}@m/0",
            sentinels=["127.0.0.1:1"],
            master_name="mymaster",
            sentinel_password=secret,
            streams=["t"],
        ),
        RedisPool(code="tls", uri=f"rediss://127.0.0.1:1/0?ssl_password={pw}", streams=["q"]),
    ]
    config = Config(redis_pools=pools)
    seen += [repr(config), str(config), *map(repr, pools)]
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        assert await broker.publish_now("s", "x")
        for stream in ("b", "g", "c", "t", "q"):
            with pytest.raises(FluxabeeError) as info:
                await broker.publish_now(stream, "x")
            seen += [str(info.value), repr(info.value)]
            seen += traceback.format_exception(info.value)
            consumer = broker.consumer_many(stream)
            seen.append(repr(consumer))
            with pytest.raises(FluxabeeError) as info:
                await consumer.consume(1, 0, lambda events: None)
            seen += traceback.format_exception(info.value)
        with pytest.raises(BrokerAuthenticationError):
            await broker.publish_now("b", "x")
    for bad in ({"default": {"redis": f"redis://:{secret}@127.0.0.1:99999"}},
                {"default": {"redis": f"redis://:{secret}@127.0.0.1/x/y"}},
                {"default": {"redis": f"redis://u:{secret}@127.0.0.1:6379/0/x"}},
                {"default": {"redis": f"rediss://h:1/0?ssl_password={secret}&db=x"}}):  # fmt: skip
        with pytest.raises(FluxabeeError) as info:
            Config.from_dict(bad)
        seen += [str(info.value), *traceback.format_exception(info.value)]
    seen += [r.getMessage() for r in caplog.records]
    seen += [caplog.text]
    leaks = [text for text in seen if "Sup3r" in text or "S3cr3t" in text]
    assert not leaks, leaks[0]
    assert any("127.0.0.1:1" in text for text in seen)  # the address, not the password


def test_the_security_page_states_the_acl_rule_as_one_line() -> None:
    rules = docs_acl_line().split()[3:]
    assert rules[:2] == ["on", ">app-secret"] and "+xadd" in rules and "+time" in rules
