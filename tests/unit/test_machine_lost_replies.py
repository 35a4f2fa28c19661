"""Lost replies: any exception out of a step that delivers makes the consumer re-read its
own pending list first (issue 14, item 1).

A read that delivers (``XREADGROUP >``, the locked read, XAUTOCLAIM, the redelivery
script) may have moved entries into this consumer's pending list although its reply never
arrived: cancelled, interrupted (KeyboardInterrupt) or disconnected. The same holds after
the handler returned and before the ack's reply, and while a read's entries wait for the
ack of their deleted neighbours. In each case the next read is of the own pending list,
whatever backoff was due.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fluxabee import BrokerConnectionError, RetryPolicy
from fluxabee._actions import Lease, Send
from fluxabee._constants import SINGLE_CONSUMER_NAME
from fluxabee._protocol import Entry
from tests.unit.machine_driver import Clock, drive, entry, machine, read_reply

#: What interrupts a step: a cancelled task, Ctrl-C in the sync API, a dropped connection.
LOSSES = [asyncio.CancelledError, KeyboardInterrupt, BrokerConnectionError]


def _lose(kind: type[BaseException]) -> Any:
    def redis(send: Send) -> list[Any]:
        raise kind("the reply never arrived")

    return redis


def _ready(m: Any) -> Any:
    m.group_ready = True
    m.pending_first = False
    m.pending_due = 5000.0  # pending entries in backoff: a lost reply reads them at once
    return m


@pytest.mark.parametrize("kind", LOSSES)
def test_a_read_of_new_entries_that_lost_its_reply(kind: type[BaseException]) -> None:
    m = _ready(machine())
    run = drive(m.consume(10, 100), _lose(kind))
    assert isinstance(run.error, kind)
    assert (m.pending_first, m.pending_due) == (True, 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_a_locked_read_that_lost_its_reply(kind: type[BaseException]) -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = _ready(machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease))
    run = drive(m.consume(10, 100), _lose(kind))
    assert isinstance(run.error, kind)
    assert m.pending_first


@pytest.mark.parametrize("kind", LOSSES)
def test_a_claim_that_lost_its_reply(kind: type[BaseException]) -> None:
    m = _ready(machine())
    run = drive(m.autoclaim(10, 1000), _lose(kind))
    assert isinstance(run.error, kind)
    assert (m.pending_first, m.pending_due) == (True, 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_a_redelivery_that_lost_its_reply(kind: type[BaseException]) -> None:
    m = _ready(machine())
    events = drive(
        m.triage([Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"])]), _lose(kind)
    )
    batch = events.result
    failed = iter([ValueError("batch")])

    def handler(events: list[Any]) -> BaseException | None:
        return next(failed, None)

    run = drive(m.deliver(batch), _lose(kind), handler)
    assert isinstance(run.error, kind)  # the redelivery of 1-0 was sent, never answered
    assert (m.pending_first, m.pending_due) == (True, 0.0)


@pytest.mark.parametrize("kind", LOSSES)
def test_an_ack_after_the_handler_returned_that_lost_its_reply(kind: type[BaseException]) -> None:
    m = _ready(machine())
    m.pending_due = 0.0

    def redis(send: Send) -> list[Any]:
        if send.packed:
            raise kind("the ack's reply never arrived")
        return [read_reply("s", entry("1-0"))]

    run = drive(m.consume(10, 100), redis)
    assert isinstance(run.error, kind)
    assert run.hands() == [["1-0"]]  # handled, perhaps not acked: handed over again
    assert m.pending_first


@pytest.mark.parametrize("kind", LOSSES)
def test_a_read_whose_deleted_neighbours_could_not_be_acked(kind: type[BaseException]) -> None:
    m = _ready(machine())
    m.pending_due = 0.0

    def redis(send: Send) -> list[Any]:
        if send.packed:
            raise kind("the ack of the deleted entry was interrupted")
        return [[[b"s", [[b"1-0", None], entry("2-0")]]]]  # 1-0 deleted, 2-0 live

    run = drive(m.consume(10, 100), redis)
    assert isinstance(run.error, kind)
    assert run.hands() == []  # 2-0 is ours, never handed over: re-read first
    assert m.pending_first


def test_a_handler_interrupted_leaves_its_events_to_be_read_first_whatever_the_backoff() -> None:
    m = _ready(machine(policy=RetryPolicy(max_deliveries=3)))
    m.pending_due = 0.0

    def interrupted(events: list[Any]) -> BaseException | None:
        raise KeyboardInterrupt

    run = drive(m.consume(10, 100), lambda send: [read_reply("s", entry("1-0"))], interrupted)
    assert isinstance(run.error, KeyboardInterrupt)
    m.pending_due = 5000.0
    run = drive(m.consume(10, 100), lambda send: [read_reply("s", entry("1-0"))], interrupted)
    assert (m.pending_first, m.pending_due) == (True, 0.0)
