"""Retention rules: the gaps a mutation pass found (issue 14, section 9)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxabee import Stream
from fluxabee._actions import Send
from fluxabee._constants import RETENTION_WARNING_INTERVAL
from fluxabee._retention import (
    AckMode,
    GroupPosition,
    Retainer,
    StreamState,
    TrimPlan,
    over_cap,
    plan_trim,
    trim,
    unknown_command,
)
from fluxabee.errors import reply_error
from tests.unit.machine_driver import Clock, drive, name_of

FULL_ONE = [
    b"length", 4, b"entries", [[b"100-0", [b"s", b"0"]]],
    b"groups", [[b"name", b"a", b"last-delivered-id", b"100-1", b"pending", []]],
]  # fmt: skip


def redis_of(full: Any, after: list[Any], time: list[bytes]) -> Any:
    """Redis for a trim: groups exist, ``TIME`` and ``XINFO STREAM`` answer ``time`` and
    ``full``, the second round trip answers ``after``."""

    def redis(send: Send) -> list[Any]:
        names = [name_of(c) for c in send.commands]
        if names[0] == "XGROUP":
            return [b"OK"] * names.count("XGROUP") + [time, full]
        return after

    return redis


def sends(run: Any) -> list[Send]:
    return [a for a in run.actions if isinstance(a, Send)]


def test_only_an_unknown_command_reply_counts_as_a_lost_xackdel() -> None:
    assert unknown_command(reply_error("ERR unknown command 'XACKDEL'"))
    assert not unknown_command(reply_error("NOGROUP No such key 's' or consumer group 'a'"))
    assert not unknown_command([1])


def test_a_plan_without_a_safe_minid_has_no_holders_and_one_at_the_first_entry_cuts_nothing() -> (
    None
):
    assert plan_trim(StreamState(3, "1-0", ()), ["a"]) == TrimPlan(None, ())
    at_first = StreamState(3, "5-0", (GroupPosition("a", "0-0", "5-0"),))
    assert plan_trim(at_first, ["a"]) == TrimPlan(None, ("a",))


def test_the_age_cap_is_over_only_past_the_limit() -> None:
    capped = Stream("s", max_age=60)
    assert over_cap(capped, 1, "1000-0", 61_000.0) is None
    assert over_cap(capped, 1, "1000-0", 61_050.0) == "oldest entry 60 s old > max_age 60 s"


def test_a_trim_reads_the_servers_time_to_the_microsecond_for_the_age_cap() -> None:
    capped = Stream("s", groups=["a"], max_age=60)
    # TIME: 1700000000 s + 999500 us = 1700000000999.5 ms; the first entry is 60.0005 s older.
    first = f"{1_700_000_000_000 - 59_001}-0".encode()
    full = [b"length", 4, b"entries", [[first, [b"s", b"0"]]],
            b"groups", [[b"name", b"a", b"last-delivered-id", b"0-0", b"pending", []]]]  # fmt: skip
    run = drive(
        trim(capped, acked_guard=False),
        redis_of(full, [], [b"1700000000", b"999500"]),
        group="a",
        groups=("a",),
    )
    assert run.error is None
    assert run.result.over_cap == "oldest entry 60 s old > max_age 60 s"
    older = [b"1700000000", b"998000"]  # 1.5 ms earlier: 59.999 s
    run = drive(trim(capped, acked_guard=False), redis_of(full, [], older), groups=("a",))
    assert run.result.over_cap is None


def test_a_capped_trim_takes_the_length_and_first_entry_from_after_the_cut() -> None:
    capped = Stream("s", groups=["a"], max_len=100, max_age=60)
    time = [b"1700000000", b"0"]
    after = [1, 9, [[b"1699999000000-0", [b"s", b"0"]]]]  # 9: new events came meanwhile
    run = drive(trim(capped, acked_guard=False), redis_of(FULL_ONE, after, time), groups=("a",))
    assert run.error is None
    assert (run.result.removed, run.result.length) == (1, 9)
    assert run.result.over_cap == "oldest entry 1000 s old > max_age 60 s"
    emptied = [1, 0, []]
    run = drive(trim(capped, acked_guard=False), redis_of(FULL_ONE, emptied, time), groups=("a",))
    assert run.error is None
    assert (run.result.length, run.result.over_cap) == (0, None)


def test_an_uncapped_trim_works_out_the_length_left() -> None:
    time = [b"1700000000", b"0"]
    run = drive(
        trim(Stream("s", groups=["a"]), acked_guard=False),
        redis_of(FULL_ONE, [1], time),
        groups=("a",),
    )
    assert (run.result.removed, run.result.length) == (1, 3)
    whole = [b"length", 1, *FULL_ONE[2:]]
    run = drive(
        trim(Stream("s", groups=["a"]), acked_guard=False),
        redis_of(whole, [1], time),
        groups=("a",),
    )
    assert (run.result.removed, run.result.length) == (1, 0)


def test_a_trim_of_a_missing_stream_reports_an_empty_stream_and_no_holders() -> None:
    missing = reply_error("ERR no such key")
    nokey = reply_error("ERR The XGROUP subcommand requires the key to exist.")

    def redis(send: Send) -> list[Any]:
        return [nokey, [b"1700000000", b"0"], missing]

    run = drive(trim(Stream("s", groups=["a"]), acked_guard=False), redis, groups=("a",))
    assert tuple(run.result) == (0, 0, None, (), None)


def test_every_round_trip_of_retention_is_marked_safe_to_send_again() -> None:
    time = [b"1700000000", b"0"]
    capped = Stream("s", groups=["a"], max_len=100)
    run = drive(
        trim(capped, acked_guard=False), redis_of(FULL_ONE, [1, 3, []], time), groups=("a",)
    )
    assert len(sends(run)) == 2 and all(s.retry_safe for s in sends(run))
    retainer = Retainer(Stream("s"), clock=Clock())
    run = drive(
        retainer.ack("consumer_group", ["1-0"]),
        lambda send: [1] * send.count if send.packed else [[]],
        others=None,
    )
    assert run.sent() == ["XINFO", "XACK+XDEL"]
    assert all(s.retry_safe for s in sends(run))


def test_after_xackdel_is_lost_a_stream_with_undeclared_groups_still_never_deletes() -> None:
    clock = Clock(1000.0)
    retainer = Retainer(Stream("s"), clock=clock)
    groups = [[b"name", b"consumer_group"], [b"name", b"audit"]]
    lost = reply_error("ERR unknown command 'XACKDEL', with args beginning with: ")
    acks: Any = iter([[lost], [1]])

    def redis(send: Send) -> list[Any]:
        return next(acks) if send.packed else [groups]

    run = drive(
        retainer.ack("consumer_group", ["1-0"]), redis, others=None, commands=frozenset({"XACKDEL"})
    )
    assert run.error is None
    assert run.sent() == ["XINFO", "PROBE:XACKDEL", "XACKDEL", "XACK"]
    assert sends(run)[-1].retry_safe
    assert retainer.mode is AckMode.XACK and retainer.others == ("audit",)
    # The next ack looks for groups again at once (the clock has not moved).
    run = drive(retainer.ack("consumer_group", ["2-0"]), lambda s: [1] if s.packed else [groups],
                others=None)  # fmt: skip
    assert run.sent() == ["XINFO", "XACK"]


def test_acks_add_up_until_a_trim_and_a_trim_starts_the_count_again() -> None:
    retainer = Retainer(Stream("s", retention="trim"))
    drive(retainer.ack("consumer_group", ["1-0", "2-0"]), lambda s: [2])
    drive(retainer.ack("consumer_group", ["3-0"]), lambda s: [1])
    assert retainer.acked == 3
    drive(retainer.maintain(1000.0), redis_of(FULL_ONE, [1], [b"1700000000", b"0"]))
    assert retainer.acked == 0


def test_a_retainer_that_has_acked_nothing_has_no_trim_due() -> None:
    retainer = Retainer(Stream("s", groups=["a"], retention="trim"))
    run = drive(retainer.trim_now(), redis_of(FULL_ONE, [1], [b"1700000000", b"0"]), groups=("a",))
    assert run.error is None and run.result.removed == 1
    assert retainer.mode is AckMode.XACK
    assert not retainer.due(10**9)


def test_trims_add_acked_only_on_a_server_with_xackdel() -> None:
    time = [b"1700000000", b"0"]
    two = Stream("s", groups=["a", "b"], retention="trim")
    positions: list[Any] = [
        [b"name", g, b"last-delivered-id", b"100-1", b"pending", []] for g in (b"a", b"b")
    ]
    full = [b"length", 4, b"entries", [[b"100-0", [b"s", b"0"]]], b"groups", positions]
    plain = Retainer(Stream("s", groups=["a"], retention="trim"))
    run = drive(plain.trim_now(), redis_of(FULL_ONE, [1], time), groups=("a",))
    assert sends(run)[-1].commands == [[b"XTRIM", "s", b"MINID", "100-2"]]
    guarded = Retainer(two)
    run = drive(guarded.trim_now(), redis_of(full, [1], time), groups=("a", "b"),
                commands=frozenset({"XACKDEL"}))  # fmt: skip
    assert sends(run)[-1].commands == [[b"XTRIM", "s", b"MINID", "100-2", b"ACKED"]]
    guarded.acked = 1
    run = drive(guarded.maintain(1000.0), redis_of(full, [1], time), groups=("a", "b"))
    assert sends(run)[-1].commands == [[b"XTRIM", "s", b"MINID", "100-2", b"ACKED"]]


def test_a_warning_is_logged_again_once_the_interval_has_passed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fluxabee")
    retainer = Retainer(Stream("s"))
    retainer.warn(1000.0, "one")
    retainer.warn(1000.0 + RETENTION_WARNING_INTERVAL - 0.5, "muted")
    retainer.warn(1000.0 + RETENTION_WARNING_INTERVAL, "two")
    assert [r.getMessage() for r in caplog.records] == ["one", "two"]
