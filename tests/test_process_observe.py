"""What ``process`` tells observers: the events in flight and one handler duration per
event, and the Prometheus metrics they feed (scraped from the registry)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry

import fluxabee
from fluxabee import Batch, Observer

STREAM = "test-stream"
LABELS = {"stream": STREAM, "group": "consumer_group"}


class InFlight(Observer):
    """Keeps the in-flight reports and the size of every handled batch."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.changes: list[int] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def in_flight(self, stream: str, group: str, consumer: str, count: int, change: int) -> None:
        self.counts.append(count)
        self.changes.append(change)

    def handled(self, batch: Batch) -> None:
        with self._lock:
            self.batches.append(len(batch.events))


def test_process_tells_the_events_in_flight_and_times_each_event(
    config: fluxabee.Config,
) -> None:
    registry = CollectorRegistry()
    metrics = fluxabee.PrometheusObserver(registry)
    seen = InFlight()
    gate = threading.Barrier(4)
    with fluxabee.Engine(config, observers=[seen, metrics]) as engine:
        broker = engine.new_context().event_broker()
        for n in range(20):
            broker.publish(STREAM, n)
        broker.flush()
        consumer = broker.consumer_many(STREAM)
        handled: list[Any] = []

        def handler(event: fluxabee.Event) -> None:
            if event.body < 4:
                gate.wait(10)  # the first four run at once: the gauge reaches 4
            handled.append(event.body)
            if len(handled) == 20:
                consumer.stop()

        assert consumer.process(handler, concurrency=4, block=0.05) == 20
    assert max(seen.counts) == 4
    assert seen.counts[-1] == 0 and sum(seen.changes) == 0
    assert seen.batches == [1] * 20  # one handler duration per event
    value = registry.get_sample_value
    assert value("fluxabee_in_flight", LABELS) == 0
    assert value("fluxabee_handler_duration_seconds_count", LABELS) == 20
    assert value("fluxabee_consumed_total", LABELS) == 20
    assert value("fluxabee_acked_total", LABELS) == 20
