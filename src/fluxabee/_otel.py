"""OpenTelemetry traces (``pip install 'fluxabee[otel]'``), after the messaging semantic
conventions, with the W3C trace context carried in each event's meta.

- ``publish`` / ``publish_now``: a ``create <stream>`` span (kind PRODUCER) per event,
  ended at once; its context is written into the event's meta as ``traceparent`` (and
  ``tracestate``). An event whose meta already has a ``traceparent`` keeps it, with no
  create span (a context the application chose, or one a Go service copied along).
- ``flush`` / ``publish_now``: a ``send <stream>`` span (kind CLIENT: the create spans are
  the creation contexts) per stream sent, linked to each event's creation context.
- each hand-over to a handler: a ``process <stream>`` span (kind CONSUMER) whose parent
  is the creation context of the first event that has one, linked to every event's (and
  to the ambient span, if any); it is the current span while the handler runs, and
  records the handler's exception. So one trace runs publish -> handle across processes.

This module is only imported when :class:`TracingObserver` is used.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from ._observe import Batch, Observer, Publication

#: ``messaging.system`` of every span (no registered value covers Redis Streams).
SYSTEM = "redis_streams"
#: The meta key of the W3C trace context.
TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()


def creation_context(meta: Mapping[str, str]) -> SpanContext | None:
    """The span context a ``traceparent`` in ``meta`` names, if it is valid."""
    if TRACEPARENT not in meta:
        return None
    span = trace.get_current_span(_PROPAGATOR.extract(meta))
    found = span.get_span_context()
    return found if found.is_valid else None


def _links(contexts: Sequence[SpanContext | None]) -> list[Link]:
    seen: dict[tuple[int, int], SpanContext] = {}
    for found in contexts:
        if found is not None:
            seen.setdefault((found.trace_id, found.span_id), found)
    return [Link(found) for found in seen.values()]


def _fail(span: trace.Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class TracingObserver(Observer):
    """Spans for publish, flush and each hand-over, and trace context in the meta.

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace``);
    ``create_spans=False`` skips the per-event create spans and writes the context that is
    current at ``publish`` into the meta instead (fewer spans; the consumer's parent is
    then the publisher's own span).
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, create_spans: bool = True
    ) -> None:
        self._tracer = trace.get_tracer("fluxabee", __version__, tracer_provider)
        self._create_spans = create_spans

    @staticmethod
    def _attributes(operation: str, stream: str) -> dict[str, Any]:
        return {
            "messaging.system": SYSTEM,
            "messaging.operation.name": operation,
            "messaging.operation.type": operation,
            "messaging.destination.name": stream,
        }

    def publishing(self, stream: str, meta: dict[str, str]) -> None:
        """Open and close a create span; write its context into ``meta``."""
        if TRACEPARENT in meta:
            return
        if not self._create_spans:
            _PROPAGATOR.inject(meta)
            return
        span = self._tracer.start_span(
            f"create {stream}",
            kind=SpanKind.PRODUCER,
            attributes=self._attributes("create", stream),
        )
        _PROPAGATOR.inject(meta, context=trace.set_span_in_context(span))
        span.end()

    def published(self, publication: Publication) -> None:
        """A send span over the flush (or ``publish_now``), linked to creation contexts."""
        end = time.time_ns()
        attributes = self._attributes("send", publication.stream)
        ids = publication.confirmed
        if len(publication.ids) > 1:
            attributes["messaging.batch.message_count"] = len(publication.ids)
        elif ids:
            attributes["messaging.message.id"] = ids[0]
        span = self._tracer.start_span(
            f"send {publication.stream}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=_links([creation_context(m) for m in publication.metas]),
            start_time=end - int(publication.seconds * 1e9),
        )
        if publication.error is not None:
            _fail(span, publication.error)
        elif len(ids) < len(publication.ids):
            span.set_status(Status(StatusCode.ERROR, "not every event was confirmed"))
        span.end(end_time=end)

    def handling(self, batch: Batch) -> None:
        """Start the process span and make it current for the handler."""
        contexts = [creation_context(e.meta) for e in batch.events]
        links = _links(contexts)
        ambient = trace.get_current_span().get_span_context()
        if ambient.is_valid:
            links.append(Link(ambient))
        parent = next((c for c in contexts if c is not None), None)
        parent_context = (
            None if parent is None else trace.set_span_in_context(trace.NonRecordingSpan(parent))
        )
        attributes = self._attributes("process", batch.stream)
        attributes["messaging.consumer.group.name"] = batch.group
        attributes["messaging.client.id"] = batch.consumer
        if len(batch.events) == 1:
            attributes["messaging.message.id"] = batch.events[0].id
        else:
            attributes["messaging.batch.message_count"] = len(batch.events)
        span = self._tracer.start_span(
            f"process {batch.stream}",
            context=parent_context,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        batch.state[self] = (span, token)

    def handled(self, batch: Batch) -> None:
        """End the process span (with the handler's error) and restore the context."""
        found = batch.state.pop(self, None)
        if found is None:
            return
        span, token = found
        if batch.error is not None:
            _fail(span, batch.error)
        span.end()
        otel_context.detach(token)
