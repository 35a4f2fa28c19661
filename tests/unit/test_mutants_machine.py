"""The consumer machine and its run loop: the gaps a mutation pass found (issue 14,
section 9). Observers hear of every ack, retry, dead letter and claim, with the stream, the
group and the events; the bounded memories stay bounded; messages count right."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from fluxabee import ConsumerLockedError, Observer, RetryPolicy
from fluxabee import _runloop as runloop
from fluxabee._actions import Lease, Send
from fluxabee._observe import Observers
from fluxabee._protocol import Entry
from fluxabee._runloop import counted, log_batch_failure
from fluxabee.errors import BrokerAuthenticationError, reply_error
from fluxabee.event import Event
from tests.unit.machine_driver import GROUP, Clock, drive, entry, machine, name_of, ok_acks


class Poison(Exception):
    pass


class Recorder(Observer):
    """Every call, as ``(hook, stream, group, ...)``; events as their IDs."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def acked(self, stream: str, group: str, count: int) -> None:
        self.calls.append(("acked", stream, group, count))

    def retried(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        self.calls.append(("retried", stream, group, [e.id for e in events]))

    def dead_lettered(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        self.calls.append(("dead_lettered", stream, group, [e.id for e in events]))

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        self.calls.append(("claimed", stream, group, consumer, count))


def observed(**kwargs: Any) -> tuple[Any, Recorder]:
    m = machine(**kwargs)
    recorder = Recorder()
    m.observers = Observers([recorder])
    return m, recorder


def events_of(m: Any, *ids: str, deliveries: int = 1) -> list[Event[Any]]:
    entries = [Entry(i, [b"s", b"\xa1x"], deliveries) for i in ids]
    run = drive(m.triage(entries), lambda send: [])
    assert run.error is None
    return list(run.result)


def redis_of(dead_reply: Any = b"99-0") -> Any:
    """Acks every ID; the redeliver script hands back the IDs asked (a second delivery);
    XADD to the dead letters answers ``dead_reply``."""

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1] * send.count
        first = name_of(send.commands[0])
        if first == "XADD":
            return [dead_reply] * len(send.commands)
        assert first == "EVAL:redeliver"
        call: Any = send.commands[0]
        wanted = [a.decode() if isinstance(a, bytes) else a for a in call.args[4:]]
        return [[1, [entry(i) for i in wanted], [2] * len(wanted)]]

    return redis


# -- poison isolation ----------------------------------------------------------------------


def test_an_event_dead_lettered_at_once_during_isolation_does_not_stop_the_others() -> None:
    m = machine(policy=RetryPolicy(max_deliveries=5, dead_letter_on=(Poison,)))

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Poison() if any(e.id == "1-0" for e in events) else None

    run = drive(m.deliver(events_of(m, "1-0", "2-0", "3-0")), redis_of(), handler)
    assert run.error is None and run.result == 2
    assert run.hands() == [["1-0", "2-0", "3-0"], ["1-0"], ["2-0"], ["3-0"]]


def test_consumer_single_keeps_the_events_behind_a_failing_one_waiting_in_order() -> None:
    clock = Clock()
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m, recorder = observed(clock=clock, lease=lease, policy=RetryPolicy(max_deliveries=5))
    lease.confirmed(clock.now)

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Poison() if any(e.id == "2-0" for e in events) else None

    run = drive(m.deliver(events_of(m, "1-0", "2-0", "3-0")), redis_of(), handler)
    assert run.error is None and run.result == 1
    assert run.hands() == [["1-0", "2-0", "3-0"], ["1-0"], ["2-0"]]  # 3-0 waits behind 2-0
    assert recorder.calls[-1] == ("retried", "s", GROUP, ["2-0", "3-0"])
    assert len(run.pauses()) == 1


# -- observers ----------------------------------------------------------------------------


def test_a_handed_over_batch_is_observed_as_acked_with_its_stream_and_group() -> None:
    m, recorder = observed()
    run = drive(m.hand_over(events_of(m, "1-0", "2-0")), ok_acks)  # type: ignore[arg-type]
    assert run.error is None
    assert recorder.calls == [("acked", "s", GROUP, 2)]


def test_event_ack_acks_its_id_once_and_is_observed() -> None:
    m, recorder = observed()
    (event,) = events_of(m, "1-0")
    run = drive(m.ack_event(event), ok_acks)  # type: ignore[arg-type]
    assert run.sent() == ["XACK+XDEL"] and event.acked is True
    assert recorder.calls == [("acked", "s", GROUP, 1)]
    again = drive(m.ack_event(event), ok_acks)  # type: ignore[arg-type]
    assert again.sent() == [] and len(recorder.calls) == 1


def test_dead_letters_are_observed_and_logged_with_their_deliveries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m, recorder = observed()
    events = events_of(m, "1-0", "2-0")
    with caplog.at_level(logging.WARNING, logger="fluxabee"):
        run = drive(m.dead_letter(events, handed=[2, 1]), redis_of())
    assert run.error is None and all(e.acked for e in events)
    assert recorder.calls == [("dead_lettered", "s", GROUP, ["1-0", "2-0"])]
    assert [r.getMessage() for r in caplog.records] == [
        "event 1-0 of s moved to dead letters after 2 deliveries",
        "event 2-0 of s moved to dead letters after 1 delivery",
    ]


@pytest.mark.parametrize(("ids", "said"), [(["1-0"], "1 event"), (["1-0", "2-0"], "2 events")])
def test_a_dead_letter_that_failed_says_how_many_stay_pending(ids: list[str], said: str) -> None:
    m, recorder = observed()
    run = drive(
        m.dead_letter(events_of(m, *ids), handed=[1] * len(ids)),
        redis_of(reply_error("OOM command not allowed")),
    )
    assert str(run.error).startswith(f"could not dead-letter {said} of 's' (failed ones stay")
    assert recorder.calls == []


def test_counted_says_one_thing_or_many() -> None:
    assert counted(1, "event", "events") == "1 event"
    assert counted(0, "event", "events") == "0 events"
    assert counted(3, "delivery", "deliveries") == "3 deliveries"


def test_each_retry_is_observed_with_its_events_the_lone_ones_and_what_still_fails() -> None:
    m, recorder = observed(policy=RetryPolicy(max_deliveries=5))
    m.pending_due = 0.0

    def handler(events: list[Event[Any]]) -> BaseException | None:
        return Poison() if any(e.id == "1-0" for e in events) else None

    run = drive(m.deliver(events_of(m, "1-0", "2-0", "3-0")), redis_of(), handler)
    assert run.error is None and run.result == 2
    assert recorder.calls == [
        ("retried", "s", GROUP, ["1-0"]),  # each handed over alone ...
        ("retried", "s", GROUP, ["2-0"]),
        ("acked", "s", GROUP, 1),
        ("retried", "s", GROUP, ["3-0"]),
        ("acked", "s", GROUP, 1),
        ("retried", "s", GROUP, ["1-0"]),  # ... and what still fails waits for its backoff
    ]
    assert m.pending_due > 1000.0


def test_claimed_live_entries_are_observed_with_the_consumer() -> None:
    m, recorder = observed()
    m.group_ready = True

    def redis(send: Send) -> list[Any]:
        first = name_of(send.commands[0])
        if first == "XAUTOCLAIM":
            return [[b"0-0", [entry("5-0"), entry("6-0")], []]]
        assert first == "XPENDING" and send.retry_safe
        return [[[b"5-0", b"consumer-1", 5, 3], [b"6-0", b"consumer-1", 5, 2]]]

    run = drive(m.claim(10, 1000, "0-0"), redis)
    assert run.error is None
    entries, _ = run.result
    assert [(e.id, e.deliveries) for e in entries] == [("5-0", 3), ("6-0", 2)]
    assert recorder.calls == [("claimed", "s", GROUP, "consumer-1", 2)]


# -- a vanished group -----------------------------------------------------------------------


def test_a_claim_or_redelivery_in_a_vanished_group_ends_with_nothing() -> None:
    m = machine()
    m.group_ready = True

    def gone(send: Send) -> list[Any]:
        return [reply_error("NOGROUP No such key 's' or consumer group")]

    claim = drive(m.claim(10, 1000, "5-0"), gone)
    assert claim.error is None and claim.result == ([], "0-0")
    assert m.group_ready is False
    again = drive(m.redeliver(["1-0"]), gone)
    assert again.error is None and again.result == []


def test_claim_stale_goes_on_from_each_cursor_and_adds_up_every_round() -> None:
    m = machine()
    m.group_ready = True
    starts: list[str] = []
    rounds = iter([(b"7-0", "5-0"), (b"0-0", "8-0")])

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1] * send.count
        command: Any = send.commands[0]
        if name_of(command) == "XAUTOCLAIM":
            starts.append(command[5].decode() if isinstance(command[5], bytes) else command[5])
            cursor, entry_id = next(rounds)
            return [[cursor, [entry(entry_id)], []]]
        entry_id = command[3].decode() if isinstance(command[3], bytes) else command[3]
        return [[[entry_id.encode(), b"consumer-1", 5, 2]]]

    run = drive(m.claim_stale(10, 1000, lambda: False), redis)
    assert run.error is None and run.result == 2
    assert starts == ["0-0", "7-0"]


# -- acks forget what failures left behind ---------------------------------------------------


def test_an_ack_forgets_the_error_the_trace_and_the_excuse_of_its_events() -> None:
    m = machine()
    m.errors["1-0"] = m.errors["2-0"] = "E"
    m.traced["1-0"] = m.traced["2-0"] = None
    m.excused["1-0"] = m.excused["2-0"] = 1
    drive(m.ack(["1-0"]), ok_acks)  # type: ignore[arg-type]
    assert (list(m.errors), list(m.traced), list(m.excused)) == (["2-0"], ["2-0"], ["2-0"])
    m.errors.clear()
    m.traced.clear()
    drive(m.ack(["2-0"]), ok_acks)  # type: ignore[arg-type]
    assert m.excused == {}


def test_split_batches_excuse_each_delivery_and_memories_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = machine()
    events = events_of(m, "1-0", "2-0")
    m._excuse(events)
    m._excuse(events[:1])
    assert m.excused == {"1-0": 2, "2-0": 1}
    monkeypatch.setattr(runloop, "MAX_REMEMBERED_ERRORS", 2)
    m._excuse(events_of(m, "3-0"))
    assert m.excused == {"2-0": 1, "3-0": 1}
    for event in events_of(m, "1-0", "2-0", "3-0"):
        m.log_event_failure(event, Poison())
    assert list(m.traced) == ["2-0", "3-0"]


# -- consumer_single -------------------------------------------------------------------------


def test_a_hand_over_after_the_lock_lapsed_raises_and_rereads_own_pending_first() -> None:
    clock = Clock()
    lease = Lease("{s}:lock", 10.0, clock=clock, token="me")
    m = machine(clock=clock, lease=lease)
    events = events_of(m, "1-0")
    m.pending_first = False
    run = drive(m.hand_over(events), ok_acks)  # type: ignore[arg-type]
    assert isinstance(run.error, ConsumerLockedError)
    assert str(run.error) == "the consumer_single lock of 's' lapsed before the hand-over"
    assert m.pending_first is True and run.hands() == []


# -- the log -----------------------------------------------------------------------------


def test_a_failed_batch_is_one_line_naming_the_stream_the_first_twenty_ids_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = machine()
    with caplog.at_level(logging.ERROR, logger="fluxabee"):
        log_batch_failure("s", events_of(m, *(f"{n}-0" for n in range(1, 21))), Poison("p"))
        log_batch_failure("s", events_of(m, *(f"{n}-0" for n in range(1, 22))), Poison("p"))
    twenty = ", ".join(f"{n}-0" for n in range(1, 21))
    assert [r.getMessage() for r in caplog.records] == [
        f"handler failed on a batch of 20 events of s (ids {twenty}): Poison('p'); "
        "handing each over alone",
        f"handler failed on a batch of 21 events of s (ids {twenty} ...): Poison('p'); "
        "handing each over alone",
    ]


def test_a_lone_event_that_fails_is_logged_with_its_error_and_traceback_a_batch_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = machine(policy=RetryPolicy(max_deliveries=5))
    error = Poison("p")
    with caplog.at_level(logging.ERROR, logger="fluxabee"):
        drive(m.deliver(events_of(m, "1-0")), redis_of(), lambda events: error)
    (record,) = caplog.records
    assert record.getMessage() == "handler failed on event 1-0 of s (delivery 1): Poison('p')"
    assert record.exc_info is not None and record.exc_info[1] is error
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="fluxabee"):
        drive(m.deliver(events_of(m, "2-0", "3-0")), redis_of(), lambda events: error)
    assert caplog.records[0].getMessage() == (
        "handler failed on a batch of 2 events of s (ids 2-0, 3-0): Poison('p'); "
        "handing each over alone"
    )
    assert [r.getMessage().split(" (")[0] for r in caplog.records[1:]] == [
        "handler failed on event 2-0 of s",
        "handler failed on event 3-0 of s",
    ]


# -- run ---------------------------------------------------------------------------------


def test_run_raises_refused_credentials_at_once_instead_of_waiting_them_out() -> None:
    m = machine()

    def refused(send: Send) -> list[Any]:
        raise BrokerAuthenticationError("WRONGPASS invalid username-password pair")

    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    run = drive(
        m.run(10, 100, 1000, lambda: len(waits) >= 3),  # a retry loop would stop here
        refused,
        on_pause=wait,
    )
    assert isinstance(run.error, BrokerAuthenticationError) and waits == []


@pytest.mark.parametrize(
    ("min_idle_ms", "step", "until", "claims"),
    [
        (10_000, 4.999, 1012.0, [1000.0, 1009.998]),  # every min_idle / 2 (5 s)
        (10, 0.02, 1000.05, [1000.0, 1000.02, 1000.04]),  # but at most every 10 ms
    ],
)
def test_run_claims_every_half_min_idle_and_at_most_every_10_ms(
    min_idle_ms: int, step: float, until: float, claims: list[float]
) -> None:
    """Each round of ``run`` reads twice here (its own pending entries, then new ones):
    ``step`` seconds a round."""
    clock = Clock(1000.0)
    m = machine(clock=clock)
    claimed: list[float] = []

    def redis(send: Send) -> list[Any]:
        first = name_of(send.commands[0])
        if first == "XAUTOCLAIM":
            claimed.append(round(clock.now, 3))
            return [[b"0-0", [], []]]
        if first == "XREADGROUP":
            clock.now += step / 2
            return [None]
        return [b"OK"] * len(send.commands)

    run = drive(m.run(10, 100, min_idle_ms, lambda: clock.now >= until), redis)
    assert run.error is None
    assert claimed == claims
