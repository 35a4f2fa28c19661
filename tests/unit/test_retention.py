"""The retention rules, without Redis: ack modes, the safe MINID, trims, caps, schedules,
replays to one group. Replies are the raw RESP2 shapes real servers gave (6.2, 7.0+)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fluxabee import BrokerConnectionError, NoGroupError, Stream
from fluxabee._actions import Send
from fluxabee._constants import (
    CAP_CHECK_INTERVAL,
    GROUP_CHECK_INTERVAL,
    TRIM_AFTER_ACKS,
    TRIM_INTERVAL,
)
from fluxabee._retention import (
    AckMode,
    GroupPosition,
    Retainer,
    StreamState,
    TrimPlan,
    ack_mode,
    handled_here,
    id_key,
    next_id,
    over_cap,
    parse_stream_full,
    plan_trim,
    replay_fields,
    safe_minid,
    trim,
)
from fluxabee.errors import reply_error
from tests.unit.machine_driver import Clock, drive, name_of

TWO = Stream("s", groups=["a", "b"])

# XINFO STREAM s FULL COUNT 1 as Redis 6.2 answered it (no entries-read / lag) ...
FULL_62 = [
    b"length", 6, b"radix-tree-keys", 1, b"radix-tree-nodes", 2,
    b"last-generated-id", b"100-5",
    b"entries", [[b"100-0", [b"s", b"0"]]],
    b"groups", [
        [b"name", b"a", b"last-delivered-id", b"100-3", b"pel-count", 3,
         b"pending", [[b"100-1", b"c1", 1796146243586, 1]],
         b"consumers", [[b"name", b"c1", b"seen-time", 1, b"pel-count", 3,
                         b"pending", [[b"100-1", 1, 1]]]]],
        [b"name", b"b", b"last-delivered-id", b"100-1", b"pel-count", 0,
         b"pending", [], b"consumers", []],
    ],
]  # fmt: skip
# ... and Redis 7.0+ / Valkey (entries-read, lag, max-deleted-entry-id).
FULL_7 = [
    b"length", 0, b"radix-tree-keys", 0, b"radix-tree-nodes", 1,
    b"last-generated-id", b"100-5", b"max-deleted-entry-id", b"100-5", b"entries-added", 6,
    b"recorded-first-entry-id", b"0-0", b"entries", [],
    b"groups", [
        [b"name", b"a", b"last-delivered-id", b"100-5", b"entries-read", 6, b"lag", 0,
         b"pel-count", 0, b"pending", [], b"consumers", []],
    ],
]  # fmt: skip


def names(send: Send) -> list[str]:
    return [name_of(c) for c in send.commands]


# -- ack modes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "xackdel", "mode"),
    [
        (Stream("s"), False, AckMode.XDEL),
        (Stream("s"), True, AckMode.XDEL),  # one group: FluxaORM's XACK + XDEL everywhere
        (TWO, True, AckMode.XACKDEL),
        (TWO, False, AckMode.XACK),
        (Stream("s", retention="trim"), False, AckMode.XACK),
        (Stream("s", groups=["a", "b"], retention="trim"), True, AckMode.XACK),
    ],
)
def test_the_ack_mode_follows_groups_retention_and_the_servers_features(
    stream: Stream, xackdel: bool, mode: AckMode
) -> None:
    assert ack_mode(stream, xackdel) is mode


@pytest.mark.parametrize(("xackdel", "mode"), [(False, AckMode.XACK), (True, AckMode.XACKDEL)])
def test_a_group_found_in_redis_but_not_declared_stops_one_group_acks_deleting(
    xackdel: bool, mode: AckMode
) -> None:
    assert ack_mode(Stream("s"), xackdel, others=("audit",)) is mode
    assert ack_mode(Stream("s", retention="trim"), xackdel, others=("audit",)) is AckMode.XACK


# -- the safe MINID ------------------------------------------------------------------------


def test_next_id_is_the_smallest_id_after() -> None:
    assert next_id("5-2") == "5-3"
    assert next_id("0-0") == "0-1"
    assert next_id(f"5-{2**64 - 1}") == "6-0"


def test_the_full_reply_of_6_2_and_7_parse_to_positions() -> None:
    state = parse_stream_full(FULL_62)
    assert state == StreamState(
        6, "100-0", (GroupPosition("a", "100-3", "100-1"), GroupPosition("b", "100-1", None))
    )
    assert parse_stream_full(FULL_7) == StreamState(0, None, (GroupPosition("a", "100-5", None),))


def test_the_safe_minid_is_the_oldest_entry_some_group_still_needs() -> None:
    state = parse_stream_full(FULL_62)
    # a needs 100-1 (pending); b has nothing pending and needs what follows 100-1: 100-2.
    assert safe_minid(state, ("a", "b")) == "100-1"
    caught_up = StreamState(
        6, "100-0", (GroupPosition("a", "100-3", None), GroupPosition("b", "100-1", None))
    )
    assert safe_minid(caught_up, ("a", "b")) == "100-2"


def test_a_new_group_at_zero_holds_everything_and_a_missing_one_blocks_any_trim() -> None:
    fresh = StreamState(
        6, "100-0", (GroupPosition("a", "100-5", None), GroupPosition("b", "0-0", None))
    )
    assert safe_minid(fresh, ("a", "b")) == "0-1"  # trims nothing
    assert plan_trim(fresh, ("a", "b")).minid is None
    only_a = StreamState(6, "100-0", (GroupPosition("a", "100-5", None),))
    assert safe_minid(only_a, ("a", "b")) is None  # b does not exist: it would miss events
    assert safe_minid(StreamState(6, "100-0", ()), ("consumer_group",)) is None


def test_a_group_that_exists_but_is_not_declared_holds_entries_back_too() -> None:
    state = StreamState(
        6, "100-0", (GroupPosition("a", "100-5", None), GroupPosition("legacy", "100-2", None))
    )
    plan = plan_trim(state, ("a",))
    assert plan.minid == "100-3"
    assert plan.holders == ("legacy",)


def test_ids_compare_as_numbers_never_as_strings() -> None:
    # "99-0" < "100-0" as IDs, though not as strings: a string comparison would pick the
    # wrong oldest need and refuse (or allow) the wrong trims.
    assert id_key("99-0") < id_key("100-0") and id_key("100-9") < id_key("100-10")
    state = StreamState(
        9, "98-0", (GroupPosition("a", "98-9", "99-0"), GroupPosition("b", "100-0", "100-0"))
    )
    assert safe_minid(state, ("a", "b")) == "99-0"
    assert plan_trim(state, ("a", "b")) == TrimPlan("99-0", ("a",))
    behind = StreamState(9, "99-5", (GroupPosition("a", "100-1", "100-0"),))
    assert plan_trim(behind, ("a",)).minid == "100-0"  # the first entry 99-5 is below it
    seq = StreamState(9, "100-9", (GroupPosition("a", "100-10", "100-10"),))
    assert plan_trim(seq, ("a",)).minid == "100-10"


def test_caps_are_reported_never_used_to_cut() -> None:
    capped = Stream("s", max_len=3, max_age=60)
    assert over_cap(capped, 3, "1000-0", 2000.0) is None
    assert over_cap(capped, 4, "1000-0", 2000.0) == "length 4 > max_len 3"
    assert over_cap(capped, 1, "1000-0", 62_000.0) == "oldest entry 61 s old > max_age 60 s"
    assert over_cap(capped, 0, None, 62_000.0) is None
    assert over_cap(Stream("s"), 10**9, "0-1", 10**15) is None


# -- the trim flow -------------------------------------------------------------------------


def _trim_redis(full: Any, *after: Any, creates: Any = b"OK") -> Any:
    def redis(send: Send) -> list[Any]:
        if names(send)[0] == "XGROUP":
            count = names(send).count("XGROUP")
            return [creates] * count + [[b"1700000000", b"0"], full]
        return list(after)

    return redis


def test_a_trim_creates_every_group_without_mkstream_then_trims_exactly() -> None:
    busy = reply_error("BUSYGROUP Consumer Group name already exists")
    run = drive(
        trim(TWO, acked_guard=False), _trim_redis(FULL_62, 1, creates=busy), groups=("a", "b")
    )
    assert run.error is None
    first, second = (a for a in run.actions if isinstance(a, Send))
    assert names(first) == ["XGROUP", "XGROUP", "TIME", "XINFO"]
    assert all(b"MKSTREAM" not in c for c in first.commands[:2])  # never creates the stream
    assert second.commands == [[b"XTRIM", "s", b"MINID", "100-1"]]  # exact: no "~"
    assert run.result.removed == 1 and run.result.minid == "100-1"
    assert run.result.holders == ("a",)


def test_a_trim_adds_acked_as_a_guard_and_checks_caps_after_cutting() -> None:
    capped = Stream("s", groups=["a", "b"], max_len=2)
    run = drive(
        trim(capped, acked_guard=True),
        _trim_redis(FULL_62, 1, 5, [[b"100-1", [b"s", b"1"]]]),
        groups=("a", "b"),
    )
    sends = [a for a in run.actions if isinstance(a, Send)]
    assert sends[1].commands[0] == [b"XTRIM", "s", b"MINID", "100-1", b"ACKED"]
    assert names(sends[1])[1:] == ["XLEN", "XRANGE"]
    assert run.result.length == 5
    assert run.result.over_cap == "length 5 > max_len 2"


def test_a_trim_of_a_missing_stream_removes_nothing_and_sends_no_xtrim() -> None:
    missing = reply_error("ERR no such key")
    nokey = reply_error("ERR The XGROUP subcommand requires the key to exist.")
    run = drive(
        trim(TWO, acked_guard=False), _trim_redis(missing, creates=nokey), groups=("a", "b")
    )
    assert run.error is None and run.result.removed == 0
    assert run.sent() == ["XGROUP", "XGROUP", "TIME", "XINFO"]


def test_a_trim_with_nothing_below_the_safe_minid_sends_no_xtrim() -> None:
    run = drive(
        trim(Stream("s", groups=["a"]), acked_guard=False), _trim_redis(FULL_7), groups=("a",)
    )
    assert run.sent() == ["XGROUP", "TIME", "XINFO"]
    assert run.result.removed == 0


def test_a_trim_raises_other_errors_of_group_creation() -> None:
    wrong = reply_error("WRONGTYPE Operation against a key holding the wrong kind of value")
    run = drive(
        trim(TWO, acked_guard=False), _trim_redis(FULL_62, creates=wrong), groups=("a", "b")
    )
    assert run.error is not None and "WRONGTYPE" in str(run.error)


# -- acking and the schedule of one consumer -----------------------------------------------


def _acks(reply: list[Any]) -> Any:
    return lambda send: reply


def test_one_group_acks_with_xack_and_xdel_without_asking_the_server() -> None:
    retainer = Retainer(Stream("s"))
    run = drive(retainer.ack("consumer_group", ["1-0"]), _acks([1, 1]))
    assert run.sent() == ["XACK+XDEL"]
    assert retainer.mode is AckMode.XDEL


def test_several_groups_probe_once_then_ack_with_xackdel_where_the_server_has_it() -> None:
    retainer = Retainer(TWO)
    run = drive(
        retainer.ack("a", ["1-0"]),
        _acks([[2]]),
        commands=frozenset({"XACKDEL"}),
        group="a",
        groups=("a", "b"),
    )
    assert run.sent() == ["PROBE:XACKDEL", "XACKDEL"]
    again = drive(retainer.ack("a", ["2-0"]), _acks([[1]]), group="a", groups=("a", "b"))
    assert again.sent() == ["XACKDEL"]  # asked once
    older = Retainer(TWO)
    run = drive(older.ack("a", ["1-0"]), _acks([1]), group="a", groups=("a", "b"))
    assert run.sent() == ["PROBE:XACKDEL", "XACK"]


def test_a_server_that_lost_xackdel_is_acked_with_xack_from_then_on() -> None:
    retainer = Retainer(TWO)
    replies = iter(
        [[reply_error("ERR unknown command 'XACKDEL', with args beginning with: ")], [1]]
    )
    run = drive(
        retainer.ack("a", ["1-0"]),
        lambda send: next(replies),
        commands=frozenset({"XACKDEL"}),
        group="a",
        groups=("a", "b"),
    )
    assert run.error is None
    assert run.sent() == ["PROBE:XACKDEL", "XACKDEL", "XACK"]
    assert retainer.mode is AckMode.XACK and not retainer.xackdel


def test_an_ack_error_other_than_an_unknown_command_raises() -> None:
    retainer = Retainer(Stream("s"))
    run = drive(retainer.ack("consumer_group", ["1-0"]), _acks([reply_error("NOGROUP gone"), 0]))
    assert isinstance(run.error, NoGroupError)


# -- groups the config does not declare (a rolling deploy added one) ------------------------


class Groups:
    """Redis for a retainer: ``XINFO GROUPS`` lists ``found`` (or raises ``error``), acks
    succeed; the test moves the clock."""

    def __init__(self, *found: str) -> None:
        self.found = list(found)
        self.error: Any = None

    def __call__(self, send: Send) -> list[Any]:
        if send.packed:
            return [1] * send.count
        assert names(send) == ["XINFO"] and send.commands[0][1] == b"GROUPS"
        if self.error is not None:
            return [self.error]
        return [[[b"name", g.encode(), b"consumers", 0] for g in self.found]]


def test_a_one_group_stream_looks_for_other_groups_at_its_first_ack_and_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fluxabee")
    clock = Clock(1000.0)
    retainer = Retainer(Stream("s"), clock=clock)
    redis = Groups("consumer_group")

    def ack(entry_id: str) -> list[str]:
        run = drive(retainer.ack("consumer_group", [entry_id]), redis, others=None)
        assert run.error is None
        return run.sent()

    assert ack("1-0") == ["XINFO", "XACK+XDEL"]  # looks first: nothing else, so it deletes
    clock.now = 1000.0 + GROUP_CHECK_INTERVAL - 0.5
    assert ack("2-0") == ["XACK+XDEL"]
    redis.found.append("audit")  # a newer deploy (or a Go service) added a group
    clock.now = 1000.0 + GROUP_CHECK_INTERVAL
    assert ack("3-0") == ["XINFO", "PROBE:XACKDEL", "XACK"]  # no longer deletes
    assert retainer.mode is AckMode.XACK and retainer.others == ("audit",)
    assert retainer.due(clock.now)  # what every group acked is trimmed instead
    assert [r.getMessage() for r in caplog.records] == [
        "stream s has groups its config does not declare (audit): acks no longer "
        "delete entries, trims remove what every group acked; declare them, or XGROUP "
        "DESTROY them once they are gone for good"
    ]
    clock.now += GROUP_CHECK_INTERVAL
    assert ack("4-0") == ["XINFO", "XACK"]  # still there: said once
    assert len(caplog.records) == 1
    redis.found.remove("audit")  # destroyed
    clock.now += GROUP_CHECK_INTERVAL
    assert ack("5-0") == ["XINFO", "XACK+XDEL"]
    assert "no undeclared groups any more" in caplog.records[-1].getMessage()


def test_other_groups_on_a_server_with_xackdel_are_acked_with_xackdel() -> None:
    retainer = Retainer(Stream("s"), clock=Clock())
    run = drive(
        retainer.ack("consumer_group", ["1-0"]),
        Groups("consumer_group", "audit"),
        others=None,
        commands=frozenset({"XACKDEL"}),
    )
    assert run.sent() == ["XINFO", "PROBE:XACKDEL", "XACKDEL"]
    assert retainer.xackdel  # and trims add ACKED


def test_a_missing_stream_has_no_other_groups_and_other_check_errors_raise() -> None:
    retainer = Retainer(Stream("s"), clock=Clock())
    redis = Groups()
    redis.error = reply_error("ERR no such key")
    run = drive(retainer.ack("consumer_group", ["1-0"]), redis, others=None)
    assert run.error is None and run.sent() == ["XINFO", "XACK+XDEL"]
    redis.error = reply_error("NOPERM User has no permissions to run the 'xinfo|groups' command")
    run = drive(Retainer(Stream("s"), clock=Clock()).ack("consumer_group", ["1-0"]), redis,
                others=None)  # fmt: skip
    assert run.error is not None and "NOPERM" in str(run.error)
    assert run.sent() == ["XINFO"]  # nothing acked: the ack's caller sees the error


@pytest.mark.parametrize("stream", [Stream("s", retention="trim"), Stream("s", groups=["a", "b"])])
def test_streams_whose_acks_never_delete_alone_do_not_look_for_other_groups(
    stream: Stream,
) -> None:
    retainer = Retainer(stream, clock=Clock())
    run = drive(retainer.ack(stream.groups[0], ["1-0"]), _acks([1]), others=None,
                group=stream.groups[0], groups=tuple(stream.groups))  # fmt: skip
    assert "XINFO" not in run.sent()


def test_xack_only_acking_trims_after_the_interval_or_the_batch_bound() -> None:
    retainer = Retainer(Stream("s", retention="trim"))
    assert not retainer.due(0.0)  # nothing acked yet
    drive(retainer.ack("consumer_group", ["1-0"]), _acks([1]))
    assert retainer.due(1000.0)  # acked something, never trimmed
    drive(retainer.maintain(1000.0), _trim_redis(FULL_7))
    assert not retainer.due(1000.0 + TRIM_INTERVAL / 2)  # nothing acked since
    drive(retainer.ack("consumer_group", ["2-0"]), _acks([1]))
    assert not retainer.due(1000.0 + TRIM_INTERVAL / 2)
    assert retainer.due(1000.0 + TRIM_INTERVAL)
    retainer.acked = TRIM_AFTER_ACKS
    assert retainer.due(1000.0 + TRIM_INTERVAL / 2)


def test_deleting_acks_check_caps_only_and_at_their_own_interval() -> None:
    plain = Retainer(Stream("s"))
    drive(plain.ack("consumer_group", ["1-0"]), _acks([1, 1]))
    assert not plain.due(10**6)  # XACK + XDEL and no caps: never
    capped = Retainer(Stream("s", max_len=10))
    drive(capped.ack("consumer_group", ["1-0"]), _acks([1, 1]))
    assert capped.due(1000.0)
    drive(capped.maintain(1000.0), _trim_redis(FULL_7))
    assert not capped.due(1000.0 + CAP_CHECK_INTERVAL - 1)
    assert capped.due(1000.0 + CAP_CHECK_INTERVAL)


def test_maintenance_failures_are_logged_at_a_bounded_rate_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retainer = Retainer(Stream("s", retention="trim"))

    def down(send: Send) -> list[Any]:
        raise BrokerConnectionError("down")

    caplog.set_level(logging.WARNING, "fluxabee")
    for now in (1000.0, 1002.0, 1004.0):
        retainer.acked = 1
        retainer.mode = AckMode.XACK
        run = drive(retainer.maintain(now), down)
        assert run.error is None and run.result is None
    assert len([r for r in caplog.records if "trimming s failed" in r.getMessage()]) == 1


def test_over_cap_after_a_trim_is_warned_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retainer = Retainer(Stream("s", groups=["a", "b"], max_len=2, retention="trim"))
    caplog.set_level(logging.WARNING, "fluxabee")
    for now in (1000.0, 1001.5):
        retainer.mode, retainer.acked = AckMode.XACK, 1
        run = drive(
            retainer.maintain(now),
            _trim_redis(FULL_62, 1, 5, [[b"100-1", [b"s", b"1"]]]),
            groups=("a", "b"),
        )
        assert run.result.over_cap is not None
    warned = [r.getMessage() for r in caplog.records if "over its cap" in r.getMessage()]
    assert warned == [
        "stream s is over its cap (length 5 > max_len 2): groups a still need entries from 100-1"
    ]


# -- replay to one group -------------------------------------------------------------------


def test_a_replayed_entry_is_handled_by_its_group_only_while_that_group_is_declared() -> None:
    assert handled_here(None, "a", ("a", "b"))
    assert handled_here("a", "a", ("a", "b"))
    assert not handled_here("b", "a", ("a", "b"))
    assert handled_here("gone", "a", ("a", "b"))  # no longer declared: everyone gets it


def test_replayed_fields_name_the_group_only_on_a_stream_with_several_groups() -> None:
    fields = [b"s", b"x"]
    assert replay_fields(fields, "a", ("a", "b")) == [b"s", b"x", b"fluxabee-group", b"a"]
    assert replay_fields(fields, "consumer_group", ("consumer_group",)) == fields  # FluxaORM's
    assert replay_fields(fields, None, ("a", "b")) == fields  # an old letter: every group
    assert replay_fields(fields, "gone", ("a", "b")) == fields
