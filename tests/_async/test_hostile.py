"""Hostile input: entries other clients wrote, undecodable bodies, poison events in ``run``.

Entries are written with a plain redis-py client (as a Go service or a careless script
would), then read through fluxabee. A :class:`Waker` thread publishes the event that lets
``run`` stop only once an observable condition holds (polling with a deadline).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections.abc import Callable

import msgpack
import pytest
import redis

from fluxabee import AsyncEvent, AsyncEventBroker, DecodeError, RetryPolicy

GROUP = "consumer_group"
DEAD = "{test-stream}:dead"
POLICY = RetryPolicy(max_deliveries=2, backoff=0.01)


class Poison(Exception):
    pass


class Waker:
    """A helper thread: waits (polling, deadline-bounded) until ``condition()``, then acts.

    ``join()`` re-raises what went wrong in the thread; as a context manager it is joined
    on success and cancelled when the body already failed.
    """

    def __init__(
        self, what: str, condition: Callable[[], bool], action: Callable[[], object]
    ) -> None:
        self._what = what
        self._condition = condition
        self._action = action
        self._timeout = 20.0
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._main, name="waker", daemon=True)

    def _main(self) -> None:
        try:
            deadline = time.monotonic() + self._timeout
            while not self._condition():
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"gave up after {self._timeout} s waiting for {self._what}"
                    )
                if self._cancelled.wait(0.005):
                    return
            self._action()
        except BaseException as exc:
            self._error = exc

    def __enter__(self) -> Waker:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._cancelled.set()
            self._thread.join(self._timeout)
            return
        self._thread.join(self._timeout * 2)
        assert not self._thread.is_alive(), "the waker thread is stuck"
        if self._error is not None:
            raise self._error


async def consume_all(broker: AsyncEventBroker, stream: str = "test-stream") -> list[AsyncEvent]:
    """Every event now in ``stream``, handed over by one consume call (acked on return)."""
    seen: list[AsyncEvent] = []
    await broker.consumer_many(stream).consume(100, 0, seen.extend)
    return seen


# -- 7. entries written by other clients -----------------------------------------------------


async def test_given_an_entry_without_s_field_when_consumed_then_body_is_none_and_meta_kept(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    entry_id = rclient.xadd("test-stream", {"kind": "ping", "source": "go"}).decode()

    (event,) = await consume_all(broker)

    assert event.id == entry_id
    assert event.raw_body is None
    assert event.body is None
    assert event.decodable
    assert event.meta == {"kind": "ping", "source": "go"}
    assert event.acked
    assert rclient.xlen("test-stream") == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",  # a byte MessagePack never uses
        b"\x92\x01",  # an array of two with one element: truncated
        b"\x01\x02",  # two values where one is expected: extra data
        b"",  # nothing at all
        b"\xa2\xff\xfe",  # a str that is not UTF-8
    ],
    ids=["reserved-byte", "truncated", "extra-data", "empty", "str-not-utf8"],
)
async def test_given_an_invalid_msgpack_body_when_consumed_then_body_raises_decodeerror_with_the_raw_bytes(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis, raw: bytes
) -> None:
    rclient.xadd("test-stream", {"s": raw, "source": "go"})
    seen: list[AsyncEvent] = []
    errors: list[DecodeError] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend(events)
        for event in events:
            try:
                event.body  # noqa: B018 - touching it is the point
            except DecodeError as exc:
                errors.append(exc)

    assert await broker.consumer_many("test-stream").consume(10, 0, handler) == 1

    (event,) = seen
    (error,) = errors
    assert error.raw == raw
    assert event.raw_body == raw
    assert event.meta == {"source": "go"}
    assert not event.decodable
    with pytest.raises(DecodeError):
        event.body  # noqa: B018 - raises every time, not only the first
    assert event.acked  # the handler returned: delivered, acked, nothing crashed
    assert rclient.xlen("test-stream") == 0


async def test_given_non_utf8_meta_when_consumed_then_it_is_delivered_as_surrogate_escapes(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.xadd("test-stream", {b"s": msgpack.packb("x"), b"k\xff": b"v\xfe\x00", b"ok": b"1"})

    (event,) = await consume_all(broker)

    assert event.body == "x"
    assert event.meta == {"k\udcff": "v\udcfe\x00", "ok": "1"}
    assert event.tag("k\udcff") == "v\udcfe\x00"
    raw_meta = {
        k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
        for k, v in event.meta.items()
    }
    assert raw_meta == {b"k\xff": b"v\xfe\x00", b"ok": b"1"}
    assert event.acked


async def test_given_a_50_mb_body_when_consumed_then_it_is_delivered_and_decodes(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    size = 50 * 1024 * 1024
    # One buffer only: the MessagePack bin32 header, then the bytes (0..255 repeated).
    packed = b"\xc6" + struct.pack(">I", size) + bytes(range(256)) * (size // 256)
    expected = hashlib.sha256(memoryview(packed)[5:]).hexdigest()
    entry_id = rclient.xadd("test-stream", {"s": packed, "size": "50MB"}).decode()
    del packed
    sizes: list[int] = []
    digests: list[str] = []

    async def handler(events: list[AsyncEvent]) -> None:
        for event in events:  # keep nothing alive past the handler but the digest
            body = event.body
            assert isinstance(body, bytes)
            sizes.append(len(body))
            digests.append(hashlib.sha256(body).hexdigest())
            assert event.id == entry_id
            assert event.meta == {"size": "50MB"}

    assert await broker.consumer_many("test-stream").consume(1, 0, handler) == 1
    assert sizes == [size]
    assert digests == [expected]
    assert rclient.xlen("test-stream") == 0


# -- 8. a broken event ends in the dead letters ------------------------------------------------


async def test_given_a_broken_event_when_run_touches_its_body_then_it_is_dead_lettered_without_blocking_the_stream_and_can_be_replayed(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    raw = b"\xc1garbage"
    broken_id = rclient.xadd("test-stream", {"s": raw, "source": "go"}).decode()
    await broker.publish_now("test-stream", "healthy")  # right behind the broken one
    consumer = broker.consumer_many("test-stream", retry_policy=POLICY)
    handled: list[str] = []
    deliveries: list[int] = []

    async def handler(events: list[AsyncEvent]) -> None:
        deliveries.extend(e.delivery_count for e in events if e.id == broken_id)
        bodies = [e.body for e in events]  # raises DecodeError on the broken one
        handled.extend(bodies)
        if "after" in bodies:
            consumer.stop()

    with Waker(
        "the broken event in the dead letters",
        lambda: rclient.exists(DEAD) == 1,
        lambda: rclient.xadd("test-stream", {"s": msgpack.packb("after")}),
    ):
        total = await consumer.run(10, 1.0, handler)  # returns: the loop never crashed

    assert handled == ["healthy", "after"]
    assert total == 2
    # Batch of two (excused: the batch was split), then alone twice (poison isolation, then
    # after the backoff): two failures alone reach max_deliveries=2; read a fourth time, it
    # goes to the dead letters.
    assert deliveries == [1, 2, 3]
    assert rclient.xlen("test-stream") == 0
    assert rclient.xpending("test-stream", GROUP)["pending"] == 0

    (letter,) = await broker.dead_letters("test-stream")
    assert "DecodeError" in letter.error
    assert letter.deliveries == 3
    assert letter.event.id == broken_id
    assert letter.event.raw_body == raw
    assert letter.event.meta == {"source": "go"}

    assert await broker.replay_dead_letters("test-stream") == 1
    assert await broker.dead_letters("test-stream") == []
    assert rclient.exists(DEAD) == 0 or rclient.xlen(DEAD) == 0
    (entry,) = rclient.xrange("test-stream")
    assert entry[1] == {b"s": raw, b"source": b"go"}
    (replayed,) = await consume_all(broker)
    assert replayed.raw_body == raw
    assert replayed.delivery_count == 1


# -- 9. poison isolation inside run ------------------------------------------------------------


async def test_given_a_batch_of_five_with_one_poison_when_run_then_the_four_healthy_are_acked_and_only_the_poison_is_dead_lettered(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    for body in ("h0", "h1", "poison", "h3", "h4"):
        broker.publish("test-stream", body)
    ids = await broker.flush()
    consumer = broker.consumer_many("test-stream", retry_policy=POLICY)
    batches: list[list[str]] = []
    handled: list[str] = []

    async def handler(events: list[AsyncEvent]) -> None:
        bodies = [e.body for e in events]
        batches.append(bodies)
        if "poison" in bodies:
            raise Poison("a poison event in the batch")
        handled.extend(bodies)
        if "after" in bodies:
            consumer.stop()

    with Waker(
        "the poison event in the dead letters",
        lambda: rclient.exists(DEAD) == 1,
        lambda: rclient.xadd("test-stream", {"s": msgpack.packb("after")}),
    ):
        total = await consumer.run(5, 1.0, handler)

    assert batches[0] == ["h0", "h1", "poison", "h3", "h4"]
    assert handled == ["h0", "h1", "h3", "h4", "after"]
    assert total == 5
    assert rclient.xlen("test-stream") == 0
    assert rclient.xpending("test-stream", GROUP)["pending"] == 0

    (letter,) = await broker.dead_letters("test-stream")
    assert letter.event.id == ids[2]
    assert letter.event.body == "poison"
    assert letter.deliveries == 3  # the batch (excused), then twice alone
    assert "Poison: a poison event in the batch" in letter.error
