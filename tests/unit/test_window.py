"""The rules of ``process``'s window, with an injected clock: no Redis, milliseconds each.

Each test pins one rule: the window is never exceeded, a key's order holds under failures
and retries, retries hold no slot, ``Retry(after)`` replaces the backoff and still counts
toward ``max_deliveries``, acks are coalesced, leases are renewed on time, and what is
handed back on stop.
"""

from __future__ import annotations

import datetime as _dt
import random
from typing import Any

import pytest

from fluxabee import InvalidArgumentError, Retry, RetryPolicy
from fluxabee._actions import Probe
from fluxabee._window import ACK_BATCH, ACK_DELAY, Window, hand_back, renew_command
from fluxabee.event import Event
from tests.unit.machine_driver import Clock


class Boom(Exception):
    pass


class Poison(Exception):
    pass


def event(n: int, key: str = "", deliveries: int = 1) -> Event[Any]:
    return Event(f"{n}-0", "s", b"", {"k": key}, lambda e: None, deliveries)


def window(
    clock: Clock,
    *,
    concurrency: int = 4,
    keyed: bool = True,
    ordered: bool = False,
    policy: RetryPolicy | None = None,
    min_idle: float = 3.0,
    claims: bool = False,
) -> Window:
    return Window(
        concurrency=concurrency,
        key=(lambda e: e.meta["k"]) if keyed else None,
        ordered=ordered,
        policy=policy or RetryPolicy(backoff=1.0, max_backoff=1.0),
        min_idle=min_idle,
        clock=clock,
        claims=claims,
        rand=lambda: 1.0,
    )


def ids(events: list[Event[Any]]) -> list[str]:
    return [e.id for e in events]


def redeliver(w: Window, deliveries: int | None = None) -> list[Event[Any]]:
    """Redeliver what is due, as Redis would (one more delivery each), and start it."""
    due = w.redeliveries()
    fresh = []
    for entry_id in due:
        n = int(entry_id.split("-")[0])
        old = w._held[entry_id].event
        fresh.append(event(n, old.meta["k"], deliveries or old.delivery_count + 1))
    return w.redelivered(due, fresh)


# -- the window --------------------------------------------------------------------------


def test_reads_ask_only_for_free_slots_and_queued_events_take_slots() -> None:
    clock = Clock()
    w = window(clock, concurrency=4)
    assert w.to_read() == 4
    w.received([event(1, "a"), event(2, "a"), event(3, "b")], clock())
    assert w.to_read() == 1  # two ready, one queued behind key a
    assert ids(w.start()) == ["1-0", "3-0"]
    assert w.to_read() == 1  # two in the handler, one queued
    assert w.running == 2


def test_the_window_is_never_exceeded_under_random_outcomes() -> None:
    clock = Clock()
    rng = random.Random(7)
    w = window(clock, concurrency=5, policy=RetryPolicy(max_deliveries=3, backoff=0.5))
    n = 0
    in_handler: dict[str, Event[Any]] = {}
    for _ in range(2000):
        free = w.to_read()
        if free:
            batch = [event(n + i, f"k{rng.randrange(7)}") for i in range(rng.randrange(free + 1))]
            n += len(batch)
            w.received(batch, clock())
        for e in [*redeliver(w), *w.start()]:
            in_handler[e.id] = e
        assert len(in_handler) <= 5
        assert w.running == len(in_handler)
        assert w.held <= 5 + len(w._backoff) + n  # sanity
        for dead, _ in w.dead_letters():
            dead.acked = True
            w.dead_lettered([dead])
        if in_handler and rng.random() < 0.5:
            done = in_handler.pop(rng.choice(sorted(in_handler)))
            w.finished(done, Boom() if rng.random() < 0.3 else None)
        w.acks()
        clock.now += rng.random() * 0.2


def test_a_key_keeps_its_order_under_failures_retries_and_dead_letters() -> None:
    clock = Clock()
    rng = random.Random(3)
    w = window(clock, concurrency=8, policy=RetryPolicy(max_deliveries=3, backoff=0.2))
    keys = [f"k{i % 5}" for i in range(300)]
    handled: dict[str, list[int]] = {}
    w.received([event(i, keys[i]) for i in range(300)], clock())
    in_handler: dict[str, Event[Any]] = {}
    finished: set[str] = set()
    while len(finished) < 300:
        for e in [*redeliver(w), *w.start()]:
            key = e.meta["k"]
            assert all(o.meta["k"] != key for o in in_handler.values()), "a key ran twice"
            in_handler[e.id] = e
            handled.setdefault(key, []).append(int(e.id.split("-")[0]))
        for dead, _ in w.dead_letters():
            dead.acked = True
            finished.add(dead.id)
            w.dead_lettered([dead])
        if in_handler:
            done = in_handler.pop(rng.choice(sorted(in_handler)))
            if w.finished(done, Boom() if rng.random() < 0.4 else None) is None:
                finished.add(done.id)
        clock.now += 0.05
    for key, seen in handled.items():
        firsts = list(dict.fromkeys(seen))  # retries repeat an event right where it was
        assert firsts == sorted(firsts), key
        assert [s for i, s in enumerate(seen) if i and s < seen[i - 1]] == []


def test_a_failed_event_holds_its_key_but_not_a_slot() -> None:
    clock = Clock()
    w = window(clock, concurrency=2)
    w.received([event(1, "a"), event(2, "a"), event(3, "b")], clock())
    first = w.start()
    assert ids(first) == ["1-0", "3-0"]
    assert w.finished(first[0], Boom()) == 1.0  # backoff: 1 s
    assert w.start() == []  # 2-0 waits behind 1-0
    assert w.to_read() == 0  # one in the handler, one queued
    w.received([], clock())
    assert w.running == 1
    clock.now += 0.5
    assert w.redeliveries() == []
    clock.now += 0.5
    again = redeliver(w)
    assert ids(again) == ["1-0"] and again[0].delivery_count == 2
    w.finished(again[0], None)
    assert ids(w.start()) == ["2-0"]
    assert w.acks(force=True) == ["1-0"]


def test_unordered_windows_keep_no_order_and_ordered_without_key_is_one_key() -> None:
    clock = Clock()
    free = window(clock, keyed=False)
    free.received([event(1), event(2)], clock())
    assert ids(free.start()) == ["1-0", "2-0"]
    whole = window(clock, keyed=False, ordered=True, concurrency=1)
    whole.received([event(1)], clock())
    (first,) = whole.start()
    whole.finished(first, Boom())
    whole.received([event(2)], clock())
    clock.now += 5
    assert ids(redeliver(whole)) == ["1-0"]  # 2-0 never overtakes the failed 1-0


# -- retries and dead letters ------------------------------------------------------------


def test_retry_after_replaces_the_backoff() -> None:
    clock = Clock()
    w = window(clock, policy=RetryPolicy(backoff=100.0, max_backoff=100.0))
    w.received([event(1, "a")], clock())
    (first,) = w.start()
    assert w.finished(first, Retry(after=_dt.timedelta(seconds=2))) == 2.0
    clock.now += 1.999
    assert w.redeliveries() == []
    clock.now += 0.001
    assert w.redeliveries() == ["1-0"]


def test_retry_still_counts_toward_max_deliveries() -> None:
    clock = Clock()
    w = window(clock, policy=RetryPolicy(max_deliveries=2))
    w.received([event(1, "a"), event(2, "a")], clock())
    (first,) = w.start()
    assert w.finished(first, Retry(after=0)) == 0.0
    (second,) = redeliver(w)
    assert second.delivery_count == 2
    assert w.finished(second, Retry(after=0)) is None  # a third delivery would exceed
    assert [(e.id, handed) for e, handed in w.dead_letters()] == [("1-0", 2)]
    assert w.start() == []  # the key waits for the dead letter
    second.acked = True
    w.dead_lettered([second])
    assert ids(w.start()) == ["2-0"]


def test_dead_letter_on_types_die_at_once_and_a_failed_dead_letter_is_retried() -> None:
    clock = Clock()
    w = window(clock, policy=RetryPolicy(dead_letter_on=(Poison,)))
    w.received([event(1, "a"), event(2, "a")], clock())
    (first,) = w.start()
    assert w.finished(first, Poison()) is None
    [(dying, handed)] = w.dead_letters()
    assert handed == 1
    w.dead_lettered([dying])  # its XADD failed: not acked
    assert w.start() == []
    clock.now += 1.0
    assert w.redeliveries() == ["1-0"]


def test_a_redelivery_that_finds_nothing_moves_the_key_on() -> None:
    clock = Clock()
    w = window(clock)
    w.received([event(1, "a"), event(2, "a")], clock())
    (first,) = w.start()
    w.finished(first, Boom())
    clock.now += 1
    due = w.redeliveries()
    assert w.redelivered(due, []) == []  # dead-lettered by prepare, or claimed away
    assert ids(w.start()) == ["2-0"]


def test_a_failed_redelivery_waits_again_without_losing_its_slot_count() -> None:
    clock = Clock()
    w = window(clock, concurrency=1)
    w.received([event(1, "a")], clock())
    (first,) = w.start()
    w.finished(first, Boom())
    clock.now += 1
    assert w.redeliveries() == ["1-0"]
    assert w.running == 1
    w.redelivery_failed(["1-0"])
    assert w.running == 0
    assert w.redeliveries() == ["1-0"]


def test_retry_rejects_a_negative_delay() -> None:
    with pytest.raises(InvalidArgumentError):
        Retry(after=-1)
    assert Retry(after=3).after == 3.0
    assert not isinstance(Retry(), InvalidArgumentError.__mro__[1])  # not a FluxabeeError


# -- acks --------------------------------------------------------------------------------


def test_acks_are_coalesced_for_a_few_milliseconds() -> None:
    clock = Clock()
    w = window(clock, keyed=False)
    w.received([event(1), event(2)], clock())
    a, b = w.start()
    w.finished(a, None)
    assert w.acks() == []
    assert w.wake_in() == pytest.approx(ACK_DELAY)
    clock.now += ACK_DELAY / 2
    w.finished(b, None)
    assert w.acks() == []
    clock.now += ACK_DELAY / 2
    assert w.acks() == ["1-0", "2-0"]
    assert w.acks() == []


def test_many_finished_events_are_acked_at_once_and_failed_acks_come_again() -> None:
    clock = Clock()
    w = window(clock, keyed=False, concurrency=ACK_BATCH)
    w.received([event(i) for i in range(ACK_BATCH)], clock())
    for e in w.start():
        w.finished(e, None)
    sent = w.acks()
    assert len(sent) == ACK_BATCH
    w.ack_failed(sent[:2])
    assert w.acks(force=True) == sent[:2]


def test_an_event_the_handler_acked_itself_is_not_acked_again() -> None:
    clock = Clock()
    w = window(clock, keyed=False)
    w.received([event(1)], clock())
    (e,) = w.start()
    e.acked = True
    w.finished(e, None)
    assert w.acks(force=True) == []


# -- leases ------------------------------------------------------------------------------


def test_every_held_event_is_renewed_every_third_of_min_idle() -> None:
    clock = Clock()
    w = window(clock, concurrency=2, min_idle=3.0)
    w.received([event(1, "a"), event(2, "a"), event(3, "b")], clock())
    running = w.start()
    w.finished(running[1], Boom())  # 3-0 waits for a backoff: still held
    assert w.renewals() == ([], [])
    clock.now += 0.999
    assert w.renewals() == ([], [])
    clock.now += 0.001
    renew, lapsed = w.renewals()
    assert sorted(renew) == ["1-0", "2-0", "3-0"] and lapsed == []
    w.renewed(renew, clock())
    assert w.renewals() == ([], [])  # not due again before another second
    assert w.redeliveries() == ["3-0"]
    assert w.wake_in() == pytest.approx(1.0)


def test_a_lease_not_renewed_within_min_idle_is_reported_once_and_left_alone() -> None:
    clock = Clock()
    w = window(clock, concurrency=2, min_idle=3.0)
    w.received([event(1, "a"), event(2, "b")], clock())
    w.start()
    clock.now += 1.0
    renew, _ = w.renewals()
    w.renewed(["2-0"], clock())  # 1-0's renewal failed (Redis was away)
    clock.now += 2.5
    renew, lapsed = w.renewals()
    assert renew == ["2-0"] and ids(lapsed) == ["1-0"]
    w.renewed(renew, clock())
    clock.now += 1.0
    renew, lapsed = w.renewals()
    assert renew == ["2-0"] and lapsed == []  # reported once


def test_claims_run_every_half_min_idle_and_follow_the_cursor() -> None:
    clock = Clock()
    w = window(clock, concurrency=3, min_idle=4.0, claims=True)
    assert w.to_claim() == 3
    w.claimed("5-0")
    assert w.to_claim() == 3  # the scan goes on
    w.claimed("0-0")
    assert w.to_claim() == 0
    clock.now += 2.0
    assert w.to_claim() == 3


# -- stop --------------------------------------------------------------------------------


def test_stop_hands_back_what_never_started_and_lets_the_handler_finish() -> None:
    clock = Clock()
    w = window(clock, concurrency=3)
    w.received([event(1, "a"), event(2, "a"), event(3, "b"), event(4, "c")], clock())
    one, three, four = w.start()
    w.finished(four, Boom())  # in backoff
    w.received([event(5, "d")], clock())  # ready, never started
    w.stop()
    assert sorted(w.hand_back()) == ["2-0", "4-0", "5-0"]
    assert w.to_read() == 0 and w.start() == [] and w.redeliveries() == []
    w.finished(one, None)
    w.finished(three, Boom())  # failed after the stop: handed back, not retried
    assert w.hand_back() == ["3-0"]
    assert w.acks() == ["1-0"]  # no waiting once stopping
    assert w.idle()
    w.received([event(6, "e")], clock())  # a read that was under way
    assert w.hand_back() == ["6-0"]


def test_a_redelivery_under_way_at_the_stop_is_handed_back() -> None:
    clock = Clock()
    w = window(clock)
    w.received([event(1, "a")], clock())
    (first,) = w.start()
    w.finished(first, Boom())
    clock.now += 1
    due = w.redeliveries()
    w.stop()
    assert w.redelivered(due, [event(1, "a", 2)]) == []
    assert w.hand_back() == ["1-0"]
    assert w.idle()


def test_a_finished_event_counts_as_held_until_its_ack_is_confirmed() -> None:
    clock = Clock()
    w = window(clock, keyed=False)
    w.received([event(1)], clock())
    (e,) = w.start()
    w.finished(e, None)
    assert w.holds("1-0")  # a re-read of own pending now must not hand it again
    sent = w.acks(force=True)
    assert w.holds("1-0")
    w.acked(sent)
    assert not w.holds("1-0")


# -- the Redis steps of the window -------------------------------------------------------


def sent_by(flow: Any, server_has: set[str]) -> list[list[Any]]:
    """The commands ``flow`` sends, Probes answered from ``server_has``, replies ``[1]``."""
    sent: list[list[Any]] = []
    reply: Any = None
    while True:
        try:
            action = flow.send(reply)
        except StopIteration:
            return sent
        if isinstance(action, Probe):
            reply = action.command in server_has
        else:
            sent.extend(list(c) for c in action.commands)
            reply = [1]


def test_hand_back_uses_xnack_where_the_server_has_it_else_xclaim_idle() -> None:
    assert sent_by(hand_back("s", "g", "me", ["1-0", "2-0"], 4000), {"XNACK"}) == [
        [b"XNACK", "s", "g", b"SILENT", b"IDS", 2, "1-0", "2-0"]
    ]
    assert sent_by(hand_back("s", "g", "me", ["1-0"], 4000), set()) == [
        [b"XCLAIM", "s", "g", "me", 0, "1-0", b"IDLE", 9000, b"JUSTID"]
    ]


def test_renewal_is_one_xclaim_justid_of_every_id() -> None:
    assert renew_command("s", "g", "me", ["1-0", "2-0"]) == [
        b"XCLAIM", "s", "g", "me", 0, "1-0", "2-0", b"JUSTID"
    ]  # fmt: skip


def test_a_full_window_does_not_wake_up_for_a_claim_it_cannot_make() -> None:
    clock = Clock()
    w = window(clock, concurrency=1, claims=True)
    w.received([event(1, "a")], clock())
    w.start()
    assert w.to_claim() == 0
    assert w.wake_in() == pytest.approx(1.0)  # the renewal, not the claim due now
