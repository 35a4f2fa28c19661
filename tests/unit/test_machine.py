"""The consumer machine's rules, driven with scripted replies and an injected clock.

No Redis and no real clock: each test runs in microseconds and pins one rule (own pending
first, lost replies, the dead-letter boundary and order, poison isolation, order for
``consumer_single``, backoff, lock validity, outages).
"""

from __future__ import annotations

from typing import Any

import pytest

from fluxabee import (
    BrokerConnectionError,
    ConsumerLockedError,
    RetryPolicy,
    WrongTypeError,
)
from fluxabee._actions import Lease, Send
from fluxabee._constants import SINGLE_CONSUMER_NAME
from fluxabee._protocol import Entry
from fluxabee.errors import reply_error
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


class Poison(Exception):
    pass


def names(send: Send) -> list[str]:
    return [name_of(c) for c in send.commands]


def events_of(m: Any, *entries: Entry) -> list[Event[Any]]:
    """Events built by the machine's own ``triage`` (nothing to ack or dead-letter)."""
    run = drive(m.triage(list(entries)), lambda send: [])
    assert run.error is None and run.sent() == []
    return list(run.result)


# -- reading ------------------------------------------------------------------------------


def test_a_fresh_consumer_reads_its_own_pending_first_then_new_entries() -> None:
    m = machine()
    seen: list[Send] = []

    def redis(send: Send) -> list[Any]:
        seen.append(send)
        if send.packed:
            return [2, 2]
        if names(send) == ["XGROUP"]:
            return [b"OK"]
        if names(send) == ["XREADGROUP", "XPENDING"]:
            return [read_reply("s"), []]
        assert send.commands[0][-1] == ">"
        return [read_reply("s", entry("1-0"), entry("2-0"))]

    run = drive(m.consume(10, 500), redis)
    assert run.result == 2
    assert run.sent() == ["XGROUP", "XREADGROUP", "XPENDING", "XREADGROUP", "XACK+XDEL"]
    assert run.hands() == [["1-0", "2-0"]]
    assert seen[1].retry_safe  # re-reading own pending is idempotent
    assert not seen[2].retry_safe  # a read of new entries is not: never resent
    again = drive(m.consume(10, 500), redis)
    assert again.sent() == ["XREADGROUP", "XACK+XDEL"]  # the group and the pending list are known


def test_own_pending_entries_carry_their_delivery_counts() -> None:
    m = machine()
    m.group_ready = True
    run = drive(
        m.consume(10, 0),
        lambda send: (
            [2, 2]
            if send.packed
            else [
                read_reply("s", entry("1-0"), entry("2-0")),
                pending_rows("consumer-1", ("1-0", 2)),
            ]
        ),
    )
    hand = run.actions[1]
    assert [(e.id, e.delivery_count) for e in hand.events] == [("1-0", 2), ("2-0", 1)]


def test_after_a_lost_reply_of_a_read_of_new_entries_own_pending_comes_first() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    m.pending_due = 5000.0  # even pending entries in backoff are read again at once

    def lost(send: Send) -> list[Any]:
        raise BrokerConnectionError("the connection died after XREADGROUP > was written")

    run = drive(m.consume(10, 100), lost)
    assert isinstance(run.error, BrokerConnectionError)
    assert (m.pending_first, m.pending_due) == (True, 0.0)

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        assert names(send) == ["XREADGROUP", "XPENDING"]
        assert send.commands[0][-1] == "0"
        return [read_reply("s", entry("7-0")), pending_rows("consumer-1", ("7-0", 1))]

    stranded = drive(m.consume(10, 100), redis)
    assert stranded.hands() == [["7-0"]]


def test_a_vanished_group_is_created_again_and_the_read_repeated_once() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    replies = iter(
        [
            [_nogroup()],
            [b"OK"],
            [read_reply("s"), []],
            [None],
        ]
    )
    run = drive(m.consume(10, 100), lambda send: next(replies))
    assert run.result == 0
    assert run.sent() == ["XREADGROUP", "XGROUP", "XREADGROUP", "XPENDING", "XREADGROUP"]


def _nogroup() -> Any:
    return reply_error("NOGROUP No such key 's' or consumer group 'consumer_group'")


def test_a_wrongtype_group_create_is_raised_and_busygroup_is_fine() -> None:
    busy = drive(machine().ensure_group(), lambda send: [reply_error("BUSYGROUP exists")])
    assert busy.error is None
    wrong = drive(machine().ensure_group(), lambda send: [reply_error("WRONGTYPE no")])
    assert isinstance(wrong.error, WrongTypeError)


def test_pending_entries_in_backoff_wait_while_new_ones_are_read_with_a_shorter_block() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    m.group_ready = True
    m.pending_due = 1000.25
    run = drive(m.consume(10, 5000), lambda send: [None])
    (read,) = run.actions
    assert read.commands[0][-1] == ">"
    assert read.commands[0][read.commands[0].index(b"BLOCK") + 1] == 250


# -- dead letters ---------------------------------------------------------------------------


def test_an_entry_read_past_max_deliveries_goes_to_the_dead_letters_before_it_is_acked() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=3))
    m.group_ready = True
    m.errors["2-0"] = "Boom: third time"
    sends: list[Send] = []

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        if send.packed:
            return [1, 1]
        if names(send) == ["XADD"]:
            return [b"9-0"]
        return [
            read_reply("s", entry("1-0"), entry("2-0", source="go")),
            pending_rows("consumer-1", ("1-0", 3), ("2-0", 4)),
        ]

    run = drive(m.consume(10, 0), redis)
    assert run.hands() == [["1-0"]]  # delivery 3 of 3 is handed over; delivery 4 is not
    assert run.sent() == ["XREADGROUP", "XPENDING", "XADD", "XACK+XDEL", "XACK+XDEL"]
    xadd = sends[1].commands[0]
    assert xadd[1] == "{s}:dead"
    fields = dict(zip(xadd[3::2], xadd[4::2], strict=True))
    assert fields[b"source"] == b"go"
    assert fields[b"fluxabee-error"] == b"Boom: third time"
    assert fields[b"fluxabee-deliveries"] == b"3"
    assert fields[b"fluxabee-source-id"] == b"2-0"
    assert not sends[1].retry_safe  # an XADD is never resent: it could write a letter twice
    assert b"2-0" in sends[2].packed


def test_an_entry_whose_dead_letter_was_refused_is_not_acked() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    m.group_ready = True

    def redis(send: Send) -> list[Any]:
        if names(send) == ["XADD"]:
            return [reply_error("WRONGTYPE Operation against a key holding the wrong kind")]
        assert not send.packed, "acked an event whose dead letter was not written"
        return [read_reply("s", entry("1-0")), pending_rows("consumer-1", ("1-0", 2))]

    run = drive(m.consume(10, 0), redis)
    assert isinstance(run.error, WrongTypeError)
    assert "stay pending" in str(run.error)
    assert run.hands() == []


def test_a_deleted_entry_is_acked_away_not_handed_over() -> None:
    m = machine()
    run = drive(m.triage([Entry("1-0", None), Entry("2-0", [b"s", b"\xa1x"])]), lambda s: [1, 1])
    assert run.sent() == ["XACK+XDEL"]
    assert [e.id for e in run.result] == ["2-0"]


# -- handing over ---------------------------------------------------------------------------


def test_handler_failure_keeps_events_pending_remembers_the_error_and_raises() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False
    run = drive(
        m.consume(10, 0),
        lambda send: [read_reply("s", entry("1-0"))],
        handler=lambda events: Boom("bad"),
    )
    assert isinstance(run.error, Boom)
    assert "XACK+XDEL" not in run.sent()
    assert m.pending_first
    assert m.errors == {"1-0": "Boom: bad"}


def test_a_base_exception_from_the_handler_propagates_and_acks_nothing() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False

    def interrupted(events: list[Event[Any]]) -> BaseException | None:
        raise KeyboardInterrupt

    run = drive(m.consume(10, 0), lambda send: [read_reply("s", entry("1-0"))], interrupted)
    assert isinstance(run.error, KeyboardInterrupt)
    assert "XACK+XDEL" not in run.sent()
    assert m.pending_first


def test_consume_sends_a_single_unacked_event_failing_with_dead_letter_on_to_the_dead_letters() -> (
    None
):
    m = machine(policy=RetryPolicy(dead_letter_on=(Poison,)))
    m.group_ready = True
    m.pending_first = False

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        if names(send) == ["XADD"]:
            return [b"9-0"]
        return [read_reply("s", entry("1-0"))]

    run = drive(m.consume(10, 0), redis, handler=lambda events: Poison("never retry"))
    assert isinstance(run.error, Poison)
    assert run.sent() == ["XREADGROUP", "XADD", "XACK+XDEL"]


# -- poison isolation and backoff (run) -------------------------------------------------


def _redelivered(ids: dict[str, int]) -> Any:
    """A responder for the redeliver script (counts per ID) and acks."""

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        (call,) = send.commands
        assert name_of(call) == "EVAL:redeliver"
        wanted = [a.decode() if isinstance(a, bytes) else a for a in call.args[4:]]
        ids[wanted[0]] += 1
        return [[1, [entry(i) for i in wanted], [ids[i] for i in wanted]]]

    return redis


def test_a_failed_batch_is_retried_one_event_at_a_time_each_a_delivery_of_its_own() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    batch = events_of(m, Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"]),
                      Entry("3-0", [b"s", b"\xa1c"]))  # fmt: skip
    counts = {"1-0": 1, "2-0": 1, "3-0": 1}
    seen: list[tuple[str, int]] = []

    def handler(events: list[Event[Any]]) -> BaseException | None:
        seen.extend((e.id, e.delivery_count) for e in events)
        return Boom() if any(e.id == "2-0" for e in events) else None

    run = drive(m.deliver(batch), _redelivered(counts), handler)
    assert run.result == 2
    assert run.hands() == [["1-0", "2-0", "3-0"], ["1-0"], ["2-0"], ["3-0"]]
    # The second hand-over of an event is its second delivery, as Redis counts it.
    assert seen[3:] == [("1-0", 2), ("2-0", 2), ("3-0", 2)]
    # consumer_many: the poison waits out its backoff (1 s doubled once: 2 s) off the clock.
    assert m.pending_due == 1002.0
    assert run.pauses() == []


def test_consumer_single_keeps_the_order_the_rest_waits_behind_a_failed_event() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    lease.confirmed(clock.now)
    batch = events_of(m, Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"]),
                      Entry("3-0", [b"s", b"\xa1c"]))  # fmt: skip
    counts = {"1-0": 1, "2-0": 1, "3-0": 1}

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Boom() if any(e.id == "2-0" for e in events) else None

    run = drive(m.deliver(batch), _redelivered(counts), handler)
    assert run.result == 1
    assert run.hands() == [["1-0", "2-0", "3-0"], ["1-0"], ["2-0"]]  # never 3-0 before 2-0
    assert run.pauses() == [2.0]  # it waits in place: nothing moves past the failed event
    assert m.pending_first
    # The isolated reads checked the lock in the same script.
    calls = [a.commands[0] for a in run.actions if isinstance(a, Send) and a.commands]
    assert all(c.keys == ("s", "{s}:lock") and c.args[2] == "me" for c in calls)


def test_an_isolated_event_failing_with_dead_letter_on_goes_to_the_dead_letters_at_once() -> None:
    m = machine(policy=RetryPolicy(dead_letter_on=(Poison,)))
    batch = events_of(m, Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"]))
    counts = {"1-0": 1, "2-0": 1}
    redeliver = _redelivered(counts)

    def redis(send: Send) -> list[Any]:
        if send.commands and names(send) == ["XADD"]:
            return [b"9-0"]
        return redeliver(send)

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Poison() if any(e.id == "2-0" for e in events) else None

    run = drive(m.deliver(batch), redis, handler)
    assert run.result == 1
    assert "XADD" in run.sent()
    assert m.pending_due == 0.0  # nothing left to back off


def test_run_counts_events_the_handler_acked_inside_a_batch_that_raised() -> None:
    m = machine()
    batch = events_of(m, *(Entry(f"{i}-0", [b"s", b"\xa1x"]) for i in range(1, 6)))
    counts = {f"{i}-0": 1 for i in range(1, 6)}
    first = [True]

    def handler(events: list[Event[Any]]) -> BaseException | None:
        if first[0]:
            first[0] = False
            events[0].ack()
            events[1].ack()
            return Boom()
        return None

    run = drive(m.deliver(batch), _redelivered(counts), handler)
    assert run.result == 5  # 2 acked before the raise + 3 handled alone
    assert run.hands()[1:] == [["3-0"], ["4-0"], ["5-0"]]


def test_backoff_doubles_per_delivery_up_to_its_cap_with_50_to_100_percent_jitter() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0)
    assert [policy.delay(d, lambda: 1.0) for d in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [policy.delay(d, lambda: 0.0) for d in range(1, 5)] == [0.5, 1, 2, 4]
    assert RetryPolicy(backoff=lambda d: 100.0 * d, max_backoff=30).delay(2) == 30
    m = machine(policy=policy)
    failed = events_of(m, Entry("1-0", [b"s", b"\xa1a"]), Entry("2-0", [b"s", b"\xa1b"]))
    failed[0].delivery_count, failed[1].delivery_count = 2, 3
    assert m.backoff(failed) == 4.0  # the most delivered event sets the pace


# -- the single consumer's lease --------------------------------------------------------


def test_the_lease_is_trusted_only_until_the_last_confirmation_plus_ttl() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    lease.confirmed(999.5)  # the command that confirmed it was sent at 999.5
    batch = events_of(m, Entry("1-0", [b"s", b"\xa1a"]))
    clock.now = 1009.4
    assert drive(m.hand_over(batch), lambda s: [1, 1]).hands() == [["1-0"]]
    clock.now = 1009.5
    stale = drive(m.hand_over(batch), lambda s: [1, 1])
    assert isinstance(stale.error, ConsumerLockedError)
    assert stale.hands() == []  # a stalled holder never hands over after its lease lapsed


def test_a_locked_read_confirms_the_lease_from_the_time_it_was_sent() -> None:
    clock = Clock(1000.0)
    confirmations: list[float] = []
    lease = Lease(
        "{s}:lock", 10.0, clock=clock, token="me", on_confirm=lambda: confirmations.append(1)
    )
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True

    def redis(send: Send) -> list[Any]:
        clock.now += 3.0  # a slow round trip
        return [
            [1, read_reply("s", entry("1-0")), pending_rows(SINGLE_CONSUMER_NAME, ("1-0", 1)), None]
        ]

    run = drive(m.read(10, 0), redis)
    assert [e.id for e in run.result] == ["1-0"]
    assert lease.valid_until == 1010.0  # sent at 1000, not confirmed "now" (1003)
    assert confirmations == [1]


def test_another_holder_makes_consume_raise_locked_and_run_wait_as_a_standby() -> None:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 5.0, clock=clock, token="me")
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    held = lambda send: [[0, 4000]]  # noqa: E731
    run = drive(m.consume(10, 0), held)
    assert isinstance(run.error, ConsumerLockedError)
    assert "4000 ms" in str(run.error)
    stops = iter([False, True])
    standby = drive(m.run(10, 100, 60_000, lambda: next(stops)), held)
    assert standby.error is None
    assert standby.pauses() == [0.5]  # a tenth of the TTL


# -- outages ----------------------------------------------------------------------------


def test_run_waits_out_an_outage_with_capped_backoff_and_creates_the_group_again() -> None:
    m = machine(rand=lambda: 1.0)
    replies: list[Any] = [
        BrokerConnectionError("down"),  # XAUTOCLAIM (run claims first)
        BrokerConnectionError("still down"),  # XGROUP CREATE
        [b"OK"],  # XGROUP CREATE
        [[b"0-0", [], []]],  # XAUTOCLAIM
        [read_reply("s"), []],  # own pending
        [None],  # new entries
    ]

    def redis(send: Send) -> list[Any]:
        reply = replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    m.group_ready = True
    m.pending_first = False
    run = drive(m.run(10, 100, 60_000, lambda: not replies), redis)
    assert run.error is None
    assert run.pauses() == [0.1, 0.2]  # 0.1 s doubling (jitter fixed at 100 %)
    assert "XGROUP" in run.sent()  # reset after the outage: the group may be gone


def test_claimed_holes_of_redis_6_2_are_found_in_the_claimers_pending_list_and_acked() -> None:
    # Redis 6.2's XAUTOCLAIM claims a deleted entry as a bare nil: no ID, yet it now sits
    # in the claimer's pending list. The claimer looks up its pending IDs of the scanned
    # range (without side effects: XPENDING, XRANGE), and acks the ones the stream lacks.
    m = machine()
    m.group_ready = True
    m.pending_first = False
    seen: list[Send] = []

    def redis(send: Send) -> list[Any]:
        seen.append(send)
        if send.packed:
            return [1, 1]
        first = names(send)[0]
        if first == "XAUTOCLAIM":
            return [[b"9-0", [entry("2-0"), None, entry("4-0")]]]
        if first == "XPENDING" and send.commands[0][3] == "0-0":
            assert send.commands[0][4] == "(9-0"  # up to the cursor, not past it
            return [pending_rows("consumer-1", ("1-0", 1), ("2-0", 2), ("3-0", 2), ("4-0", 2))]
        if first == "XPENDING":
            return [pending_rows("consumer-1", ("2-0", 2), ("4-0", 2))]
        assert names(send) == ["XRANGE", "XRANGE"]  # 1-0 (own, older) and 3-0 (the hole)
        return [[entry("1-0")], []]

    run = drive(m.claim(10, 1000, "0-0"), redis)
    assert run.error is None
    entries, cursor = run.result
    assert [e.id for e in entries] == ["2-0", "4-0"] and cursor == "9-0"
    assert run.sent() == ["XAUTOCLAIM", "XPENDING", "XRANGE", "XRANGE", "XACK+XDEL", "XPENDING"]
    acked = [a for a in run.actions if isinstance(a, Send) and a.packed]
    assert b"3-0" in acked[0].packed and b"1-0" not in acked[0].packed
    assert not m.pending_first  # nothing is left unseen: no extra re-read


def test_claimed_holes_at_the_end_of_the_scan_look_up_to_the_last_id() -> None:
    m = machine()
    m.group_ready = True

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1, 1]
        first = names(send)[0]
        if first == "XAUTOCLAIM":
            return [[b"0-0", [None]]]
        if first == "XPENDING":
            assert send.commands[0][3:5] == ["5-0", "+"]
            return [pending_rows("consumer-1", ("6-0", 2))]
        return [[]]

    run = drive(m.claim(10, 1000, "5-0"), redis)
    assert run.error is None and run.result == ([], "0-0")
    assert run.sent() == ["XAUTOCLAIM", "XPENDING", "XRANGE", "XACK+XDEL"]


def test_a_lost_reply_of_xautoclaim_makes_the_claimer_read_its_own_pending_list() -> None:
    m = machine()
    m.group_ready = True
    m.pending_first = False

    def lost(send: Send) -> list[Any]:
        raise BrokerConnectionError("gone")

    run = drive(m.claim(10, 1000, "0-0"), lost)
    assert isinstance(run.error, BrokerConnectionError)
    assert m.pending_first


@pytest.mark.parametrize("deliveries", [3, 4])
def test_the_max_deliveries_boundary(deliveries: int) -> None:
    m = machine(policy=RetryPolicy(max_deliveries=3))
    run = drive(
        m.triage([Entry("1-0", [b"s", b"\xa1a"], deliveries)]),
        lambda send: [1, 1] if send.packed else [b"9-0"],
    )
    assert len(run.result) == (1 if deliveries == 3 else 0)
    assert run.sent() == ([] if deliveries == 3 else ["XADD", "XACK+XDEL"])


def test_only_idempotent_commands_may_be_sent_again_by_the_shell() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=1))
    flags: dict[str, set[bool]] = {}

    def redis(send: Send) -> list[Any]:
        key = "XACK+XDEL" if send.packed else "+".join(names(send))
        flags.setdefault(key, set()).add(send.retry_safe)
        if send.packed:
            return [1, 1]
        first = names(send)[0]
        return {
            "XGROUP": [b"OK"],
            "XREADGROUP": [read_reply("s", entry("1-0"), entry("2-0")),
                           pending_rows("consumer-1", ("1-0", 1), ("2-0", 2))],
            "XADD": [b"9-0"],
            "XAUTOCLAIM": [[b"0-0", [entry("5-0")], []]],
            "XPENDING": [pending_rows("consumer-1", ("5-0", 1))],
            "EVAL:cleanup": [1],
        }[first]  # fmt: skip

    drive(m.consume(10, 0), redis)
    drive(m.autoclaim(10, 0), redis)
    drive(m.cleanup(), redis)
    assert flags == {
        "XGROUP": {True},
        "XREADGROUP+XPENDING": {True},  # own pending: reading it again is harmless
        "XADD": {False},  # a dead letter is never written twice
        "XACK+XDEL": {True},
        "XAUTOCLAIM": {False},  # a resent claim would strand what the first one claimed
        "XPENDING": {True},
        "EVAL:cleanup": {False},
    }
