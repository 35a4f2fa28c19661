"""Fan-out: one stream, one consumer process per group, a publisher process beside them.

``fanout(url, n, groups, retention)`` starts a publisher process (``publish`` + ``flush``
per 1000, as fast as it goes) and one ``consumer_many(...).run(1000, ...)`` process per
group, each handling (decoding) all ``n`` events; this process samples ``XLEN`` every
20 ms. It returns each group's rate (its events over the time from its first to its last
event), the longest the stream got, and its length when every group was done (before
any explicit trim): with acked entries removed (XACKDEL, or XACK + a trim every 10 000
acks), the stream stays bounded by what the slowest group has not acked yet.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import redis

import fluxabee

from ._bodies import make_body
from .baselines import fresh_stream

BATCH = 1000
#: Longest a fan-out run may take before it is called broken, seconds.
TIMEOUT = 120.0


def _settings(stream: str, groups: int, retention: str) -> fluxabee.Stream:
    names = [f"group-{i}" for i in range(groups)] if groups > 1 else ["consumer_group"]
    return fluxabee.Stream(stream, groups=names, retention=retention)  # type: ignore[arg-type]


def _config(url: str, settings: fluxabee.Stream) -> fluxabee.Config:
    return fluxabee.Config(redis_pools=[fluxabee.RedisPool(uri=url, streams=[settings])])


def _consume(url: str, settings: fluxabee.Stream, group: str, n: int, out: Any) -> None:
    seen = 0
    first = last = 0.0
    with fluxabee.Engine(_config(url, settings)) as engine:
        consumer = engine.new_context().event_broker().consumer_many(settings.name, group=group)
        consumer.consume(1, 0, lambda events: None)  # creates the groups; nothing is there yet
        out.put(("ready", group, 0.0, 0.0))

        def handler(events: list[fluxabee.Event]) -> None:
            nonlocal seen, first, last
            if not seen:
                first = time.perf_counter()
            for event in events:
                event.body  # noqa: B018 - decoding is part of the work
            seen += len(events)
            last = time.perf_counter()
            if seen >= n:
                consumer.stop()

        watchdog = threading.Timer(TIMEOUT, consumer.stop)
        watchdog.start()
        try:
            consumer.run(BATCH, 1.0, handler)
        finally:
            watchdog.cancel()
    out.put(("done", group, first, last) if seen >= n else ("broken", group, 0.0, 0.0))


def _publish(url: str, settings: fluxabee.Stream, n: int) -> None:
    bodies = [make_body(100, i) for i in range(BATCH)]
    with fluxabee.Engine(_config(url, settings)) as engine:
        broker = engine.new_context().event_broker()
        done = 0
        while done < n:
            for body in bodies[: min(BATCH, n - done)]:
                broker.publish(settings.name, body)
            done += len(broker.flush())


def fanout(url: str, n: int, groups: int, retention: str = "delete") -> dict[str, Any]:
    """One fan-out run: per-group rates (events/s), max and end length of the stream."""
    settings = _settings(fresh_stream("fx-fanout"), groups, retention)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    consumers = [
        context.Process(target=_consume, args=(url, settings, group, n, out))
        for group in settings.groups
    ]
    for process in consumers:
        process.start()
    for _ in consumers:
        assert out.get(timeout=60)[0] == "ready"
    client = redis.Redis.from_url(url)
    publisher = context.Process(target=_publish, args=(url, settings, n))
    publisher.start()
    longest, results = 0, []
    deadline = time.monotonic() + TIMEOUT
    try:
        while len(results) < len(consumers) and time.monotonic() < deadline:
            longest = max(longest, int(client.xlen(settings.name)))
            while not out.empty():
                results.append(out.get())
            time.sleep(0.02)
        end = int(client.xlen(settings.name))
    finally:
        for process in (publisher, *consumers):
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        client.close()
    if len(results) < len(consumers) or any(r[0] != "done" for r in results):
        raise RuntimeError(f"fan-out run broken: {results}")
    rates = {group: n / (last - first) for _, group, first, last in results}
    return {"rates": [rates[g] for g in settings.groups], "max_len": longest, "end_len": end}
