"""Prometheus metrics (``pip install 'fluxabee[prometheus]'``): counters and histograms fed
by an :class:`~fluxabee.Observer`, and a collector that reads stream statistics at scrape.

::

    registry = prometheus_client.REGISTRY
    engine = fluxabee.Engine(config, observers=[fluxabee.PrometheusObserver(registry)])
    fluxabee.StatisticsCollector(config, registry=registry)   # length, lag, pending, ages
    prometheus_client.start_http_server(9100)

Every metric is labelled by ``stream`` (and ``group`` for consuming). This module is only
imported when one of its names is used, so the core does not need ``prometheus_client``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._observe import Batch, Observer, Publication
from ._protocol import id_ms
from ._sync.engine import Engine
from .config import Config

if TYPE_CHECKING:
    from ._stats import StreamStatistics
    from .event import Event

logger = logging.getLogger("fluxabee")

#: Buckets of ``handler_duration_seconds`` (1 ms .. 1 min).
HANDLER_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    60.0,
)
#: Buckets of ``publish_to_handle_seconds`` (1 ms .. 10 min).
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


class PrometheusObserver(Observer):
    """Counts what the engine's brokers and consumers do, per stream (and group).

    ``<namespace>_published_total`` and ``_publish_failed_total`` (per stream);
    ``_consumed_total`` (handed to a handler), ``_acked_total``, ``_failed_total`` (left
    un-acked by a handler that raised), ``_retried_total``, ``_dead_lettered_total``,
    ``_claimed_total`` (per stream and group); the gauge ``_in_flight`` (events in a
    ``process`` handler now, per stream and group); histograms ``_handler_duration_seconds``
    (per batch; per event under ``process``) and ``_publish_to_handle_seconds`` (per event
    on its first delivery: the time since the entry ID's millisecond timestamp, so
    publisher and consumer clocks should agree). Metrics go to ``registry``
    (prometheus_client's global one by default).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        namespace: str = "fluxabee",
        handler_buckets: Sequence[float] = HANDLER_BUCKETS,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        stream, both = ("stream",), ("stream", "group")
        self._published = counter("published", "Events Redis confirmed a publish of.", stream)
        self._publish_failed = counter(
            "publish_failed", "Events a flush or publish_now did not get confirmed.", stream
        )
        self._consumed = counter("consumed", "Events handed to a handler.", both)
        self._acked = counter("acked", "Handed-over events acked (XACK + XDEL).", both)
        self._failed = counter("failed", "Events left un-acked by a handler that raised.", both)
        self._retried = counter("retried", "Failed events scheduled to be handed again.", both)
        self._dead = counter("dead_lettered", "Events moved to the dead letters.", both)
        self._claimed = counter("claimed", "Events claimed from other consumers.", both)
        self._duration = Histogram(
            "handler_duration_seconds",
            "Seconds a handler took per batch (per event under process).",
            both,
            namespace=namespace,
            registry=registry,
            buckets=tuple(handler_buckets),
        )
        self._latency = Histogram(
            "publish_to_handle_seconds",
            "Seconds from publish (the entry ID's time) to the first hand-over.",
            both,
            namespace=namespace,
            registry=registry,
            buckets=tuple(latency_buckets),
        )
        self._in_flight = Gauge(
            "in_flight",
            "Events in a process handler now (all consumers of the stream and group here).",
            both,
            namespace=namespace,
            registry=registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}

    def _of(self, stream: str, group: str) -> tuple[Any, ...]:
        """The labelled children of one (stream, group), made once."""
        key = (stream, group)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = tuple(
                metric.labels(stream, group)
                for metric in (
                    self._consumed,
                    self._acked,
                    self._failed,
                    self._retried,
                    self._dead,
                    self._claimed,
                    self._duration,
                    self._latency,
                )
            )
        return found

    def published(self, publication: Publication) -> None:
        """Count confirmed and unconfirmed events."""
        landed = len(publication.confirmed)
        if landed:
            self._published.labels(publication.stream).inc(landed)
        if landed < len(publication.ids):
            self._publish_failed.labels(publication.stream).inc(len(publication.ids) - landed)

    def handling(self, batch: Batch) -> None:
        """Observe the publish-to-handle latency of first deliveries."""
        latency = self._of(batch.stream, batch.group)[7]
        now_ms = time.time() * 1000
        for event in batch.events:
            if event.delivery_count == 1:
                latency.observe(max(0.0, (now_ms - id_ms(event.id)) / 1000))

    def handled(self, batch: Batch) -> None:
        """Count the batch, its failures, and time the handler."""
        children = self._of(batch.stream, batch.group)
        children[0].inc(len(batch.events))
        failed = batch.failed
        if failed:
            children[2].inc(failed)
        children[6].observe(batch.seconds)

    def acked(self, stream: str, group: str, count: int) -> None:
        """Count acks."""
        self._of(stream, group)[1].inc(count)

    def retried(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """Count scheduled retries."""
        self._of(stream, group)[3].inc(len(events))

    def dead_lettered(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """Count dead letters."""
        self._of(stream, group)[4].inc(len(events))

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        """Count claims."""
        self._of(stream, group)[5].inc(count)

    def in_flight(self, stream: str, group: str, consumer: str, count: int, change: int) -> None:
        """Move the in-flight gauge (a sum over the consumers of this process)."""
        self._in_flight.labels(stream, group).inc(change)


class StatisticsCollector(Collector):
    """Gauges read from :meth:`~fluxabee.EventBroker.streams_statistics` at each scrape.

    ``<namespace>_stream_length``, ``_stream_oldest_event_age_seconds``,
    ``_stream_dead_letters`` (per stream); ``_group_lag``, ``_group_pending``,
    ``_group_oldest_pending_age_seconds``, ``_group_consumers`` (per stream and group);
    ``_statistics_up`` is 0 when Redis could not be read (the error is logged). ``source``
    is a sync :class:`~fluxabee.Engine` or a :class:`~fluxabee.Config` (then the collector
    owns an engine of its own, which also serves asyncio applications); ``streams``
    defaults to every configured stream. Registered on ``registry`` unless it is ``None``.
    """

    def __init__(
        self,
        source: Engine | Config,
        *,
        streams: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
        namespace: str = "fluxabee",
    ) -> None:
        self._own = isinstance(source, Config)
        self._engine = Engine(source) if isinstance(source, Config) else source
        self._streams = tuple(streams)
        self._ns = namespace
        if registry is not None:
            registry.register(self)

    def _families(self) -> dict[str, GaugeMetricFamily]:
        ns, stream, both = self._ns, ["stream"], ["stream", "group"]
        specs = {
            "length": ("stream_length", "Entries in the stream (its backlog).", stream),
            "oldest": (
                "stream_oldest_event_age_seconds",
                "Age of the oldest entry in the stream.",
                stream,
            ),
            "dead": ("stream_dead_letters", "Entries in the dead-letter stream.", stream),
            "lag": ("group_lag", "Entries not yet delivered to the group.", both),
            "pending": ("group_pending", "Entries delivered and not yet acked.", both),
            "pending_age": (
                "group_oldest_pending_age_seconds",
                "Age of the oldest pending entry.",
                both,
            ),
            "consumers": ("group_consumers", "Consumers in the group.", both),
            "up": ("statistics_up", "1 when the statistics could be read from Redis.", []),
        }
        return {
            key: GaugeMetricFamily(f"{ns}_{name}", doc, labels=labels)
            for key, (name, doc, labels) in specs.items()
        }

    def describe(self) -> Iterator[Metric]:
        """The metric families, without reading Redis (so registering costs nothing)."""
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        """Read the statistics (one round trip per pool) and report them."""
        families = self._families()
        try:
            broker = self._engine.new_context().event_broker()
            all_stats = broker.streams_statistics(*self._streams)
        except Exception as exc:
            logger.warning("statistics for Prometheus failed: %s", exc)
            families["up"].add_metric([], 0)
            yield families["up"]
            return
        families["up"].add_metric([], 1)
        for stats in all_stats:
            self._add(families, stats)
        yield from families.values()

    @staticmethod
    def _add(families: dict[str, GaugeMetricFamily], stats: StreamStatistics) -> None:
        name = stats.stream
        families["length"].add_metric([name], stats.length)
        if stats.oldest_event_age is not None:
            families["oldest"].add_metric([name], stats.oldest_event_age)
        families["dead"].add_metric([name], stats.dead_letters)
        groups = stats.groups or ((stats.group,) if stats.group is not None else ())
        for group in groups:
            labels = [name, group.name]
            if group.lag is not None:
                families["lag"].add_metric(labels, group.lag)
            families["pending"].add_metric(labels, group.pending)
            families["pending_age"].add_metric(labels, group.lowest_pending_age or 0.0)
            families["consumers"].add_metric(labels, len(group.consumers))

    def close(self) -> None:
        """Close the engine the collector made for itself (not one it was given)."""
        if self._own:
            self._engine.close()
