"""Rescued events reach a live consumer within seconds: entries claimed to a running
consumer (``fluxabee claim``), a restarted ``consumer_many`` with a stable name, and a
``consumer_single`` standby that says it waits (issue 14, items 22 and 23)."""

from __future__ import annotations

import logging

import pytest
import redis

from fluxabee import AsyncEvent, AsyncEventBroker, InvalidArgumentError
from tests.helpers import AsyncHelpers

STREAM = "test-stream"
GROUP = "consumer_group"


def read_and_die(rclient: redis.Redis, consumer: str, count: int) -> list[str]:
    """A worker that read ``count`` entries and was killed (kill -9) before acking them."""
    rclient.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    reply = rclient.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in reply[0][1]]


async def test_events_claimed_to_a_running_consumer_are_handed_over_without_waiting_min_idle(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    for n in range(3):
        broker.publish(STREAM, n)
    await broker.flush()
    stranded = read_and_die(rclient, "gone", 3)
    live = broker.consumer_many(STREAM, min_idle=60)  # its own claims would wait 60 s
    seen: list[str] = []

    async def handler(events: list[AsyncEvent]) -> None:
        seen.extend(e.id for e in events)

    async def running() -> int:
        return await live.run(10, 0.2, handler)

    async def operator() -> None:
        try:
            consumers = lambda: rclient.xinfo_consumers(STREAM, GROUP)  # noqa: E731
            await AsyncHelpers.wait_for(
                lambda: any(c["name"] == live.name.encode() for c in consumers())
            )
            claimed = await broker.claim_pending(STREAM, consumer=live.name, min_idle=0)
            assert sorted(e.id for e in claimed) == stranded
            await AsyncHelpers.wait_for(lambda: len(seen) == 3, timeout=30)
        finally:
            live.stop()

    assert (await AsyncHelpers.run_all(running, operator))[0] == 3
    assert sorted(seen) == stranded
    assert rclient.xpending(STREAM, GROUP)["pending"] == 0


async def test_a_restarted_worker_with_a_stable_name_takes_back_its_pending_events_at_once(
    broker: AsyncEventBroker, rclient: redis.Redis
) -> None:
    for n in range(3):
        broker.publish(STREAM, n)
    await broker.flush()
    stranded = read_and_die(rclient, "pod-7", 3)  # killed with a batch in hand
    anonymous = broker.consumer_many(STREAM, min_idle=60)
    assert anonymous.name.startswith("consumer-")
    assert await anonymous.consume(10, 0, lambda events: None) == 0  # not its pending list
    restarted = broker.consumer_many(STREAM, name="pod-7", min_idle=60)
    assert restarted.name == "pod-7" and "name='pod-7'" in repr(restarted)
    seen: list[str] = []
    assert await restarted.consume(10, 0, lambda events: seen.extend(e.id for e in events)) == 3
    assert seen == stranded
    assert rclient.xlen(STREAM) == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name must be a non-empty str"),
        ("pod 7", "name must have no whitespace or control characters"),
        ("pod\x007", "name must have no whitespace or control characters"),
        ("consumer-single", "is consumer_single's"),
        (7, "name must be a non-empty str"),
    ],
)
async def test_a_consumer_name_is_refused_when_it_cannot_be_a_stable_name(
    broker: AsyncEventBroker, name: object, message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        broker.consumer_many(STREAM, name=name)  # type: ignore[arg-type]


async def test_a_consumer_single_standby_says_once_that_it_waits_for_the_lock(
    broker: AsyncEventBroker, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "fluxabee")
    holder = broker.consumer_single(STREAM)
    assert await holder.consume(10, 0, lambda events: None) == 0  # holds the lock now
    standby = broker.consumer_single(STREAM, lock_ttl=0.5)  # tries every 50 ms

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "hot standby" in r.getMessage()]

    def script_calls() -> int:
        stats = rclient.info("commandstats")
        return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))

    async def waiting() -> int:
        return await standby.run(10, 0.2, lambda events: None)

    async def watcher() -> None:
        try:
            await AsyncHelpers.wait_for(lambda: len(lines()) >= 1)
            polled = script_calls()
            await AsyncHelpers.wait_for(lambda: script_calls() >= polled + 10)  # it tried on
        finally:
            standby.stop()

    assert (await AsyncHelpers.run_all(waiting, watcher))[0] == 0
    assert len(lines()) == 1, lines()
    assert lines()[0].startswith(
        f"consumer_single of {STREAM} (group {GROUP}) waits as a hot standby: "
        "another process holds the lock {test-stream}:lock (it expires in "
    )
    await holder.aclose()
