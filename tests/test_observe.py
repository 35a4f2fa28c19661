"""Observers on a real server: what they are told, that a failing one is only logged, and
the Prometheus metrics they feed (asserted by scraping the registry)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import fluxabee
from fluxabee import Batch, Observer, Publication
from fluxabee._keys import key_slot
from tests.cluster import ClusterServer
from tests.servers import RedisServer

STREAM = "test-stream"
LABELS = {"stream": STREAM, "group": "consumer_group"}


class Recorder(Observer):
    """Keeps every call, in order."""

    def __init__(self, name: str = "r", calls: list[tuple[Any, ...]] | None = None) -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = [] if calls is None else calls

    def publishing(self, stream: str, meta: dict[str, str]) -> None:
        meta["seen-by"] = self.name
        self.calls.append((self.name, "publishing", stream))

    def published(self, publication: Publication) -> None:
        self.calls.append((self.name, "published", publication))

    def handling(self, batch: Batch) -> None:
        self.calls.append((self.name, "handling", len(batch.events)))

    def handled(self, batch: Batch) -> None:
        self.calls.append((self.name, "handled", batch.seconds, batch.error, batch.failed))

    def acked(self, stream: str, group: str, count: int) -> None:
        self.calls.append((self.name, "acked", count))

    def retried(self, stream: str, group: str, events: Sequence[fluxabee.Event]) -> None:
        self.calls.append((self.name, "retried", [e.id for e in events]))

    def dead_lettered(self, stream: str, group: str, events: Sequence[fluxabee.Event]) -> None:
        self.calls.append((self.name, "dead_lettered", [e.id for e in events]))

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        self.calls.append((self.name, "claimed", count))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[:2] == (self.name, name)]


class Broken(Observer):
    """Raises in every hook."""

    def __getattribute__(self, name: str) -> Any:
        if name in {"publishing", "published", "handling", "handled", "acked"}:

            def fail(*args: Any) -> None:
                raise RuntimeError(f"broken {name}")

            return fail
        return super().__getattribute__(name)


def test_observers_see_publish_flush_and_hand_over_in_order(config: fluxabee.Config) -> None:
    calls: list[tuple[Any, ...]] = []
    first, second = Recorder("a", calls), Recorder("b", calls)
    with fluxabee.Engine(config, observers=[first, second]) as engine:
        broker = engine.new_context().event_broker()
        broker.publish(STREAM, {"n": 1})
        broker.publish("other-stream", {"n": 2})
        ids = broker.flush()
        now_id = broker.publish_now(STREAM, "now")
        seen: list[dict[str, str]] = []

        def handler(events: list[fluxabee.Event]) -> None:
            seen.extend(e.meta for e in events)
            events[0].ack()

        with broker.consumer_many(STREAM) as consumer:
            assert consumer.consume(10, 0, handler) == 2
    assert seen == [{"seen-by": "b"}, {"seen-by": "b"}]  # each saw and completed the meta
    published = [c[2] for c in first.named("published")]
    assert [(p.stream, p.ids, p.immediate) for p in published] == [
        (STREAM, [ids[0]], False), ("other-stream", [ids[1]], False), (STREAM, [now_id], True)
    ]  # fmt: skip
    assert published[0].metas == [{"seen-by": "b"}] and published[0].error is None
    assert published[0].seconds > 0
    hand = [c for c in calls if c[1] in ("handling", "handled")]
    assert [(c[0], c[1]) for c in hand] == [
        ("a", "handling"), ("b", "handling"), ("b", "handled"), ("a", "handled")
    ]  # fmt: skip
    _, _, seconds, error, failed = hand[-1]
    assert seconds > 0 and error is None and failed == 0
    assert [c[2] for c in first.named("acked")] == [1, 1]  # one inside the handler, one after


def test_a_failing_observer_is_logged_never_raised(
    config: fluxabee.Config, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    with fluxabee.Engine(config, observers=[Broken(), recorder]) as engine:
        broker = engine.new_context().event_broker()
        broker.publish(STREAM, 1)
        assert len(broker.flush()) == 1
        with broker.consumer_single(STREAM) as consumer:
            assert consumer.consume(10, 0, lambda events: None) == 1
    assert len(recorder.named("handled")) == 1  # the next observer still heard everything
    failures = [r for r in caplog.records if r.name == "fluxabee" and r.levelno == logging.ERROR]
    assert {r.getMessage().rsplit(" ", 1)[1] for r in failures} == {
        "publishing", "published", "handling", "handled", "acked"
    }  # fmt: skip
    assert all(r.exc_info is not None for r in failures)


def test_observers_must_be_observers(config: fluxabee.Config) -> None:
    with pytest.raises(fluxabee.InvalidArgumentError, match=r"fluxabee\.Observer"):
        fluxabee.Engine(config, observers=[object()])  # type: ignore[list-item]


def _run_until(consumer: fluxabee.Consumer, handler: Any, done: Callable[[], bool]) -> int:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(consumer.run(10, 0.05, handler)))
    thread.start()
    deadline = time.monotonic() + 20
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    consumer.stop()
    thread.join(20)
    assert done(), "the run did not get there before the deadline"
    return result[0]


def _scenario(config: fluxabee.Config, observers: list[Observer], done: Callable[[], bool]) -> None:
    """A crashed consumer holding one event, a poison event among two healthy ones, and a
    worker that claims, isolates, retries and dead-letters."""
    with fluxabee.Engine(config, observers=observers) as engine:
        broker = engine.new_context().event_broker()
        for body in ("claimed", "poison", "healthy"):
            broker.publish(STREAM, body)
        broker.flush()
        crashed = broker.consumer_many(STREAM)
        with pytest.raises(ValueError):
            crashed.consume(1, 0, lambda events: (_ for _ in ()).throw(ValueError("crash")))
        crashed.close()
        policy = fluxabee.RetryPolicy(max_deliveries=2, backoff=0.01, max_backoff=0.02)
        # min_idle well above the backoff: only the crashed consumer's event is claimed.
        worker = broker.consumer_many(STREAM, retry_policy=policy, min_idle=0.5)

        def handler(events: list[fluxabee.Event]) -> None:
            if any(e.body == "poison" for e in events):
                raise ValueError("poison")

        with worker:
            _run_until(worker, handler, done)


def test_run_tells_retries_dead_letters_and_claims(config: fluxabee.Config) -> None:
    recorder = Recorder()
    _scenario(config, [recorder], lambda: bool(recorder.named("dead_lettered"))
              and bool(recorder.named("claimed")))  # fmt: skip
    assert [c[2] for c in recorder.named("claimed")] == [1]
    assert len(recorder.named("dead_lettered")) == 1
    retried = [ids for _, _, ids in recorder.named("retried")]
    poison = recorder.named("dead_lettered")[0][2]
    assert retried.count(poison) >= 2  # alone at once, then after the backoff
    failures = [c for c in recorder.named("handled") if c[3] is not None]
    assert all(isinstance(c[3], ValueError) for c in failures) and len(failures) >= 2


def test_prometheus_counters_histograms_and_statistics(
    config: fluxabee.Config, redis_server: RedisServer
) -> None:
    registry = CollectorRegistry()
    metrics = fluxabee.PrometheusObserver(registry)
    value = registry.get_sample_value
    _scenario(config, [metrics], lambda: (value("fluxabee_dead_lettered_total", LABELS) or 0) >= 1
              and (value("fluxabee_claimed_total", LABELS) or 0) >= 1)  # fmt: skip
    assert value("fluxabee_published_total", {"stream": STREAM}) == 3
    assert value("fluxabee_claimed_total", LABELS) == 1
    assert value("fluxabee_dead_lettered_total", LABELS) == 1
    consumed = value("fluxabee_consumed_total", LABELS)
    acked = value("fluxabee_acked_total", LABELS)
    assert acked == 2  # "claimed" and "healthy"; "poison" went to the dead letters
    assert consumed is not None and consumed >= 5  # + the isolation and backoff retries
    assert (value("fluxabee_failed_total", LABELS) or 0) >= 3  # crash, batch, alone, retry
    assert (value("fluxabee_retried_total", LABELS) or 0) >= 3
    batches = value("fluxabee_handler_duration_seconds_count", LABELS)
    assert batches is not None and batches >= 4
    assert value("fluxabee_publish_to_handle_seconds_count", LABELS) == 3  # first deliveries

    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        broker.publish(STREAM, "waiting")
        broker.flush()
        collector = fluxabee.StatisticsCollector(engine, streams=[STREAM], registry=registry)
        stream = {"stream": STREAM}
        assert value("fluxabee_stream_length", stream) == 1
        assert value("fluxabee_stream_dead_letters", stream) == 1
        assert value("fluxabee_group_pending", LABELS) == 0
        assert value("fluxabee_group_consumers", LABELS) == 1  # the crashed one (the worker left)
        assert value("fluxabee_group_oldest_pending_age_seconds", LABELS) == 0
        assert value("fluxabee_stream_oldest_event_age_seconds", stream) is not None
        assert value("fluxabee_statistics_up") == 1
        redis_server.kill()
        try:
            assert value("fluxabee_statistics_up") == 0
            assert value("fluxabee_stream_length", stream) is None
        finally:
            redis_server.start()
        registry.unregister(collector)


def test_observers_on_a_cluster_pool(cluster: ClusterServer) -> None:
    """A flush that goes to several masters is still one publication per stream."""
    owners: dict[int, str] = {}
    for index in range(200):  # streams on three different masters
        name = f"orders-{index}"
        owners.setdefault(cluster.master_for_slot(key_slot(name)).port, name)
    streams = list(owners.values())[:3]
    assert len(streams) == 3
    uris = [f"127.0.0.1:{cluster.masters()[0].port}"]
    config = fluxabee.Config(
        redis_pools=[fluxabee.RedisPool(uri=uris, cluster=True, streams=streams)]
    )
    registry = CollectorRegistry()
    recorder = Recorder()
    with fluxabee.Engine(config, observers=[recorder, fluxabee.PrometheusObserver(registry)]) as e:
        broker = e.new_context().event_broker()
        for stream in streams:
            broker.publish(stream, {"to": stream})
            broker.publish(stream, {"to": stream})
        ids = broker.flush()
        for stream in streams:
            with broker.consumer_many(stream) as consumer:
                assert consumer.consume(10, 1.0, lambda events: None) == 2
    published = [c[2] for c in recorder.named("published")]
    assert [(p.stream, len(p.confirmed)) for p in published] == [(s, 2) for s in streams]
    assert sorted(i for p in published for i in p.confirmed) == sorted(ids)
    for stream in streams:
        labels = {"stream": stream, "group": "consumer_group"}
        assert registry.get_sample_value("fluxabee_published_total", {"stream": stream}) == 2
        assert registry.get_sample_value("fluxabee_acked_total", labels) == 2
