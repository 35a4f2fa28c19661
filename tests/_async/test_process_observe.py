"""What ``process`` tells observers: the events in flight and one handler duration per
event, and the Prometheus metrics they feed (scraped from the registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

import fluxabee
from fluxabee import AsyncEngine, AsyncEvent, Batch, Config, Observer
from fluxabee._backends import AsyncBackend

STREAM = "test-stream"
LABELS = {"stream": STREAM, "group": "consumer_group"}


class InFlight(Observer):
    """Keeps the in-flight reports and every handled batch's size and error."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.changes: list[int] = []
        self.batches: list[int] = []
        self.errors: list[str] = []

    def in_flight(self, stream: str, group: str, consumer: str, count: int, change: int) -> None:
        self.counts.append(count)
        self.changes.append(change)

    def handled(self, batch: Batch) -> None:
        self.batches.append(len(batch.events))
        if batch.error is not None:
            self.errors.append(repr(batch.error))


async def test_process_tells_the_events_in_flight_and_times_each_event(config: Config) -> None:
    registry = CollectorRegistry()
    metrics = fluxabee.PrometheusObserver(registry)
    seen = InFlight()
    async with AsyncEngine(config, observers=[seen, metrics]) as engine:
        broker = engine.new_context().event_broker()
        for n in range(20):
            broker.publish(STREAM, n)
        await broker.flush()
        policy = fluxabee.RetryPolicy(backoff=0.01, max_backoff=0.01)
        consumer = broker.consumer_many(STREAM, retry_policy=policy)
        handled: list[int] = []

        async def handler(event: AsyncEvent) -> None:
            await AsyncBackend.new_flag().wait(0.02)
            if event.body == 7 and event.delivery_count == 1:
                raise ValueError("once")
            handled.append(event.body)
            if len(handled) == 20:
                consumer.stop()

        assert await consumer.process(handler, concurrency=4, block=0.05) == 20
    assert max(seen.counts) == 4  # the first read filled the window at once
    assert seen.counts[-1] == 0 and sum(seen.changes) == 0
    assert seen.batches == [1] * 21  # one handler duration per event (7 ran twice)
    assert seen.errors == ["ValueError('once')"]
    value = registry.get_sample_value
    assert value("fluxabee_in_flight", LABELS) == 0
    assert value("fluxabee_handler_duration_seconds_count", LABELS) == 21
    assert value("fluxabee_consumed_total", LABELS) == 21
    assert value("fluxabee_failed_total", LABELS) == 1
    assert value("fluxabee_retried_total", LABELS) == 1
    assert value("fluxabee_acked_total", LABELS) == 20
