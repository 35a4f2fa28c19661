"""Faults: Redis restarts, vanished groups, partial flushes, AOF, slow handlers, wrong types.

Every test drives real ``redis-server`` processes. Where something must happen "while the
consumer runs" without asyncio-only tools, either the handler does it (handlers run
synchronously inside ``run``) or a :class:`Waker` thread waits for an observable condition
(polling with a deadline, never a bare sleep) and then acts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis

import fluxabee._runloop as runloop_module
from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    EventTooLargeError,
    PartialFlushError,
    RedisPool,
    RedisReplyError,
    WrongTypeError,
)
from tests.servers import RedisServer

GROUP = "consumer_group"


class Boom(Exception):
    pass


class Waker:
    """A helper thread running ``steps``: each waits until its condition, then acts.

    Each wait is bounded by ``timeout`` and polls (a short sleep between checks: no
    sleep-and-hope). ``join()`` re-raises whatever went wrong in the thread, including a
    missed deadline; ``cancel()`` ends it early (when the test already failed).
    ``on_error`` runs in the thread when a step fails (say ``consumer.stop``), so the code
    under test ends and the test fails, instead of hanging until pytest-timeout.
    """

    def __init__(
        self,
        *steps: tuple[str, Callable[[], bool], Callable[[], object]],
        timeout: float = 20.0,
        on_error: Callable[[], object] = lambda: None,
    ) -> None:
        self._steps = steps
        self._timeout = timeout
        self._on_error = on_error
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._main, name="waker", daemon=True)

    def _main(self) -> None:
        try:
            for what, condition, action in self._steps:
                deadline = time.monotonic() + self._timeout
                while not condition():
                    if time.monotonic() > deadline:
                        raise AssertionError(f"gave up after {self._timeout} s waiting for {what}")
                    if self._cancelled.wait(0.005):
                        return
                action()
        except BaseException as exc:
            self._error = exc
            self._on_error()  # e.g. stop the run() under test, so it fails instead of hanging

    def start(self) -> Waker:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled.set()
        self._thread.join(self._timeout)

    def join(self) -> None:
        self._thread.join(self._timeout * (len(self._steps) + 1))
        assert not self._thread.is_alive(), "the waker thread is stuck"
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Waker:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.join()
        else:
            self.cancel()  # the test failed already: do not mask its error


def one_stream_config(server: RedisServer, *streams: str) -> Config:
    return Config(redis_pools=[RedisPool(uri=server.url, streams=list(streams or ["s"]))])


def fluxabee_messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "fluxabee" and needle in r.getMessage()
    ]


def xgroup_creates(client: redis.Redis) -> int:
    """XGROUP CREATE calls so far. Redis 6.2 has no per-subcommand stats: there every
    XGROUP call counts (see :func:`counts_every_xgroup`)."""
    stats: dict[str, Any] = client.info("commandstats")
    if counts_every_xgroup(client):
        return int(stats.get("cmdstat_xgroup", {}).get("calls", 0))
    return int(stats.get("cmdstat_xgroup|create", {}).get("calls", 0))


def counts_every_xgroup(client: redis.Redis) -> bool:
    """Whether the server counts XGROUP's subcommands together (Redis 6.2 does: its
    commandstats has no ``cmdstat_xgroup|create``, and an XGROUP DESTROY counts too)."""
    version = str(client.info("server")["redis_version"])  # Valkey says 7.2.4 here
    return int(version.split(".", maxsplit=1)[0]) < 7


def blocked_clients(client: redis.Redis) -> int:
    return int(client.info("clients")["blocked_clients"])


# -- 1. run survives Redis restarts ------------------------------------------------------


async def test_given_run_when_redis_restarts_twice_then_it_reconnects_logs_once_per_outage_and_loses_nothing(  # noqa: E501
    server_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # appendonly: the stream and the group's pending list survive the SIGKILL, so what a
    # handler saw but could not ack (the server died under it) must come back, not vanish.
    server = server_factory(appendonly=True)
    config = one_stream_config(server)
    caplog.set_level(logging.INFO, logger="fluxabee")

    # Count the failed attempts of run(), to prove the outages spanned several of them.
    attempts: list[int] = []
    real_delay = runloop_module.reconnect_delay

    def counting_delay(attempt: int, rand: Callable[[], float]) -> float:
        attempts.append(attempt)
        return real_delay(attempt, rand)

    monkeypatch.setattr(runloop_module, "reconnect_delay", counting_delay)

    wakers: list[Waker] = []

    def outage() -> None:
        """Kill Redis now; a waker restarts it once run() failed three more times."""
        failed_before = len(attempts)
        server.kill()
        wakers.append(
            Waker(
                (
                    "three failed reconnect attempts",
                    lambda: len(attempts) >= failed_before + 3,
                    server.start,
                )
            ).start()
        )

    seen: list[tuple[str, int]] = []
    calls = 0
    expected = {"a1", "a2", "a3", "b1", "b2", "b3"}
    async with AsyncEngine(config) as engine, AsyncEngine(config) as publisher_engine:
        publisher = publisher_engine.new_context().event_broker()
        for body in ("a1", "a2", "a3"):
            publisher.publish("s", body)
        await publisher.flush()
        consumer = engine.new_context().event_broker().consumer_many("s")

        async def handler(events: list[AsyncEvent]) -> None:
            nonlocal calls
            calls += 1
            seen.extend((e.body, e.delivery_count) for e in events)
            if calls == 1:
                outage()  # the ack of this batch fails: it stays pending
            elif calls == 2:  # after the first restart: publish more from elsewhere
                for body in ("b1", "b2", "b3"):
                    await publisher.publish_now("s", body)
            elif calls == 3:
                outage()
            elif {body for body, _ in seen} >= expected or calls > 10:
                consumer.stop()

        try:
            total = await consumer.run(10, 1.0, handler)
        except BaseException:
            for waker in wakers:
                waker.cancel()
            raise

    for waker in wakers:
        waker.join()
    # At-least-once: a batch whose ack died with the server is handed over again.
    assert seen == [
        ("a1", 1), ("a2", 1), ("a3", 1),
        ("a1", 2), ("a2", 2), ("a3", 2),
        ("b1", 1), ("b2", 1), ("b3", 1),
        ("b1", 2), ("b2", 2), ("b3", 2),
    ]  # fmt: skip
    assert total == 6  # hand-overs that were acked
    client = server.client()
    try:
        assert client.xlen("s") == 0
        assert client.xpending("s", GROUP)["pending"] == 0
    finally:
        client.close()

    # Two outages of at least three failed attempts each; the counter restarts per outage.
    assert attempts.count(1) == 2
    assert len(attempts) >= 6
    lost = fluxabee_messages(caplog, "lost Redis")
    reconnected = fluxabee_messages(caplog, "reconnected after")
    assert len(lost) == 2, lost
    assert len(reconnected) == 2, reconnected
    assert all(consumer.name in message for message in lost + reconnected)


# -- 2. a vanished stream or group is recreated --------------------------------------------


@pytest.mark.parametrize("when", ["between reads", "while blocked"])
@pytest.mark.parametrize("vanish", ["FLUSHALL", "DEL", "XGROUP DESTROY"])
async def test_given_run_when_its_stream_or_group_vanishes_then_the_group_is_recreated_once_and_consumption_resumes(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis, vanish: str, when: str
) -> None:
    await broker.publish_now("test-stream", "before")
    consumer = broker.consumer_many("test-stream")
    handled: list[str] = []
    creates_before: list[int] = []

    def make_it_vanish() -> None:
        creates_before.append(xgroup_creates(rclient))
        if vanish == "FLUSHALL":
            rclient.flushall()
        elif vanish == "DEL":
            rclient.delete("test-stream")
        else:
            rclient.xgroup_destroy("test-stream", GROUP)
            if counts_every_xgroup(rclient):  # Redis 6.2 counted our DESTROY
                creates_before[0] = xgroup_creates(rclient)

    async def handler(events: list[AsyncEvent]) -> None:
        handled.extend(e.body for e in events)
        if when == "between reads" and handled == ["before"]:
            make_it_vanish()
        if "after" in handled:
            consumer.stop()

    steps = [
        (
            "the consumer blocked in XREADGROUP after its first event",
            lambda: handled == ["before"] and blocked_clients(rclient) == 1,
            make_it_vanish if when == "while blocked" else (lambda: None),
        ),
        (
            "the group recreated and the consumer blocked again (not looping)",
            lambda: xgroup_creates(rclient) > creates_before[0] and blocked_clients(rclient) == 1,
            lambda: rclient.xadd("test-stream", {"s": msgpack.packb("after")}),
        ),
    ]
    with Waker(*steps, on_error=consumer.stop):
        try:
            total = await consumer.run(10, 1.0, handler)
        except RedisReplyError as exc:
            pytest.fail(
                f"run() crashed when the stream vanished ({vanish}, {when}): {exc!r}; "
                "it should recreate the group and go on (see the report: Redis >= 7 answers "
                "a blocked XREADGROUP with UNBLOCKED, not NOGROUP, when its key is deleted)"
            )

    assert handled == ["before", "after"]
    assert total == 2
    # Recreated exactly once: no hot loop of XGROUP CREATE.
    assert xgroup_creates(rclient) - creates_before[0] == 1
    assert [g["name"] for g in rclient.xinfo_groups("test-stream")] == [GROUP.encode()]
    assert rclient.xlen("test-stream") == 0


# -- 3. flush after an outage sends exactly what Redis did not confirm ---------------------


async def test_given_failed_flushes_during_an_outage_when_redis_is_back_then_flush_sends_each_unconfirmed_event_once(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory()
    async with AsyncEngine(one_stream_config(server)) as engine:
        broker = engine.new_context().event_broker()
        first = await broker.publish_now("s", "landed-before")
        server.kill()
        broker.publish("s", 0)
        broker.publish("s", 1)
        with pytest.raises(PartialFlushError) as info:
            await broker.flush()
        assert info.value.ids == [None, None]
        broker.publish("s", 2)  # more during the outage: appended behind the unconfirmed
        with pytest.raises(PartialFlushError) as info:
            await broker.flush()
        assert info.value.ids == [None, None, None]
        assert broker.buffered == 3

        server.start()
        ids = await broker.flush()
        assert broker.buffered == 0
        assert await broker.flush() == []

    client = server.client()
    try:
        entries = client.xrange("s")
    finally:
        client.close()
    # No AOF: the restart emptied Redis, so exactly the three unconfirmed events are there.
    assert [e[0].decode() for e in entries] == ids
    assert [msgpack.unpackb(e[1][b"s"]) for e in entries] == [0, 1, 2]
    assert first not in ids


async def test_given_an_event_over_the_servers_bulk_limit_when_flushing_then_it_is_refused_by_name_and_the_others_land(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    # One event over proto-max-bulk-len used to make Redis drop the connection, and every
    # later flush failed on it again while new events piled up behind (a wedged buffer).
    server = server_factory(extra_args=["--proto-max-bulk-len", "1mb"])
    big = b"x" * (2 * 1024 * 1024)
    admin = server.client()
    try:
        async with AsyncEngine(one_stream_config(server)) as engine:
            broker = engine.new_context().event_broker()
            broker.publish("s", 0)
            broker.publish("s", big)
            broker.publish("s", 2)
            with pytest.raises(EventTooLargeError) as info:
                await broker.flush()
            error = info.value
            assert (error.stream, error.limit, error.rejected) == ("s", 1024 * 1024, [1])
            assert error.size > len(big)
            assert "'s'" in str(error) and str(error.size) in str(error)
            assert str(1024 * 1024) in str(error)
            assert error.ids[0] is not None and error.ids[1] is None and error.ids[2] is not None
            assert broker.buffered == 0  # never wedged: the big one left the buffer, loudly
            assert [e[0].decode() for e in admin.xrange("s")] == [error.ids[0], error.ids[2]]

            with pytest.raises(EventTooLargeError, match="proto-max-bulk-len"):
                await broker.publish_now("s", big)
            assert admin.xlen("s") == 2
            broker.publish("s", 3)
            assert len(await broker.flush()) == 1  # later flushes are not held up
    finally:
        admin.close()


async def test_given_redis_refuses_a_too_long_event_mid_pipeline_when_flushing_then_it_is_refused_and_only_the_tail_stays_buffered(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    # The limit fluxabee learned is stale (lowered with CONFIG SET): Redis runs the XADDs
    # before the long one, answers that one with a protocol error and closes the connection.
    # Writes are paused until Redis has read the whole pipeline, so it closes with nothing
    # unread (FIN, not RST: no reply is lost on the way and the client's write never
    # fails part-way); without the pause about 1 in 8 flushes lost the confirmations of
    # events that did land (the write failed first: ids all None, yet two were stored).
    server = server_factory()
    big = b"x" * (1024 * 1024 + 100)
    admin = server.client()
    try:
        async with AsyncEngine(one_stream_config(server)) as engine:
            broker = engine.new_context().event_broker()
            broker.publish("s", big)  # learns the 512 MB default
            await broker.flush()
            admin.delete("s")
            admin.config_set("proto-max-bulk-len", "1mb")
            broker.publish("s", 0)
            broker.publish("s", 1)
            broker.publish("s", big)
            broker.publish("s", 3)
            admin.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
            with (
                Waker(
                    (
                        "Redis holding the whole pipeline in a query buffer",
                        lambda: max(int(c["qbuf"]) for c in admin.client_list()) >= len(big),
                        lambda: admin.execute_command("CLIENT", "UNPAUSE"),
                    )
                ),
                pytest.raises(EventTooLargeError) as info,
            ):
                await broker.flush()
            landed = info.value.ids
            assert landed[0] is not None
            assert landed[1] is not None
            assert landed[2:] == [None, None]
            assert info.value.rejected == [2]
            assert "refused" in str(info.value) and "1 other events stay buffered" in str(
                info.value
            )
            assert broker.buffered == 1  # the event behind the long one, never sent
            assert [e[0].decode() for e in admin.xrange("s")] == landed[:2]
            rest = await broker.flush()
        entries = admin.xrange("s")
    finally:
        admin.close()

    assert len(rest) == 1
    assert [e[0].decode() for e in entries] == [*landed[:2], *rest]


async def test_given_a_flush_over_two_pools_when_one_is_down_then_the_other_lands_and_only_the_rest_is_resent(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    up, down = server_factory(), server_factory()
    config = Config(
        redis_pools=[
            RedisPool(code="up", uri=up.url, streams=["s1"]),
            RedisPool(code="down", uri=down.url, streams=["s2"]),
        ]
    )
    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        await broker.publish_now("s2", "warm-up")  # an open pooled connection to break
        down.kill()
        for i in range(3):
            broker.publish("s1", f"up-{i}")
            broker.publish("s2", f"down-{i}")
        with pytest.raises(PartialFlushError) as info:
            await broker.flush()
        ids = info.value.ids
        assert all(isinstance(i, str) for i in ids[0::2])
        assert ids[1::2] == [None, None, None]
        assert broker.buffered == 3

        down.start()
        resent = await broker.flush()

    up_client, down_client = up.client(), down.client()
    try:
        up_entries, down_entries = up_client.xrange("s1"), down_client.xrange("s2")
    finally:
        up_client.close()
        down_client.close()
    assert [e[0].decode() for e in up_entries] == ids[0::2]
    assert [msgpack.unpackb(e[1][b"s"]) for e in up_entries] == ["up-0", "up-1", "up-2"]
    assert [e[0].decode() for e in down_entries] == resent
    assert [msgpack.unpackb(e[1][b"s"]) for e in down_entries] == ["down-0", "down-1", "down-2"]


# -- 4. AOF durability -----------------------------------------------------------------------


async def test_given_appendonly_when_redis_is_sigkilled_then_every_confirmed_event_is_handled_and_acks_stick(  # noqa: E501
    server_factory: Callable[..., RedisServer],
) -> None:
    server = server_factory(appendonly=True)
    async with AsyncEngine(one_stream_config(server)) as engine:
        broker = engine.new_context().event_broker()
        for i in range(100):
            broker.publish("s", i)
        ids = await broker.flush()
        assert len(ids) == 100
        consumer = broker.consumer_many("s")

        acked: list[str] = []

        async def record(events: list[AsyncEvent]) -> None:
            acked.extend(e.id for e in events)

        async def crash(events: list[AsyncEvent]) -> None:
            raise Boom("the process dies with these in hand")

        assert await consumer.consume(30, 0, record) == 30
        with pytest.raises(Boom):
            await consumer.consume(10, 0, crash)

        server.kill()  # SIGKILL: no shutdown, no rewrite; appendfsync always
        server.start()

        handled: list[tuple[str, int]] = []

        async def handle(events: list[AsyncEvent]) -> None:
            handled.extend((e.id, e.delivery_count) for e in events)

        # The pooled connection died with the old process: it is detected (or the read,
        # which is safe to repeat, is retried once on a new connection), so no error.
        while await consumer.consume(25, 0, handle):
            pass

    assert acked == ids[:30]
    # The ten pending ones first (delivered twice now), then the 60 never delivered.
    assert handled == [(i, 2) for i in ids[30:40]] + [(i, 1) for i in ids[40:]]
    client = server.client()
    try:
        assert client.xlen("s") == 0
        assert client.xpending("s", GROUP)["pending"] == 0
    finally:
        client.close()


# -- 5. a handler slower than min_idle ------------------------------------------------------


async def test_given_a_handler_slower_than_min_idle_when_another_consumer_claims_its_event_then_both_handle_it_and_it_is_acked_and_deleted_once(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    event_id = await broker.publish_now("test-stream", "slow")
    a = broker.consumer_many("test-stream")
    b = broker.consumer_many("test-stream")
    by_a: list[tuple[str, int]] = []
    by_b: list[tuple[str, int]] = []
    claimed_in_a: list[int] = []
    state_after_b: list[tuple[int, int]] = []

    async def handler_b(events: list[AsyncEvent]) -> None:
        by_b.extend((e.id, e.delivery_count) for e in events)

    async def slow_handler_a(events: list[AsyncEvent]) -> None:
        by_a.extend((e.id, e.delivery_count) for e in events)
        # "Another process" sees the event pending longer than min_idle (0 here) and claims it.
        claimed_in_a.append(await b.autoclaim(10, 0, handler_b))
        state_after_b.append(
            (rclient.xlen("test-stream"), rclient.xpending("test-stream", GROUP)["pending"])
        )

    assert await a.consume(10, 0, slow_handler_a) == 1

    # Observed behaviour: a duplicate. B handled it (second delivery) and acked + deleted
    # it; A's late ack (XACK by group, not by owner) is a harmless no-op, not an error.
    assert by_a == [(event_id, 1)]
    assert by_b == [(event_id, 2)]
    assert claimed_in_a == [1]
    assert state_after_b == [(0, 0)]  # already gone before A returned
    assert rclient.xlen("test-stream") == 0
    assert rclient.xpending("test-stream", GROUP)["pending"] == 0
    assert rclient.exists("{test-stream}:dead") == 0
    assert await a.consume(10, 0, handler_b) == 0  # nothing comes back to A


# -- 6. a key of the wrong type ------------------------------------------------------------


async def test_given_a_string_where_the_stream_should_be_when_consuming_or_running_then_wrongtype_is_raised_and_the_key_kept(  # noqa: E501
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rclient.set("test-stream", "precious")
    consumer = broker.consumer_many("test-stream")
    calls: list[object] = []

    with pytest.raises(WrongTypeError):
        await consumer.consume(10, 0, calls.append)
    # run() retries connection failures only: a WRONGTYPE reply propagates at once (no
    # silent retry loop); the caller decides.
    started = time.monotonic()
    with pytest.raises(WrongTypeError):
        await consumer.run(10, 1.0, calls.append)
    assert time.monotonic() - started < 5
    assert calls == []
    assert rclient.get("test-stream") == b"precious"


async def test_given_run_when_the_stream_becomes_a_string_then_run_raises_wrongtype(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await broker.publish_now("test-stream", "a")
    consumer = broker.consumer_many("test-stream")
    seen: list[str] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend(e.body for e in events)
        rclient.delete("test-stream")
        rclient.set("test-stream", "precious")

    with pytest.raises(WrongTypeError):
        await consumer.run(10, 1.0, handler)
    assert seen == ["a"]
    assert rclient.get("test-stream") == b"precious"
