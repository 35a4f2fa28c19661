"""OpenTelemetry: one trace from publish to handle, across two processes, carried by the
``traceparent`` in the event's meta (and across a service that copies the meta along)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import fluxabee

STREAM = "test-stream"

#: The publishing process: publishes inside a span of its own, prints its spans as JSON.
PUBLISHER = textwrap.dedent("""
    import json, sys
    import fluxabee
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = fluxabee.Config.from_url(sys.argv[1], streams=["test-stream"])
    tracer = provider.get_tracer("shop")
    with fluxabee.Engine(config, observers=[fluxabee.TracingObserver(provider)]) as engine:
        broker = engine.new_context().event_broker()
        with tracer.start_as_current_span("checkout"):
            broker.publish("test-stream", {"order": 1})
            broker.publish("test-stream", {"order": 2})
            ids = broker.flush()
            ids.append(broker.publish_now("test-stream", {"order": 3}))
    spans = [
        {"name": s.name, "kind": s.kind.name, "trace": s.context.trace_id,
         "span": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
         "links": [l.context.span_id for l in s.links],
         "attributes": dict(s.attributes)}
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"ids": ids, "spans": spans}))
""")


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """This process's tracer provider and the spans it finished."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _publish_elsewhere(redis_url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PUBLISHER, redis_url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def test_the_consumer_span_is_a_child_of_the_producer_span_across_processes(
    redis_url: str, config: fluxabee.Config, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    published = _publish_elsewhere(redis_url)
    producer = published["spans"]
    creates = [s for s in producer if s["name"] == f"create {STREAM}"]
    sends = [s for s in producer if s["name"] == f"send {STREAM}"]
    checkout = next(s for s in producer if s["name"] == "checkout")
    assert [s["kind"] for s in creates] == ["PRODUCER"] * 3
    assert all(s["parent"] == checkout["span"] for s in creates + sends)
    assert [len(s["links"]) for s in sends] == [2, 1]  # the flush, then publish_now
    assert sends[0]["links"] == [c["span"] for c in creates[:2]]
    assert sends[0]["attributes"]["messaging.batch.message_count"] == 2
    assert sends[1]["attributes"]["messaging.message.id"] == published["ids"][2]
    assert creates[0]["attributes"] == {
        "messaging.system": "redis_streams", "messaging.operation.name": "create",
        "messaging.operation.type": "create", "messaging.destination.name": STREAM,
    }  # fmt: skip

    provider, exporter = spans
    tracer = provider.get_tracer("billing")
    inside: list[Any] = []

    def handler(events: list[fluxabee.Event]) -> None:
        assert all(e.meta["traceparent"].startswith("00-") for e in events)
        inside.append(trace.get_current_span().get_span_context())
        with tracer.start_as_current_span("charge"):
            pass

    observer = fluxabee.TracingObserver(provider)
    with fluxabee.Engine(config, observers=[observer]) as engine:
        broker = engine.new_context().event_broker()
        with broker.consumer_many(STREAM) as consumer:
            assert consumer.consume(10, 1.0, handler) == 3
    process = _named(list(exporter.get_finished_spans()), f"process {STREAM}")
    assert len(process) == 1
    span = process[0]
    assert span.kind == SpanKind.CONSUMER
    assert span.parent is not None and span.parent.is_remote
    assert span.parent.span_id == creates[0]["span"]  # the first event's producer span
    assert span.context.trace_id == checkout["trace"]  # one trace: publish -> handle
    assert [link.context.span_id for link in span.links] == [c["span"] for c in creates]
    assert span.attributes is not None
    assert span.attributes["messaging.consumer.group.name"] == "consumer_group"
    assert span.attributes["messaging.batch.message_count"] == 3
    assert inside[0].span_id == span.context.span_id  # current while the handler ran
    charge = _named(list(exporter.get_finished_spans()), "charge")[0]
    assert charge.parent is not None and charge.parent.span_id == span.context.span_id


def test_a_failing_handler_marks_its_span_and_a_copied_meta_keeps_the_trace(
    config: fluxabee.Config, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    observer = fluxabee.TracingObserver(provider)
    with fluxabee.Engine(config, observers=[observer]) as engine:
        broker = engine.new_context().event_broker()
        broker.publish_now(STREAM, "first hop")
        copied: list[dict[str, str]] = []

        def forward(events: list[fluxabee.Event]) -> None:
            copied.append(dict(events[0].meta))  # what a Go service that copies the meta does
            broker.publish("other-stream", "second hop", meta=events[0].meta)
            raise ValueError("after forwarding")

        with broker.consumer_single(STREAM) as consumer, pytest.raises(ValueError):
            consumer.consume(1, 1.0, forward)
        broker.flush()
        with broker.consumer_single("other-stream") as second:
            assert second.consume(1, 1.0, lambda events: None) == 1
    finished = list(exporter.get_finished_spans())
    create = _named(finished, f"create {STREAM}")
    assert len(create) == 1
    assert not _named(finished, "create other-stream")  # the copied context is kept as is
    first = _named(finished, f"process {STREAM}")[0]
    assert first.status.status_code == trace.StatusCode.ERROR
    assert first.attributes is not None and first.attributes["error.type"] == "ValueError"
    assert [e.name for e in first.events] == ["exception"]
    second_hop = _named(finished, "process other-stream")[0]
    assert second_hop.parent is not None
    assert second_hop.parent.span_id == create[0].context.span_id
    assert copied[0]["traceparent"].split("-")[2] == format(create[0].context.span_id, "016x")
