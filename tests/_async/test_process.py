"""``process``: a window of events in flight, in order per key, against a real server."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from typing import Any

import pytest
import redis

from fluxabee import (
    AsyncEngine,
    AsyncEvent,
    AsyncEventBroker,
    Config,
    InvalidArgumentError,
    Retry,
    RetryPolicy,
)
from fluxabee._backends import AsyncBackend
from tests.helpers import AsyncHelpers

FAST = RetryPolicy(max_deliveries=50, backoff=0.001, max_backoff=0.01)


class Boom(Exception):
    pass


async def publish(broker: AsyncEventBroker, stream: str, bodies: list[Any]) -> list[str]:
    for body in bodies:
        broker.publish(stream, body)
    return await broker.flush()


async def pause(seconds: float) -> None:
    """Wait ``seconds`` in a handler (awaited under asyncio, blocking in a thread)."""
    await AsyncBackend.new_flag().wait(seconds)


class Gauge:
    """How many handlers run at once, and the most ever."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_the_window_is_filled_and_never_exceeded_and_everything_is_acked(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", list(range(60)))
    consumer = broker.consumer_many("test-stream")
    gauge = Gauge()
    seen: list[int] = []

    async def handler(event: AsyncEvent) -> None:
        gauge.enter()
        try:
            await pause(0.02)
            seen.append(event.body)
        finally:
            gauge.leave()
        if len(seen) == 60:
            consumer.stop()

    assert await consumer.process(handler, concurrency=7, block=0.05) == 60
    assert sorted(seen) == list(range(60))
    assert gauge.most == 7  # filled, never exceeded
    assert rclient.xlen("test-stream") == 0
    assert rclient.xpending("test-stream", consumer.group)["pending"] == 0


def handler_threads() -> set[threading.Thread]:
    """The threads ``process`` runs handlers (and reads) in, alive now."""
    return {t for t in threading.enumerate() if t.name.startswith("fluxabee-")}


async def test_a_plain_def_handler_runs_concurrency_at_once_and_leaves_no_thread(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    # Under asyncio a plain def handler runs in threads of the process's own pool of
    # `concurrency` threads (not the loop's default executor, of min(32, cpus + 4)).
    await publish(broker, "test-stream", list(range(20)))
    consumer = broker.consumer_many("test-stream")
    before = handler_threads()
    barrier = threading.Barrier(20, timeout=10)  # passed only when 20 run at once
    lock = threading.Lock()
    passed: list[int] = []
    broken: list[int] = []

    def handler(event: AsyncEvent) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            with lock:
                broken.append(event.body)
        else:
            with lock:
                passed.append(event.body)
        with lock:
            if len(passed) + len(broken) == 20:
                consumer.stop()

    assert await consumer.process(handler, concurrency=20, block=0.05) == 20
    assert not broken and sorted(passed) == list(range(20))
    assert handler_threads() <= before  # none of its threads outlives process
    assert rclient.xlen("test-stream") == 0


async def test_order_per_key_holds_under_random_failures_and_retries(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    rng = random.Random(11)
    bodies = [{"n": n, "k": f"k{rng.randrange(6)}"} for n in range(150)]
    for body in bodies:
        broker.publish("test-stream", body, meta={"account": body["k"]})
    await broker.flush()
    consumer = broker.consumer_many("test-stream", retry_policy=FAST)
    running: set[str] = set()
    done: dict[str, list[int]] = {}
    finished = 0

    async def handler(event: AsyncEvent) -> None:
        nonlocal finished
        key = event.meta["account"]
        assert key not in running, "two events of one key ran at once"
        running.add(key)
        try:
            await pause(rng.random() * 0.005)
            if rng.random() < 0.3:
                raise Boom(event.body["n"])
        finally:
            running.discard(key)
        done.setdefault(key, []).append(event.body["n"])
        finished += 1
        if finished == 150:
            consumer.stop()

    assert await consumer.process(handler, concurrency=8, key="account", block=0.05) == 150
    for key, ns in done.items():
        assert ns == sorted(ns), key
    assert sum(len(ns) for ns in done.values()) == 150
    assert rclient.xlen("test-stream") == 0


async def test_retry_after_waits_that_long_is_logged_at_info_and_counts_deliveries(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(broker, "test-stream", ["again"])
    policy = RetryPolicy(max_deliveries=3, backoff=60.0, max_backoff=60.0)
    consumer = broker.consumer_many("test-stream", retry_policy=policy)
    times: list[float] = []

    async def handler(event: AsyncEvent) -> None:
        times.append(time.monotonic())
        if len(times) == 3:
            consumer.stop()
        raise Retry(after=0.2)  # replaces the 60 s backoff

    caplog.set_level(logging.INFO, logger="fluxabee")
    assert await consumer.process(handler, block=0.05) == 0
    assert len(times) == 3
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times))
    retries = [r for r in caplog.records if "asked to be retried" in r.getMessage()]
    assert retries and all(r.levelno == logging.INFO for r in retries)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the third delivery was the last allowed: it is a dead letter now, not retried forever
    await AsyncHelpers.wait_for(lambda: rclient.xlen("{test-stream}:dead") == 1)
    assert rclient.xlen("test-stream") == 0
    (letter,) = await broker.dead_letters("test-stream")
    assert letter.deliveries == 3 and letter.error == "Retry: retry after 0.2 s"


async def test_a_long_handler_keeps_its_lease_against_a_second_consumer(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", ["slow"])
    first = broker.consumer_single("test-stream")  # never claims: only its lease holds it
    second = broker.consumer_many("test-stream")
    handled: list[str] = []

    async def slow(event: AsyncEvent) -> None:
        handled.append("first")
        await pause(1.8)  # 3x min_idle
        first.stop()
        second.stop()

    async def other(event: AsyncEvent) -> None:
        handled.append("second")

    async def run_first() -> int:
        return await first.process(slow, min_idle=0.6, block=0.05)

    async def run_second() -> int:
        await AsyncHelpers.wait_for(lambda: handled == ["first"])
        return await second.process(other, min_idle=0.6, block=0.05)

    assert await AsyncHelpers.run_all(run_first, run_second) == [1, 0]
    assert handled == ["first"]
    assert rclient.xlen("test-stream") == 0


async def test_stop_hands_back_what_never_started_to_the_next_claim(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", [{"k": "a", "n": n} for n in range(5)])
    first = broker.consumer_many("test-stream")
    started: list[int] = []

    async def handler(event: AsyncEvent) -> None:
        started.append(event.body["n"])
        first.stop()  # the four queued behind key "a" never start

    key = "k"
    assert await first.process(handler, key=lambda e: e.body[key], min_idle=30.0, block=0.05) == 1
    assert started == [0]
    pending = rclient.xpending_range("test-stream", first.group, "-", "+", 10)
    assert len(pending) == 4
    assert all(p["time_since_delivered"] >= 30_000 for p in pending)
    second = broker.consumer_many("test-stream")
    taken: list[int] = []

    async def take(events: list[AsyncEvent]) -> None:
        taken.extend(e.body["n"] for e in events)

    assert await second.autoclaim(10, 30.0, take) == 4  # at once, not in 30 s
    assert taken == [1, 2, 3, 4]


async def test_consumer_single_keeps_the_stream_order_and_takes_one_at_a_time(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    await publish(broker, "test-stream", list(range(20)))
    consumer = broker.consumer_single("test-stream", retry_policy=FAST)
    with pytest.raises(InvalidArgumentError, match="concurrency=1"):
        await consumer.process(print, concurrency=4)
    seen: list[int] = []
    failed: set[int] = set()

    async def handler(event: AsyncEvent) -> None:
        if event.body % 3 == 0 and event.body not in failed:
            failed.add(event.body)
            raise Boom
        seen.append(event.body)
        if len(seen) == 20:
            consumer.stop()

    assert await consumer.process(handler, block=0.05) == 20
    assert seen == list(range(20))
    assert rclient.xlen("test-stream") == 0


async def test_consumer_single_with_a_key_runs_keys_in_parallel(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    for n in range(40):
        broker.publish("test-stream", n, meta={"k": str(n % 4)})
    await broker.flush()
    consumer = broker.consumer_single("test-stream")
    gauge = Gauge()
    seen: dict[str, list[int]] = {}

    async def handler(event: AsyncEvent) -> None:
        gauge.enter()
        await pause(0.01)
        gauge.leave()
        seen.setdefault(event.meta["k"], []).append(event.body)
        if sum(map(len, seen.values())) == 40:
            consumer.stop()

    assert await consumer.process(handler, concurrency=10, key="k", block=0.05) == 40
    assert 1 < gauge.most <= 4
    assert all(ns == sorted(ns) for ns in seen.values())


async def test_ten_thousand_events_over_two_engines_none_lost_or_doubled(
    config: Config, broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    total = 10_000
    for start in range(0, total, 1000):
        await publish(broker, "test-stream", list(range(start, start + 1000)))
    seen: list[int] = []

    async def worker(name: str) -> int:
        async with AsyncEngine(config) as engine:
            consumer = engine.new_context().event_broker().consumer_many("test-stream")

            async def handler(event: AsyncEvent) -> None:
                seen.append(event.body)
                if len(seen) >= total:
                    consumer.stop()

            async def watch() -> None:
                await AsyncHelpers.wait_for(lambda: len(seen) >= total, timeout=50)
                consumer.stop()

            results = await AsyncHelpers.run_all(
                lambda: consumer.process(handler, concurrency=50, block=0.05), watch
            )
            count: int = results[0]
            return count

    counts = await AsyncHelpers.run_all(lambda: worker("one"), lambda: worker("two"))
    assert sum(counts) == total
    assert sorted(seen) == list(range(total))
    assert rclient.xlen("test-stream") == 0


async def test_handlers_past_the_shutdown_timeout_are_left_and_their_events_stay_pending(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(broker, "test-stream", ["slow"])
    consumer = broker.consumer_many("test-stream")

    async def handler(event: AsyncEvent) -> None:
        consumer.stop()
        await pause(3.0)  # asyncio: cancelled at the timeout; threads: still running then

    assert await consumer.process(handler, shutdown_timeout=0.2, block=0.05) == 0
    assert "still ran 0.2 s after the stop" in caplog.text
    assert rclient.xlen("test-stream") == 1
    assert rclient.xpending("test-stream", consumer.group)["pending"] == 1  # never acked
