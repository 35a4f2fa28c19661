"""Poison isolation charges only the poison (issue 14, item 14), logs each traceback once
(item 29), and the rules of ``dead_letter_on`` and own-pending-first that a careless
change would break (section 9)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from fluxabee import ConsumerLockedError, RetryPolicy
from fluxabee._actions import Lease, Send
from fluxabee._constants import RECONNECT_BASE_DELAY, RECONNECT_MAX_DELAY, SINGLE_CONSUMER_NAME
from fluxabee._policy import reconnect_delay
from fluxabee._protocol import Entry
from fluxabee.event import Event
from tests.unit.machine_driver import (
    Clock,
    drive,
    entry,
    machine,
    name_of,
    pending_rows,
    read_reply,
)


class Poison(Exception):
    pass


def _events(m: Any, *ids: str, deliveries: int = 1) -> list[Event[Any]]:
    run = drive(m.triage([Entry(i, [b"s", b"\xa1" + i[0].encode()], deliveries) for i in ids]),
                lambda send: [])  # fmt: skip
    assert run.error is None
    return list(run.result)


def _redis(counts: dict[str, int], dead: list[str]) -> Any:
    """Answers the redeliver script (each ID's count raised, as Redis does), dead-letter
    XADDs (recording the source IDs) and acks."""

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1] * send.count
        first = name_of(send.commands[0])
        if first == "XADD":
            for command in send.commands:
                args = list(command)
                dead.append(args[args.index(b"fluxabee-source-id") + 1].decode())
            return [b"99-0"] * len(send.commands)
        assert first == "EVAL:redeliver"
        (call,) = send.commands
        wanted = [a.decode() if isinstance(a, bytes) else a for a in call.args[4:]]
        for i in wanted:
            counts[i] += 1
        return [[1, [entry(i) for i in wanted], [counts[i] for i in wanted]]]

    return redis


def test_with_max_deliveries_1_a_poison_neighbour_does_not_dead_letter_the_healthy_ones() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    ids = [f"{n}-0" for n in range(1, 11)]
    counts = dict.fromkeys(ids, 1)
    dead: list[str] = []
    seen: list[tuple[str, int]] = []

    def handler(events: list[Event[Any]]) -> BaseException | None:
        seen.extend((e.id, e.delivery_count) for e in events)
        return Poison() if any(e.id == "4-0" for e in events) else None

    run = drive(m.deliver(_events(m, *ids)), _redis(counts, dead), handler)
    assert run.error is None and run.result == 9  # the nine healthy ones handled
    assert dead == []  # the isolation retry is not charged as a delivery over the limit
    assert run.hands()[1:] == [[i] for i in ids]
    assert seen[10:] == [(i, 2) for i in ids]  # delivery_count stays exact
    # The poison failed alone once: that counts. Its next read (Redis: 3) dead-letters it.
    again = drive(m.triage([Entry("4-0", [b"s", b"\xa1p"], 3)]), _redis(counts, dead))
    assert again.result == [] and dead == ["4-0"]


def test_a_batch_consume_does_not_split_so_its_failure_counts() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    m.group_ready, m.pending_first = True, False
    run = drive(m.consume(10, 0), lambda send: [read_reply("s", entry("1-0"), entry("2-0"))],
                handler=lambda events: Poison())  # fmt: skip
    assert isinstance(run.error, Poison)
    dead: list[str] = []
    counts = {"1-0": 2, "2-0": 2}
    again = drive(m.triage([Entry(i, [b"s", b"\xa1a"], 2) for i in counts]), _redis(counts, dead))
    assert again.result == [] and dead == ["1-0", "2-0"]


def test_a_failing_events_traceback_is_logged_once_then_one_line_per_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = machine(policy=RetryPolicy(max_deliveries=5))
    counts = {"1-0": 1, "2-0": 1}
    with caplog.at_level(logging.ERROR, logger="fluxabee"):
        for _ in range(3):
            batch = _events(m, "1-0", "2-0", deliveries=counts["1-0"])
            drive(m.deliver(batch), _redis(counts, []), handler=lambda events: Poison("bad"))
    records = [r for r in caplog.records if r.name == "fluxabee"]
    traced = [r for r in records if r.exc_info]
    assert [r.getMessage().split(" of ")[0] for r in traced] == [
        "handler failed on event 1-0",
        "handler failed on event 2-0",
    ]
    messages = [r.getMessage() for r in records]
    assert len(messages) == 9  # per round: the batch, then each event alone
    assert "handler failed on event 1-0 of s (delivery 4): Poison('bad')" in messages
    assert not any(m.startswith("fluxabee:") for m in messages)


def test_one_delivery_reads_naturally_in_the_dead_letter_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        drive(m.triage([Entry("1-0", [b"s", b"\xa1a"], 2)]), _redis({}, []))
    assert (
        caplog.records[-1].getMessage() == "event 1-0 of s moved to dead letters after 1 delivery"
    )


# -- section 9: tests a careless change would pass --------------------------------------


def test_dead_letter_on_matches_subclasses() -> None:
    policy = RetryPolicy(dead_letter_on=(ValueError,))
    assert policy.dead_letters_at_once(json.JSONDecodeError("bad", "{", 0))
    assert not policy.dead_letters_at_once(KeyError("k"))


def test_consume_dead_letters_only_the_event_whose_own_hand_over_raised_dead_letter_on() -> None:
    m = machine(policy=RetryPolicy(dead_letter_on=(Poison,)))
    m.group_ready, m.pending_first = True, False
    dead: list[str] = []

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Poison()  # a batch of two: which one is poison is unknown

    run = drive(m.consume(10, 0), lambda send: (_redis({}, dead)(send) if send.packed or
                name_of(send.commands[0]) == "XADD" else [read_reply("s", entry("1-0"),
                entry("2-0"))]), handler)  # fmt: skip
    assert isinstance(run.error, Poison)
    assert dead == []  # neither goes: the batch raised, not one event alone

    m.pending_first = False  # the next read is of new entries again (scripted as such)

    def one_left(events: list[Event[Any]]) -> BaseException | None:
        events[0].acked = True  # the handler acked 1-0 itself, then 2-0 raised
        return Poison()

    run = drive(m.consume(10, 0), lambda send: (_redis({}, dead)(send) if send.packed or
                name_of(send.commands[0]) == "XADD" else [read_reply("s", entry("1-0"),
                entry("2-0"))]), one_left)  # fmt: skip
    assert dead == ["2-0"]


def test_own_pending_first_stays_set_while_entries_come_back() -> None:
    m = machine()
    m.group_ready = True
    pages = [[entry("1-0"), entry("2-0")], [entry("3-0")], []]

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1] * send.count
        if name_of(send.commands[0]) == "XREADGROUP" and send.commands[0][-1] == "0":
            page = pages.pop(0)
            return [read_reply("s", *page), pending_rows("consumer-1")]
        if name_of(send.commands[0]) == "XREADGROUP":  # new entries: one (an empty read
            return [read_reply("s", entry("4-0"))]  # would look at own pending again)
        return [None]

    assert drive(m.consume(2, 0), redis).result == 2
    assert m.pending_first  # more may be pending: read them first again
    assert drive(m.consume(2, 0), redis).result == 1
    assert drive(m.consume(2, 0), redis).result == 1  # own pending empty, then a new one
    assert not m.pending_first


def test_the_reconnect_delay_is_capped_however_many_attempts_failed() -> None:
    delays = [reconnect_delay(attempt, lambda: 1.0) for attempt in range(1, 200)]
    assert max(delays) == RECONNECT_MAX_DELAY  # after ~15 attempts, never hours
    assert delays[0] == RECONNECT_BASE_DELAY


@pytest.mark.parametrize("where", ["the keeper's refresh", "a locked read"])
def test_a_lost_lock_makes_the_next_holder_read_its_own_pending_first(where: str) -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready, m.pending_first = True, False
    lease.confirmed(clock.now)
    if where == "a locked read":
        run = drive(m.read(10, 0), lambda send: [[0, 3000]])
    else:
        run = drive(m.refresh_lock(), lambda send: [-3000])
    assert isinstance(run.error, ConsumerLockedError)
    assert not lease.held()
    # A dead holder may have left entries in the group's single consumer's pending list.
    assert m.pending_first
