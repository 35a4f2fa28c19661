"""The consumer machine's reads, claims and ``consumer_single`` lock: the gaps a mutation
pass found (issue 14, section 9)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxabee import ConsumerLockedError
from fluxabee._actions import Lease, Send
from fluxabee._constants import SINGLE_CONSUMER_NAME
from fluxabee._machine import ConsumerMachine, after
from fluxabee._observe import Observers
from fluxabee._policy import RetryPolicy
from tests.unit.machine_driver import (
    GROUP,
    Clock,
    FakeAcks,
    drive,
    entry,
    machine,
    name_of,
    ok_acks,
    read_reply,
)
from tests.unit.test_mutants_machine import Recorder, events_of


def locked(on_confirm: Any = None) -> tuple[ConsumerMachine, Lease, Clock]:
    clock = Clock(1000.0)
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me", on_confirm=on_confirm)
    m = machine(name=SINGLE_CONSUMER_NAME, clock=clock, lease=lease)
    m.group_ready = True
    return m, lease, clock


def test_observers_given_to_the_machine_hear_of_its_acks() -> None:
    recorder = Recorder()
    m = ConsumerMachine(
        stream="s",
        group=GROUP,
        name="consumer-1",
        policy=RetryPolicy(),
        acker=FakeAcks(),
        clock=Clock(),
        wall_ms=lambda: 0,
        observers=Observers([recorder]),
    )
    events = events_of(m, "1-0", "2-0")
    assert all(e.stream == "s" for e in events)
    run = drive(m.hand_over(events), ok_acks)  # type: ignore[arg-type]
    assert run.error is None and all(e.acked is True for e in events)
    assert recorder.calls == [("acked", "s", GROUP, 2)]


def test_an_ack_forgets_the_error_of_an_event_that_left_nothing_else() -> None:
    m = machine()
    m.errors["1-0"] = "E"
    drive(m.ack(["1-0"]), ok_acks)  # type: ignore[arg-type]
    assert m.errors == {}


def test_the_machine_looks_for_undeclared_groups_on_its_clock_not_at_every_ack() -> None:
    clock = Clock(1000.0)
    m = machine(clock=clock)
    first = drive(m.ack(["1-0"]), ok_acks)  # type: ignore[arg-type]
    second = drive(m.ack(["2-0"]), ok_acks)  # type: ignore[arg-type]
    assert (len(first.checks), len(second.checks)) == (1, 0)


def test_own_pending_reads_go_on_after_the_last_id_handed_over() -> None:
    assert (after("0"), after("5-0")) == ("-", "(5-0")
    m = machine()
    m.group_ready, m.pending_start = True, "5-0"
    run = drive(m.read(10, 0), lambda send: [read_reply("s", entry("6-0")), []])
    read, counts = run.actions[0].commands
    assert read[-1] == "5-0" and counts[3] == "(5-0"


def test_a_locked_read_of_own_pending_goes_on_after_the_last_id_and_then_starts_over() -> None:
    m, lease, clock = locked()
    lease.confirmed(clock.now)
    m.pending_first, m.pending_start = True, "5-0"
    replies: Any = iter([[[1, None, None, b"0-0"]], [None], [[1, None, None, b"0-0"]]])

    def redis(send: Send) -> list[Any]:
        clock.now += 0.8
        return next(replies)

    run = drive(m.read(10, 2000), redis)
    assert run.error is None
    first, _, second = (a.commands[0] for a in run.actions)
    assert first.args[-1] == b"5-0"  # own pending after 5-0
    assert second.args[-1] == b">"  # own pending came back empty: new entries only
    assert m.pending_start == "0"


def test_new_entries_read_under_the_lock_do_not_send_the_next_read_to_own_pending() -> None:
    m, _lease, _clock = locked()
    m.pending_first, m.pending_start = False, "5-0"
    run = drive(m.read(10, 0), lambda send: [[1, read_reply("s", entry("6-0")), None, None]])
    assert [item[0] for item in run.result] == [b"6-0"]
    assert (m.pending_first, m.pending_start) == (False, "0")


def test_a_locked_read_with_no_time_left_sends_no_xread() -> None:
    m, _lease, _clock = locked()
    m.pending_first = False
    replies: Any = iter([[[1, None, None, b"4-0"]]])  # a second send fails the read
    run = drive(m.read(10, 0), lambda send: next(replies))
    assert run.error is None
    assert run.result == [] and run.sent() == ["EVAL:read_single"]


def test_a_redelivery_under_the_lock_extends_it_for_the_leases_ttl() -> None:
    m, lease, _clock = locked()
    run = drive(m.redeliver(["1-0"]), lambda send: [[1, [entry("1-0")], [2]]])
    assert run.error is None
    (call,) = run.actions[0].commands
    assert call.keys == ("s", "{s}:lock") and lease.ttl_ms in call.args


def test_a_refused_lock_says_how_long_the_holder_keeps_it() -> None:
    m, _lease, _clock = locked()
    run = drive(m.refresh_lock(), lambda send: [-3000])
    assert isinstance(run.error, ConsumerLockedError)
    assert "(its lock expires in 3000 ms unless refreshed)" in str(run.error)


def test_only_a_refresh_that_is_not_the_keepers_own_starts_the_keeper() -> None:
    started: list[bool] = []
    m, lease, _clock = locked(on_confirm=lambda: started.append(True))
    drive(m.refresh_lock(keeper=True), lambda send: [1])
    assert started == [] and lease.held()
    drive(m.refresh_lock(), lambda send: [1])
    assert started == [True]


@pytest.mark.parametrize("regain", ["refresh", "read"])
def test_a_standby_says_it_waits_once_per_wait_naming_how_long_the_lock_lasts(
    caplog: pytest.LogCaptureFixture, regain: str
) -> None:
    m, _lease, _clock = locked()
    with caplog.at_level(logging.INFO, logger="fluxabee"):
        m.standby()
        drive(m.refresh_lock(), lambda send: [-2500])
        m.standby()  # still the same wait: said once
        if regain == "refresh":
            drive(m.refresh_lock(), lambda send: [1])
        else:
            m.pending_first = False
            drive(m.read(10, 0), lambda send: [[1, None, None, b"0-0"]])
        drive(m.refresh_lock(), lambda send: [-2500])
        m.standby()  # held it meanwhile: a new wait
    said = [r.getMessage() for r in caplog.records if "hot standby" in r.getMessage()]
    start = "consumer_single of s (group consumer_group) waits as a hot standby: another "
    end = "; this one tries every 1.0 s and takes over once the lock is free"
    assert said == [
        f"{start}process holds the lock {{s}}:lock{end}",
        f"{start}process holds the lock {{s}}:lock (it expires in 2.5 s unless refreshed){end}",
    ]


def test_redis_6_2_claims_of_deleted_entries_are_acked_with_retry_safe_reads() -> None:
    m = machine()
    m.group_ready = True
    sends: list[Send] = []

    def redis(send: Send) -> list[Any]:
        sends.append(send)
        if send.packed:
            return [1] * send.count
        first: Any = send.commands[0]
        if name_of(first) == "XAUTOCLAIM":
            return [[b"0-0", [entry("5-0"), None]]]  # 6.2: a deleted entry is a bare nil
        if name_of(first) == "XRANGE":
            return [[]]  # 6-0 is gone
        if first[3] == "0-0":  # the scan of the claimed range
            return [[[b"5-0", b"consumer-1", 5, 2], [b"6-0", b"consumer-1", 5, 2]]]
        return [[[b"5-0", b"consumer-1", 5, 2]]]

    run = drive(m.claim(10, 1000, "0-0"), redis)
    assert run.error is None
    assert run.sent() == ["XAUTOCLAIM", "XPENDING", "XRANGE", "XACK+XDEL", "XPENDING"]
    assert all(s.retry_safe for s in sends[1:])


def test_a_6_2_claim_whose_nils_are_all_claimed_reads_no_ranges() -> None:
    m = machine()
    m.group_ready = True

    def redis(send: Send) -> list[Any]:
        first: Any = send.commands[0]
        if name_of(first) == "XAUTOCLAIM":
            return [[b"0-0", [entry("5-0"), None]]]
        return [[[b"5-0", b"consumer-1", 5, 2]]]

    run = drive(m.claim(10, 1000, "0-0"), redis)
    assert run.error is None and run.sent() == ["XAUTOCLAIM", "XPENDING", "XPENDING"]
