"""``consumer_single(...).process(key=...)``: a key's order holds across a ``kill -9`` of
the holder, whose standby takes over (a checker over everything handled)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import redis

import fluxabee
from tests.helpers import SyncHelpers

STREAM = "test-stream"
KEYS = 3
EVENTS = 150

#: The holder: handles slowly (so it dies with events in flight and queued) and records
#: each event it handled in the Redis list ``handled`` as ``worker:n``.
HOLDER = """
import os, sys, time
import redis
import fluxabee

url = os.environ["REDIS_URL"]
log = redis.Redis.from_url(url)
config = fluxabee.Config(redis_pools=[fluxabee.RedisPool(uri=url, streams=[{stream!r}])])
with fluxabee.Engine(config) as engine:
    consumer = engine.new_context().event_broker().consumer_single({stream!r}, lock_ttl=1.0)

    def handler(event):
        time.sleep(0.005 * (1 + event.body * 7 % 5))  # uneven: a key could overtake itself
        log.rpush("handled", "holder:%d" % event.body)

    consumer.process(handler, concurrency=5, key="k", block=0.1)
"""


def check(records: list[bytes]) -> dict[str, list[int]]:
    """Each worker handled each key's events in stream order, without gaps; the standby
    started each key no later than right after the holder's last event of it."""
    seen: dict[tuple[str, int], list[int]] = {}
    for record in records:
        worker, n = record.decode().split(":")
        seen.setdefault((worker, int(n) % KEYS), []).append(int(n))
    for (worker, key), ns in seen.items():
        assert ns == list(range(ns[0], ns[-1] + 1, KEYS)), (worker, key, ns)
    for key in range(KEYS):
        held = seen.get(("holder", key), [])
        taken = seen.get(("standby", key), [])
        assert taken, key
        assert taken[0] <= (held[-1] + KEYS if held else key), (key, held, taken)
        assert taken[-1] == key + (EVENTS // KEYS - 1) * KEYS
    return {f"{w}:{k}": ns for (w, k), ns in seen.items()}


def test_key_order_holds_across_a_kill_9_of_the_holder(
    redis_url: str, rclient: redis.Redis
) -> None:
    config = fluxabee.Config(redis_pools=[fluxabee.RedisPool(uri=redis_url, streams=[STREAM])])
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(EVENTS):
            broker.publish(STREAM, n, meta={"k": str(n % KEYS)})
        broker.flush()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER.format(stream=STREAM))],
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 30
        while rclient.llen("handled") < 40:
            assert holder.poll() is None, "the holder ended early"
            assert time.monotonic() < deadline, "the holder handled too little"
            time.sleep(0.01)
    finally:
        holder.kill()  # kill -9, with events in the handler and queued behind their keys
        holder.wait()
    with fluxabee.Engine(config) as engine:
        standby = engine.new_context().event_broker().consumer_single(STREAM, lock_ttl=1.0)

        def handler(event: fluxabee.Event) -> None:
            rclient.rpush("handled", f"standby:{event.body}")

        def watch() -> None:
            SyncHelpers.wait_for(lambda: rclient.xlen(STREAM) == 0, timeout=40)  # all acked
            standby.stop()

        SyncHelpers.run_all(
            lambda: standby.process(handler, concurrency=5, key="k", block=0.1), watch
        )
    records = rclient.lrange("handled", 0, -1)
    handled = {int(r.decode().split(":")[1]) for r in records}
    assert handled == set(range(EVENTS))  # nothing lost
    check(records)
