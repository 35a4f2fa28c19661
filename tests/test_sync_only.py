"""What only the sync API has to get right: async handlers, threads, signal-safe stop."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from fluxabee import ClosedError, Config, Engine, EventBroker, InvalidArgumentError, SyncEvent


@pytest.fixture
def broker(config: Config) -> Iterator[EventBroker]:
    with Engine(config) as engine:
        yield engine.new_context().event_broker()


def test_an_async_handler_in_the_sync_api_is_a_clear_error_and_loses_nothing(
    broker: EventBroker, rclient: redis.Redis
) -> None:
    broker.publish_now("test-stream", "x")

    async def handler(events: list[SyncEvent]) -> None:
        pass

    consumer = broker.consumer_many("test-stream")
    for call in (
        lambda: consumer.consume(10, 0, handler),
        lambda: consumer.run(10, 0.1, handler),
        lambda: consumer.autoclaim(10, 0, handler),
    ):
        with pytest.raises(InvalidArgumentError, match="AsyncEngine"):
            call()
    # Refused before anything was read: the event was never delivered, nor dead-lettered.
    assert rclient.xlen("test-stream") == 1
    assert not rclient.exists("{test-stream}:dead")


def test_a_handler_returning_an_awaitable_stops_run_at_the_first_batch_and_loses_nothing(
    broker: EventBroker, rclient: redis.Redis
) -> None:
    class Sneaky:  # the up-front check cannot tell: its __call__ is a plain function
        def __call__(self, events: list[SyncEvent]) -> object:
            async def later() -> None:
                pass

            return later()

    for i in range(3):
        broker.publish_now("test-stream", i)
    consumer = broker.consumer_many("test-stream")
    with pytest.raises(InvalidArgumentError, match="async handler"):
        consumer.run(10, 0.1, Sneaky())
    # Nothing acked, nothing dead-lettered, not counted as a handler failure: all pending.
    pending = rclient.xpending("test-stream", "consumer_group")
    assert pending["pending"] == 3
    assert rclient.xlen("test-stream") == 3
    assert not rclient.exists("{test-stream}:dead")


def test_stop_from_another_thread_ends_a_blocking_run(broker: EventBroker) -> None:
    consumer = broker.consumer_many("test-stream")
    started = threading.Event()

    def handler(events: list[SyncEvent]) -> None:
        started.set()

    broker.publish_now("test-stream", "wake")
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(consumer.run(10, 30.0, handler)))
    worker.start()
    assert started.wait(10)
    consumer.stop()
    worker.join(10)
    assert not worker.is_alive()
    assert result == [1]


def test_stop_from_a_signal_handler_ends_run(broker: EventBroker) -> None:
    consumer = broker.consumer_many("test-stream")
    previous = signal.signal(signal.SIGUSR1, lambda *_: consumer.stop())
    try:

        def handler(events: list[SyncEvent]) -> None:
            signal.raise_signal(signal.SIGUSR1)  # as if SIGTERM arrived mid-batch

        broker.publish_now("test-stream", "x")
        assert consumer.run(10, 30.0, handler) == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_closing_the_engine_wakes_a_run_blocked_in_a_read_in_another_thread(
    config: Config, rclient: redis.Redis
) -> None:
    engine = Engine(config)
    consumer = engine.new_context().event_broker().consumer_many("test-stream")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            consumer.run(10, 30.0, lambda events: None)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while int(rclient.info("clients")["blocked_clients"]) != 1:
        assert time.monotonic() < deadline, "the run never blocked in a read"
        time.sleep(0.005)
    engine.close()
    worker.join(5)
    assert not worker.is_alive()
    assert [type(e) for e in errors] == [ClosedError]


def test_the_pool_shared_with_the_lock_keeper_thread_stays_consistent(
    broker: EventBroker,
) -> None:
    # The keeper thread of a consumer_single uses its consumer's pool, as does the thread
    # that consumes (and any other): many threads take and return connections at once,
    # switching as often as the interpreter allows.
    consumer = broker.consumer_single("test-stream", lock_ttl=0.03)  # keeper every 10 ms
    consumer.consume(1, 0, lambda events: None)
    client = consumer._driver._client
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(400):
                client.call([b"PING"])
        except BaseException as exc:
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    idle = list(client._idle)
    assert len(idle) == len(set(idle))  # no connection handed out twice
    assert set(idle) <= client._open
    consumer.close()


def keepers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fluxabee-lock-keeper"]


def test_the_lock_keeper_thread_lives_exactly_as_long_as_the_lock(broker: EventBroker) -> None:
    assert keepers() == []
    consumer = broker.consumer_single("test-stream", lock_ttl=0.3)
    assert consumer.consume(1, 0, print) == 0
    assert len(keepers()) == 1
    consumer.cleanup()
    assert keepers() == []

    def stop_at_once(events: list[SyncEvent]) -> None:
        consumer.stop()

    broker.publish_now("test-stream", "x")
    assert consumer.run(1, 0.01, stop_at_once) == 1  # run takes the lock, then releases it
    assert keepers() == []


def test_a_single_consumer_dropped_without_cleanup_frees_the_stream(
    broker: EventBroker, rclient: redis.Redis
) -> None:
    consumer = broker.consumer_single("test-stream", lock_ttl=3.0)
    consumer.consume(1, 0, print)
    assert rclient.exists("{test-stream}:lock") == 1
    del consumer
    gc.collect()
    deadline = time.monotonic() + 2.5  # the keeper looks every second; the TTL is 3 s
    while rclient.exists("{test-stream}:lock") and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for a condition, with a deadline
    assert rclient.exists("{test-stream}:lock") == 0  # released by the keeper, before its TTL
    while keepers() and time.monotonic() < deadline + 1.0:
        time.sleep(0.01)  # the keeper deletes the lock, then its thread ends: a moment later
    assert keepers() == []
