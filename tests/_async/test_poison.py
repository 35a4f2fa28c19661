"""Poison in ``run()``: healthy neighbours are not charged for it (issue 14, item 14), and
the log says each failure once, a traceback per event (item 29)."""

from __future__ import annotations

import logging

import msgpack
import pytest
import redis

from fluxabee import AsyncEngine, AsyncEvent, Config, RetryPolicy
from tests._async.test_faults import Waker

DEAD = "{test-stream}:dead"


@pytest.mark.parametrize("max_deliveries", [1, 3])
async def test_run_dead_letters_only_the_poison_of_a_batch_and_logs_its_traceback_once(
    config: Config, rclient: redis.Redis, caplog: pytest.LogCaptureFixture, max_deliveries: int
) -> None:
    bodies = [f"order {n}" for n in range(10)]
    bodies[3] = bodies[6] = bodies[8] = "poison"  # three poison events in one batch of 10
    ids = [rclient.xadd("test-stream", {"s": msgpack.packb(b)}).decode() for b in bodies]
    poison = {ids[3], ids[6], ids[8]}
    handled: dict[str, int] = {}
    policy = RetryPolicy(max_deliveries=max_deliveries, backoff=0.01, max_backoff=0.02)
    async with AsyncEngine(config) as engine:
        consumer = (
            engine.new_context().event_broker().consumer_many("test-stream", retry_policy=policy)
        )

        def handler(events: list[AsyncEvent]) -> None:
            if any(e.body == "poison" for e in events):
                raise ValueError("cannot ship")
            handled.update((e.id, e.delivery_count) for e in events)

        done = ("the three poison events dead-lettered", lambda: rclient.xlen(DEAD) >= 3,
                consumer.stop)  # fmt: skip
        with caplog.at_level(logging.INFO, logger="fluxabee"), Waker(done, on_error=consumer.stop):
            await consumer.run(10, 0.2, handler)

    assert sorted(handled) == sorted(set(ids) - poison)  # the seven healthy ones handled
    assert set(handled.values()) == {2}  # alone, after the failed batch: delivery 2, exact
    letters = rclient.xrange(DEAD)
    assert {f[b"fluxabee-source-id"].decode() for _, f in letters} == poison
    # Each poison event failed alone max_deliveries times; each of those came after a
    # delivery in a failed batch (the batch of 10, then the three poison ones re-read
    # together), which is excused: 2 * max_deliveries deliveries in all, exactly counted.
    assert {f[b"fluxabee-deliveries"] for _, f in letters} == {str(2 * max_deliveries).encode()}

    records = [r for r in caplog.records if r.name == "fluxabee"]
    messages = [r.getMessage() for r in records]
    tracebacks = [r for r in records if r.exc_info]
    assert sorted(r.getMessage().split(" ")[4] for r in tracebacks) == sorted(poison)
    alone = [m for m in messages if m.startswith("handler failed on event ")]
    assert len(alone) == 3 * max_deliveries  # one line per failure of each
    assert not any(m.startswith("fluxabee:") for m in messages)
    assert not any(" 1 events" in m or " 1 deliveries" in m for m in messages)
    assert len(records) <= 3 * max_deliveries + max_deliveries + 3  # batches + dead letters
