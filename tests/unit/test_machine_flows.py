"""The machine's longer flows: run's schedule and count, claiming, the locked read's wait,
cleanup, the lock refresh, and the dead-letter fields. Scripted replies, injected clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxabee import BrokerConnectionError, ConsumerLockedError, RetryPolicy
from fluxabee import _machine as machine_module
from fluxabee._actions import Lease, Send
from fluxabee._constants import BLOCK_READ_MARGIN, SINGLE_CONSUMER_NAME
from fluxabee._policy import dead_letter_fields, split_dead_letter
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


class Boom(Exception):
    pass


def names(send: Send) -> list[str]:
    return [name_of(c) for c in send.commands]


def test_run_claims_first_then_every_half_min_idle_and_counts_everything_it_handled() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    m.group_ready = True
    m.pending_first = False
    claims: list[float] = []
    reads = iter([[read_reply("s", entry("2-0"), entry("3-0"))], [None], [None]])

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        if names(send) == ["XAUTOCLAIM"]:
            claims.append(clock.now)
            if len(claims) == 1:
                return [[b"0-0", [entry("1-0")], []]]
            return [[b"0-0", [], []]]
        if names(send) == ["XPENDING"]:
            return [pending_rows("consumer-1", ("1-0", 3))]
        if names(send) == ["XREADGROUP", "XPENDING"]:  # own pending, after an empty read
            return [read_reply("s"), []]
        clock.now += 10.0  # each read blocks 10 s
        return next(reads)

    run = drive(m.run(10, 1000, 30_000, lambda: clock.now >= 1030.0), redis)
    assert run.result == 3  # one claimed + two read
    assert claims == [1000.0, 1020.0]  # at once, then min_idle / 2 = 15 s after the first
    assert run.hands() == [["1-0"], ["2-0", "3-0"]]
    claim = next(a for a in run.actions if isinstance(a, Send) and names(a) == ["XAUTOCLAIM"])
    assert claim.commands[0][4] == 30_000  # min_idle


def test_run_logs_an_outage_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    replies: list[Any] = [
        BrokerConnectionError("down 1"),
        BrokerConnectionError("down 2"),
        BrokerConnectionError("down 3"),
        [b"OK"],
        [[b"0-0", [], []]],
        [read_reply("s"), []],
        [None],
    ]

    def redis(send: Send) -> list[Any]:
        reply = replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        run = drive(m.run(10, 100, 60_000, lambda: not replies), redis)
    assert run.error is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "consumer consumer-1 of s lost Redis (down 1); retrying",
        "consumer consumer-1 of s reconnected after 0.0 s",
    ]
    assert run.pauses() == [0.1, 0.2, 0.4]


def test_a_batch_of_one_failing_with_dead_letter_on_goes_to_the_dead_letters_without_backoff() -> (
    None
):
    clock = Clock(1000.0)
    m = machine(clock=clock, policy=RetryPolicy(dead_letter_on=(Boom,)))
    (event,) = drive(m.triage([Entry("1-0", [b"s", b"\xa1a"], 2)]), lambda s: []).result
    sends: list[Send] = []

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        return [1, 1] if send.packed else [b"9-0"]

    run = drive(m.deliver([event]), redis, handler=lambda events: Boom("no"))
    assert run.result == 0
    assert run.sent() == ["XADD", "XACK+XDEL"]
    fields = sends[0].commands[0]
    assert fields[fields.index(b"fluxabee-deliveries") + 1] == b"2"  # handed over twice
    assert m.pending_due == 0.0


def test_a_single_failing_event_without_dead_letter_on_waits_for_its_backoff() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock, policy=RetryPolicy(backoff=1.0, max_backoff=8.0))
    (event,) = drive(m.triage([Entry("1-0", [b"s", b"\xa1a"], 3)]), lambda s: []).result
    run = drive(m.deliver([event]), lambda s: [], handler=lambda events: Boom())
    assert run.result == 0
    assert run.sent() == []  # no isolation for a batch of one
    assert m.pending_due == 1004.0  # 1 s doubled twice


def test_pending_entries_are_read_again_the_moment_their_backoff_ends() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    m.group_ready = True
    m.pending_due = 1000.0
    run = drive(
        m.read(10, 0), lambda send: [read_reply("s"), []] if len(send.commands) == 2 else [None]
    )
    assert run.sent()[:2] == ["XREADGROUP", "XPENDING"]


def test_the_errors_remembered_for_dead_letters_are_bounded_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(machine_module, "MAX_REMEMBERED_ERRORS", 2)
    m = machine()
    events = drive(
        m.triage([Entry(f"{i}-0", [b"s", b"\xa1a"]) for i in range(1, 4)]), lambda s: []
    ).result
    m.remember(events[:1], Boom("one"))
    m.remember(events[1:2], Boom("two"))
    m.remember(events[:1], Boom("one again"))  # refreshed: now the newest
    m.remember(events[2:3], Boom("three"))
    assert m.errors == {"1-0": "Boom: one again", "3-0": "Boom: three"}
    events[1].acked = True
    m.remember(events[1:2], Boom("acked meanwhile"))
    assert "2-0" not in m.errors


def test_autoclaim_follows_the_cursor_and_hands_each_round_over_with_delivery_counts() -> None:
    m = machine()
    m.group_ready = True
    claims = iter(
        [
            [b"5-0", [entry("1-0"), [b"2-0", None]], []],  # 2-0 was deleted meanwhile
            [b"0-0", [entry("7-0")], [b"8-0"]],
        ]
    )
    counts = iter([pending_rows("consumer-1", ("1-0", 3)), pending_rows("consumer-1", ("7-0", 2))])
    starts: list[str] = []

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        if names(send) == ["XAUTOCLAIM"]:
            starts.append(send.commands[0][5])
            return [next(claims)]
        return [next(counts)]

    seen: list[tuple[str, int]] = []

    def handler(events: list[Event[Any]]) -> BaseException | None:
        seen.extend((e.id, e.delivery_count) for e in events)
        return None

    run = drive(m.autoclaim(10, 60_000), redis, handler)
    assert run.result == 2
    assert starts == ["0-0", "5-0"]
    assert seen == [("1-0", 3), ("7-0", 2)]
    scan = next(a for a in run.actions if isinstance(a, Send) and names(a) == ["XPENDING"])
    assert scan.commands[0][3:5] == ["1-0", "1-0"]  # the claimed range only


def test_autoclaim_raises_the_handlers_exception_and_keeps_the_round_pending() -> None:
    m = machine()
    m.group_ready = True
    replies = iter([[[b"0-0", [entry("1-0")], []]], [pending_rows("consumer-1", ("1-0", 2))]])
    run = drive(m.autoclaim(10, 0), lambda s: next(replies), handler=lambda e: Boom())
    assert isinstance(run.error, Boom)
    assert "XACK+XDEL" not in run.sent()


def test_the_locked_read_waits_for_new_entries_with_xread_and_then_reads_them() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    m.pending_first = False
    sends: list[Send] = []
    replies = iter(
        [
            [[1, None, None, b"4-0"]],  # nothing new: wait after 4-0
            [None],  # XREAD woke up (or timed out)
            [[1, read_reply("s", entry("5-0")), None, None]],
        ]
    )

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        clock.now += 0.1
        return next(replies)

    run = drive(m.read(10, 2000), redis)
    assert [item[0] for item in run.result] == [b"5-0"]  # new entries: raw reply items
    wait = sends[1].commands[0]
    assert wait[:2] == [b"XREAD", b"BLOCK"] and wait[-1] == b"4-0"
    assert 1800 <= wait[2] <= 1900  # what is left of the 2 s
    assert sends[1].retry_safe and sends[1].timeout > 1.8
    assert sends[0].commands[0].args[-1] == b">"  # new entries only: own pending is empty


def test_an_idle_locked_read_looks_at_its_own_pending_list_again_next_time() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    m.pending_first = False
    run = drive(m.read(10, 0), lambda send: [[1, None, None, b"0-0"]])
    assert run.result == []
    assert m.pending_first


def test_cleanup_reports_whether_the_consumer_left_the_group() -> None:
    for reply, left in ((1, True), (0, False), (-1, False)):
        m = machine()
        m.pending_first = False
        run = drive(m.cleanup(), lambda send, reply=reply: [reply])
        assert run.result is left
        assert m.pending_first  # whatever it held is read first if it goes on


def test_refreshing_the_lock_confirms_or_loses_the_lease() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    assert drive(m.refresh_lock(), lambda send: [1]).error is None
    assert lease.valid_until == 1010.0
    held = drive(m.refresh_lock(), lambda send: [-2500])
    assert isinstance(held.error, ConsumerLockedError)
    assert "2500 ms" in str(held.error)
    assert lease.valid_until == 0.0


def test_dead_letter_fields_keep_the_original_and_split_back_exactly() -> None:
    original = [b"s", b"\xa1x", b"source", b"go", b"fluxabee-error", b"forged"]
    original += [b"fluxabee-group", b"forged"]
    fields = dead_letter_fields(
        original,
        error="Boom: no",
        deliveries=3,
        source_id="1-0",
        now_ms=1_700_000_000_000,
        group="billing",
    )
    parts = split_dead_letter(fields)
    assert parts.fields == [b"s", b"\xa1x", b"source", b"go"]  # forged notes are dropped
    assert (parts.error, parts.deliveries, parts.source_id) == ("Boom: no", 3, "1-0")
    assert parts.group == "billing"
    assert fields[-4:] == [b"fluxabee-dead-at", b"1700000000000", b"fluxabee-group", b"billing"]
    odd = split_dead_letter([b"s", b"x", b"fluxabee-deliveries", b"lots"])
    assert (odd.deliveries, odd.error, odd.source_id, odd.group) == (0, "", "", None)


def test_reads_wait_on_the_socket_a_margin_longer_than_their_block() -> None:

    m = machine()
    m.group_ready = True
    m.pending_first = False
    (read,) = drive(m.read(10, 1500), lambda send: [None]).actions
    assert read.timeout == pytest.approx(1.5 + BLOCK_READ_MARGIN)


def test_the_locked_read_asks_for_own_pending_first_with_its_delivery_counts() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    sends: list[Send] = []

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        rows = pending_rows(SINGLE_CONSUMER_NAME, ("1-0", 2))
        return [[1, read_reply("s", entry("1-0")), rows, None]]

    run = drive(m.read(10, 0), redis)
    assert [(e.id, e.deliveries) for e in run.result] == [("1-0", 2)]
    assert sends[0].commands[0].args[-1] == b"0"  # own pending first
    assert m.pending_first  # it had pending entries: look again next time


def test_a_short_locked_wait_uses_what_is_left_of_the_block() -> None:

    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    m.pending_first = False
    sends: list[Send] = []
    replies = iter([[[1, None, None, b"4-0"]], [None], [[1, None, None, b"4-0"]]])

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        clock.now += 0.25
        if len(sends) == 2:
            clock.now = 1001.0  # the XREAD waited out the rest of the block
        return next(replies)

    run = drive(m.read(10, 1000), redis)
    assert run.result == []
    wait = sends[1]
    assert wait.commands[0][2] == 750
    assert wait.timeout == pytest.approx(0.75 + BLOCK_READ_MARGIN)


def test_isolating_for_a_single_consumer_stops_at_a_lapsed_lock() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    lease.confirmed(clock.now)
    batch = drive(
        m.triage([Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"])]), lambda s: []
    ).result
    run = drive(m.deliver(batch), lambda send: [[0, 3000]], handler=lambda events: Boom())
    assert isinstance(run.error, ConsumerLockedError)
    assert "3000 ms" in str(run.error)
    assert lease.valid_until == 0.0


def test_an_event_no_longer_held_is_skipped_and_isolation_goes_on() -> None:
    m = machine()
    batch = drive(
        m.triage([Entry(f"{i}-0", [b"s", b"\xa1a"]) for i in (1, 2, 3)]), lambda s: []
    ).result

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        wanted = send.commands[0].args[4]
        if wanted == "1-0":
            return [[1, [], []]]  # claimed away by another consumer meanwhile
        return [[1, [entry(wanted)], [2]]]

    calls: list[list[str]] = []

    def handler(events: list[Event[Any]]) -> BaseException | None:
        calls.append([e.id for e in events])
        return Boom() if len(events) == 3 else None

    run = drive(m.deliver(batch), redis, handler)
    assert run.result == 2
    assert calls == [["1-0", "2-0", "3-0"], ["2-0"], ["3-0"]]


def test_the_single_consumers_backoff_counts_the_events_left_behind_the_failed_one() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease,
                policy=RetryPolicy(max_deliveries=20, backoff=1.0, max_backoff=100.0))  # fmt: skip
    lease.confirmed(clock.now)
    entries = [Entry("1-0", [b"s", b"\xa1a"], 1), Entry("2-0", [b"s", b"\xa1b"], 1),
               Entry("3-0", [b"s", b"\xa1c"], 6)]  # fmt: skip
    batch = drive(m.triage(entries), lambda s: []).result
    counts = {"1-0": 1, "2-0": 1}

    def redis(send: Send) -> list[Any]:
        wanted = send.commands[0].args[4]
        counts[wanted] += 1
        return [[1, [entry(wanted)], [counts[wanted]]]]

    run = drive(m.deliver(batch), redis, handler=lambda events: Boom())
    assert run.hands() == [["1-0", "2-0", "3-0"], ["1-0"]]  # stops at the first failure
    assert run.pauses() == [32.0]  # 3-0, left behind at 6 deliveries, sets the pace


def test_every_outage_is_logged_when_it_starts(caplog: pytest.LogCaptureFixture) -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    replies: list[Any] = [
        BrokerConnectionError("first"),
        [b"OK"], [[b"0-0", [], []]], [read_reply("s"), []], [None],
        BrokerConnectionError("second"),
        [b"OK"], [read_reply("s"), []], [None],
    ]  # fmt: skip

    def redis(send: Send) -> list[Any]:
        reply = replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        drive(m.run(10, 100, 60_000, lambda: not replies), redis)
    lost = [r.getMessage() for r in caplog.records if "lost Redis" in r.getMessage()]
    assert len(lost) == 2


def test_a_dead_letter_keeps_the_original_bytes_and_when_it_was_moved() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    sends: list[Send] = []

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        return [1, 1] if send.packed else [b"9-0"]

    with_meta = [b"s", b"\xa5hello", b"k", b"v"]
    drive(m.triage([Entry("1-0", with_meta, 2)]), redis)
    xadd = sends[0].commands[0]
    fields = dict(zip(xadd[3::2], xadd[4::2], strict=True))
    assert (fields[b"s"], fields[b"k"]) == (b"\xa5hello", b"v")
    assert fields[b"fluxabee-dead-at"] == b"1700000000000"
