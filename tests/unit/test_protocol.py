"""Pure protocol helpers: names, RESP packing, reply parsing, statistics."""

from __future__ import annotations

import datetime as dt

from fluxabee import Stream
from fluxabee._protocol import (
    command_name,
    many_consumer_name,
    pack_ack,
    pack_body_xadd,
    pack_command,
    pack_xadd,
    parse_pending_counts,
    parse_xautoclaim,
    parse_xreadgroup,
    xadd_command,
    xadd_header,
    xreadgroup_command,
)
from fluxabee._stats import build_statistics


def test_many_consumer_name_has_utc_time_and_16_digits() -> None:
    when = dt.datetime(2025, 2, 11, 12, 23, 21, tzinfo=dt.timezone.utc)
    assert many_consumer_name(when, 42) == "consumer-2025_02_11_12_23_21-0000000000000042"
    assert many_consumer_name() != many_consumer_name()


def test_pack_command_is_resp() -> None:
    assert pack_command([b"XADD", "s", 12]) == b"*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$2\r\n12\r\n"


def test_packed_xadd_and_ack_are_the_commands_they_stand_for() -> None:
    for fields in ([b"s", b"\xa1a", b"k", b"v"], [b"s", b"\xa1a"]):  # meta, or the body alone
        assert pack_xadd(xadd_header("st"), fields) == pack_command(xadd_command("st", fields))
    body_only = pack_command(xadd_command("st", [b"s", b"\xa1a"]))
    assert pack_body_xadd(xadd_header("st"), b"\xa1a") == body_only
    assert pack_ack("st", "g", ["1-0", "2-0"]) == pack_command(
        [b"XACK", "st", "g", "1-0", "2-0"]
    ) + pack_command([b"XDEL", "st", "1-0", "2-0"])


def test_xreadgroup_blocks_only_for_new_events_and_never_with_block_0() -> None:
    new = xreadgroup_command("s", "g", "c", 10, start=">", block_ms=500)
    assert new == [b"XREADGROUP", b"GROUP", "g", "c", b"COUNT", 10, b"BLOCK", 500,
                   b"STREAMS", "s", ">"]  # fmt: skip
    assert b"BLOCK" not in xreadgroup_command("s", "g", "c", 10, start=">", block_ms=0)
    own = xreadgroup_command("s", "g", "c", 10, start="0", block_ms=500)
    assert b"BLOCK" not in own
    assert own[-1] == "0"


def test_command_names_for_messages() -> None:
    assert command_name([b"time"]) == "TIME"
    assert command_name([b"XINFO", b"STREAM", "s"]) == "XINFO STREAM"
    assert command_name(["xadd", "s", "*"]) == "XADD"


def test_replies_parse_including_deleted_entries() -> None:
    reply = [[b"s", [[b"1-0", [b"s", b"\xa1a"]], [b"2-0", None]]]]
    entries = parse_xreadgroup(reply)
    assert [(e.id, e.fields) for e in entries] == [("1-0", [b"s", b"\xa1a"]), ("2-0", None)]
    assert parse_xreadgroup(None) == []


def test_xautoclaim_parses_redis_6_2_and_7() -> None:
    seven = parse_xautoclaim([b"0-0", [[b"1-0", [b"k", b"v"]]], [b"3-0"]])
    six = parse_xautoclaim([b"5-0", [[b"1-0", [b"k", b"v"]]]])
    assert (seven.cursor, seven.holes) == ("0-0", 0)
    assert (six.cursor, six.entries[0].id) == ("5-0", "1-0")
    # Redis 6.2 claims a deleted entry as a bare nil: skipped, but counted as a hole.
    holes = parse_xautoclaim([b"0-0", [None, [b"2-0", [b"k", b"v"]], None]])
    assert ([e.id for e in holes.entries], holes.holes) == (["2-0"], 2)


def test_pending_counts() -> None:
    assert parse_pending_counts([[b"1-0", b"c", 10, 3]]) == {"1-0": 3}


def test_statistics_from_raw_replies() -> None:
    now = [b"1700000010", b"0"]
    info_stream = [b"length", 2, b"first-entry", [b"1700000000000-0", [b"s", b"x"]]]
    groups = [[b"name", b"consumer_group", b"pending", 1, b"last-delivered-id",
               b"1700000005000-0", b"lag", 1]]  # fmt: skip
    stats = build_statistics(
        stream=Stream("s"),
        pool="default",
        time_reply=now,
        info_stream=info_stream,
        info_groups=groups,
        pending_summaries=[[1, b"1700000004000-0", b"1700000004000-0", [[b"c", b"1"]]]],
        info_consumers=[[[b"name", b"c", b"pending", 1, b"idle", 1500]]],
    )
    assert stats.length == 2
    assert stats.oldest_event_age == 10.0
    assert stats.group is not None
    assert stats.group.last_delivered_age == 5.0
    assert stats.group.lowest_pending_age == 6.0
    assert stats.group.consumers[0].idle == 1.5
    assert stats.oldest_pending_age == 6.0
    empty = build_statistics(
        stream=Stream("s", groups=["g"]), pool="p", time_reply=now, info_stream=[b"length", 0],
        info_groups=[], pending_summaries=[None], info_consumers=[None],
    )  # fmt: skip
    assert (empty.length, empty.oldest_event_age, empty.oldest_pending_age) == (0, None, None)
