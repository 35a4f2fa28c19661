"""Publishing: publish buffers, flush sends in one round trip, publish_now sends at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEventBroker,
    BrokerConnectionError,
    Config,
    PartialFlushError,
    RedisPool,
    SerializationError,
    UnknownStreamError,
    WrongTypeError,
)
from tests.servers import RedisServer, free_port

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "data" / "fluxaorm_entries.json"


@dataclass
class Person:
    Name: str
    Age: int = 0


async def test_flush_sends_buffered_events_in_publish_order(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    broker.publish("test-stream", "some-text")
    broker.publish("test-stream", {"a": 1}, source="unit")
    broker.publish("test-group", [1, 2, 3])
    assert broker.buffered == 3

    ids = await broker.flush()

    assert len(ids) == 3
    assert broker.buffered == 0
    entries = rclient.xrange("test-stream")
    assert [e[0].decode() for e in entries] == ids[:2]
    assert msgpack.unpackb(entries[0][1][b"s"]) == "some-text"
    assert msgpack.unpackb(entries[1][1][b"s"]) == {"a": 1}
    assert entries[1][1][b"source"] == b"unit"
    assert rclient.xrange("test-group")[0][0].decode() == ids[2]
    assert await broker.flush() == []


async def test_dataclass_body_is_a_msgpack_map_like_go(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", Person(Name="a1", Age=3))
    raw = rclient.xrange("test-stream")[0][1][b"s"]
    assert msgpack.unpackb(raw) == {"Name": "a1", "Age": 3}


async def test_none_body_writes_only_meta(broker: AsyncEventBroker, rclient: redis.Redis) -> None:
    await broker.publish_now("test-stream", None, kind="ping")
    assert rclient.xrange("test-stream")[0][1] == {b"kind": b"ping"}


async def test_a_none_body_reads_as_none_in_both_of_gos_shapes(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", None, kind="python")  # Python's None: no `s`
    rclient.xadd("test-stream", {"kind": "go-nil"})  # Go's Publish(stream, nil, meta)
    rclient.xadd("test-stream", {"s": b"\xc0"})  # Go's Publish(stream, (*T)(nil))
    seen: list[Any] = []
    await broker.consumer_many("test-stream").consume(10, 0, seen.extend)
    assert [(e.body, e.raw_body) for e in seen] == [(None, None), (None, None), (None, b"\xc0")]


async def test_a_go_complex128_field_leaves_the_body_readable(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    go = bytes.fromhex("82a44e616d65a163a143d8803ff8000000000000c000000000000000")
    rclient.xadd("test-stream", {"s": go})  # struct{Name string; C complex128}{"c", 1.5-2i}
    seen: list[Any] = []
    await broker.consumer_many("test-stream").consume(10, 0, seen.extend)
    assert seen[0].body["Name"] == "c"
    assert seen[0].body["C"].complex == 1.5 - 2j


async def test_bad_input_raises_at_publish_and_buffers_nothing(broker: AsyncEventBroker) -> None:
    broker.publish("test-stream", "kept")
    with pytest.raises(UnknownStreamError, match="nope"):
        broker.publish("nope", "x")
    with pytest.raises(SerializationError):
        broker.publish("test-stream", object())
    with pytest.raises(SerializationError, match="cannot be a dict key"):
        broker.publish("test-stream", {(1, 2): "x"})  # it would never read back
    with pytest.raises(SerializationError):
        broker.publish("test-stream", None)
    with pytest.raises(SerializationError):
        broker.publish("test-stream", "x", count=3)  # type: ignore[arg-type]
    with pytest.raises(UnknownStreamError):
        await broker.publish_now("nope", "x")
    assert broker.buffered == 1


async def test_publish_now_bypasses_the_buffer(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    broker.publish("test-stream", "buffered")
    new_id = await broker.publish_now("test-stream", "now")
    assert rclient.xrange("test-stream")[0][0].decode() == new_id
    assert broker.buffered == 1


async def test_each_context_has_its_own_buffer(engine: AsyncEngine) -> None:
    ctx1, ctx2 = engine.new_context(), engine.new_context()
    assert ctx1.event_broker() is ctx1.event_broker()
    ctx1.event_broker().publish("test-stream", "x")
    assert ctx2.event_broker().buffered == 0
    assert ctx2.event_broker() is not ctx1.event_broker()


async def test_flush_spans_pools_and_keeps_global_order(
    redis_url: str, server_factory: Callable[..., RedisServer]
) -> None:
    other = server_factory()
    config = Config(
        redis_pools=[
            RedisPool(code="default", uri=redis_url, streams=["s1"]),
            RedisPool(code="second", uri=other.url, streams=["s2"]),
        ]
    )
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(3):
            broker.publish("s1", i)
            broker.publish("s2", i)
        ids = await broker.flush()
    client = other.client()
    try:
        assert [e[0].decode() for e in client.xrange("s2")] == ids[1::2]
    finally:
        client.close()


async def test_flush_during_outage_keeps_every_event_then_sends_exactly_them(
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    config = Config(redis_pools=[RedisPool(uri=server.url, streams=["s"])])
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("s", "warm-up")  # an open pooled connection to break
        server.kill()
        for i in range(5):
            broker.publish("s", i)
        with pytest.raises(BrokerConnectionError) as info:
            await broker.flush()
        assert isinstance(info.value, PartialFlushError)
        assert info.value.ids == [None] * 5
        assert broker.buffered == 5

        server.start()
        ids = await broker.flush()

    assert len(ids) == 5
    client = server.client()
    try:
        assert [msgpack.unpackb(e[1][b"s"]) for e in client.xrange("s")] == [0, 1, 2, 3, 4]
    finally:
        client.close()


async def test_flush_to_a_key_of_another_type_keeps_the_event(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.set("test-stream", "not a stream")
    broker.publish("test-stream", "x")
    broker.publish("test-group", "y")
    with pytest.raises(WrongTypeError):
        await broker.flush()
    assert broker.buffered == 1
    assert rclient.get("test-stream") == b"not a stream"
    assert rclient.xlen("test-group") == 1
    assert broker.discard() == 1


async def test_unreachable_redis_is_a_broker_connection_error(
    make_config: Callable[..., Config],
) -> None:
    config = make_config("s", url=f"redis://127.0.0.1:{free_port()}/0")
    engine = AsyncEngine(config)
    try:
        with pytest.raises(BrokerConnectionError):
            await engine.new_context().event_broker().publish_now("s", "x")
    finally:
        await engine.aclose()


async def test_a_meta_mapping_writes_the_fields_fluxaorm_wrote_for_meta_named_stream_and_body(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    golden = json.loads(GOLDEN.read_text())
    (go,) = [e for e in golden["entries"] if e["case"] == "meta_names"]
    go_fields = [(k.encode(), bytes.fromhex(v)) for k, v in go["fields_hex"]]
    broker.publish("test-stream", "v", meta={"kind": "meta_names", "stream": "x", "body": "y"})
    await broker.flush()
    ((_, fields),) = rclient.xrange("test-stream")
    assert list(fields.items()) == go_fields  # the same fields, in the same order
