"""What only the sync API has to get right: async handlers, threads, signal-safe stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest
import redis

from fluxabee import Config, Engine, EventBroker, InvalidArgumentError, SyncEvent


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
    with pytest.raises(InvalidArgumentError, match="AsyncEngine"):
        consumer.consume(10, 0, handler)
    assert rclient.xpending("test-stream", "consumer_group")["pending"] == 1


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
