"""Entries claimed to a running consumer by someone else (``fluxabee claim``, XCLAIM) and a
``consumer_single`` standby: the machine's rules on an injected clock (issue 14, items 22
and 23)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxabee._actions import Lease, Send
from fluxabee._constants import OWN_PENDING_INTERVAL
from tests.unit.machine_driver import (
    Clock,
    drive,
    entry,
    machine,
    name_of,
    pending_rows,
    read_reply,
)

OWN = ["XREADGROUP", "XPENDING"]  # one round trip: own pending entries and their counts


def names(send: Send) -> list[str]:
    return [name_of(c) for c in send.commands]


def test_an_empty_read_of_new_entries_makes_the_next_read_look_at_the_own_pending_list() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    idle = drive(m.consume(10, 100), lambda send: [None])
    assert idle.result == 0 and idle.sent() == ["XREADGROUP"]
    # Meanwhile an operator claimed 7-0 to this consumer: the next read finds it at once.
    own = {
        True: [read_reply("s", entry("7-0")), pending_rows("consumer-1", ("7-0", 2))],
        False: [None],
    }
    rescued = drive(m.consume(10, 100), lambda send: own[names(send) == OWN], lambda e: None)
    assert rescued.sent()[:2] == OWN
    assert rescued.hands() == [["7-0"]]
    assert m.pending_first  # it looks again: there may be more than one batch


def test_a_busy_consumer_looks_at_its_own_pending_list_every_interval() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    m.group_ready = True
    sent: list[list[str]] = []
    new = iter(range(100, 1000))

    def redis(send: Send) -> list[Any]:
        sent.append(names(send))
        if send.packed:
            return [1] * send.count
        if names(send) == OWN:
            return [read_reply("s"), []]
        return [read_reply("s", entry(f"{next(new)}-0"))]  # the stream is never idle

    for _ in range(5):  # a fresh consumer looks first, then reads new entries
        assert drive(m.consume(10, 100), redis).result == 1
    assert sent.count(OWN) == 1
    clock.now = 1000.0 + OWN_PENDING_INTERVAL - 0.5
    assert drive(m.consume(10, 100), redis).result == 1
    assert sent.count(OWN) == 1  # not yet
    clock.now = 1000.0 + OWN_PENDING_INTERVAL
    assert drive(m.consume(10, 100), redis).result == 1
    assert sent.count(OWN) == 2 and sent[-3:-1] == [OWN, ["XREADGROUP"]]
    for _ in range(3):
        assert drive(m.consume(10, 100), redis).result == 1
    assert sent.count(OWN) == 2  # once per interval


def test_a_standby_says_once_that_it_waits_for_the_lock_and_how_long_at_most(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock)
    m = machine(clock=clock, lease=lease, name="consumer-single")
    m.group_ready = True
    polls: list[float] = []

    def redis(send: Send) -> list[Any]:
        return [[0, 7_500]]  # the lock script: held by another, 7.5 s left

    def pause(seconds: float) -> bool:
        polls.append(seconds)
        clock.now += seconds
        return False

    caplog.set_level(logging.INFO, "fluxabee")
    run = drive(m.run(10, 100, 60_000, lambda: len(polls) >= 5), redis, on_pause=pause)
    assert run.error is None and len(polls) == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0] == (
        "consumer_single of s (group consumer_group) waits as a hot standby: "
        "another process holds the lock {s}:lock (it expires in 7.5 s unless refreshed); "
        "this one tries every 1.0 s and takes over once the lock is free"
    )
    assert caplog.records[0].levelno == logging.INFO
