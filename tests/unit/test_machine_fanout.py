"""The machine on a stream with several groups: creating them, acking, trimming in ``run``,
replays meant for one group, dead letters naming theirs. Scripted replies, no Redis."""

from __future__ import annotations

from typing import Any

from fluxabee import RetryPolicy, Stream
from fluxabee._actions import Send
from fluxabee._constants import TRIM_INTERVAL
from tests.unit.machine_driver import Clock, drive, entry, machine, name_of, read_reply

GROUPS = ("billing", "search")
ORDERS = Stream("s", groups=list(GROUPS))


def names(send: Send) -> list[str]:
    return [name_of(c) for c in send.commands]


def fanout(group: str = "billing", settings: Stream = ORDERS, **kwargs: Any) -> Any:
    return machine(group=group, settings=settings, **kwargs)


def scripted(*new: list[Any], acks: list[Any] | None = None) -> Any:
    """Group creation, an empty own-pending read, then ``new`` entries; acks as given."""

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return acks if acks is not None else [[1] * 10]
        first = names(send)[0]
        if first == "XGROUP" and names(send)[-1] == "XINFO":  # a trim: nothing to remove
            return [b"OK"] * (len(send.commands) - 2) + [[b"1700000000", b"0"], [b"length", 0]]
        if first == "XGROUP":
            return [b"OK"] * len(send.commands)
        if names(send) == ["XREADGROUP", "XPENDING"]:
            return [read_reply("s"), []]
        return [read_reply("s", *new)]

    return redis


def test_the_first_use_of_a_group_creates_every_declared_group_at_zero_in_one_round_trip() -> None:
    m = fanout("search")
    run = drive(m.consume(10, 0), scripted(), group="search", groups=GROUPS)
    create = next(a for a in run.actions if isinstance(a, Send))
    assert create.commands == [
        [b"XGROUP", b"CREATE", "s", "billing", b"0", b"MKSTREAM"],
        [b"XGROUP", b"CREATE", "s", "search", b"0", b"MKSTREAM"],
    ]
    assert create.retry_safe


def test_acks_on_several_groups_use_xackdel_where_the_server_has_it_and_xack_elsewhere() -> None:
    m = fanout()
    run = drive(
        m.consume(10, 0),
        scripted(entry("1-0"), entry("2-0"), acks=[[2, 1]]),
        commands=frozenset({"XACKDEL"}),
        group="billing",
        groups=GROUPS,
    )
    assert run.error is None and run.result == 2
    assert run.sent()[-2:] == ["PROBE:XACKDEL", "XACKDEL"]
    old = fanout()
    run = drive(
        old.consume(10, 0), scripted(entry("1-0"), acks=[1]), group="billing", groups=GROUPS
    )
    sent = run.sent()
    assert sent[5:7] == ["PROBE:XACKDEL", "XACK"]  # no XDEL: the other group may not have read it
    assert sent[7:] == ["XGROUP", "XGROUP", "TIME", "XINFO"]  # and a trim is due at once


def test_a_plain_stream_acks_as_fluxaorm_does_without_probing() -> None:
    m = machine()
    run = drive(m.consume(10, 0), scripted(entry("1-0"), acks=[1, 1]))
    assert run.sent() == ["XGROUP", "XREADGROUP", "XPENDING", "XREADGROUP", "XACK+XDEL"]


def test_run_trims_to_the_safe_minid_at_a_bounded_rate_when_acks_leave_entries() -> None:
    clock = Clock(1000.0)
    m = fanout(clock=clock)
    m.group_ready, m.pending_first = True, False
    full = [
        b"length", 3, b"entries", [[b"1-0", [b"s", b"x"]]],
        b"groups", [
            [b"name", b"billing", b"last-delivered-id", b"3-0", b"pending", []],
            [b"name", b"search", b"last-delivered-id", b"2-0", b"pending", []],
        ],
    ]  # fmt: skip
    reads = iter([[entry("1-0"), entry("2-0"), entry("3-0")], [], []])
    stops = iter([False, False, False, True])

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1]
        first = names(send)[0]
        if first == "XREADGROUP":
            clock.now += TRIM_INTERVAL / 2
            return [read_reply("s", *next(reads))]
        if first == "XGROUP":
            return [b"BUSY"] * 2 + [[b"1700000000", b"0"], full]
        if first == "XTRIM":
            return [2]
        assert first == "XAUTOCLAIM", first
        return [[b"0-0", []]]

    run = drive(m.run(10, 100, 10**9, lambda: next(stops)), redis, group="billing", groups=GROUPS)
    assert run.error is None
    sent = run.sent()
    assert sent.count("XTRIM") == 1  # one trim, though run looped three times
    trim = next(a for a in run.actions if isinstance(a, Send) and names(a) == ["XTRIM"])
    assert trim.commands[0] == [b"XTRIM", "s", b"MINID", "2-1"]  # search still needs 3-0
    assert sent.index("XTRIM") > sent.index("XACK")  # trims what acks left behind


def test_an_entry_replayed_for_another_group_is_acked_without_a_hand_over() -> None:
    m = fanout("search")
    mine = entry("2-0", "mine", **{"fluxabee-group": "search"})
    theirs = entry("1-0", "theirs", **{"fluxabee-group": "billing"})
    orphan = entry("3-0", "orphan", **{"fluxabee-group": "retired"})
    acks: list[bytes] = []

    def redis(send: Send) -> list[Any]:
        if send.packed:
            acks.append(send.packed)
            return [1]
        return scripted(theirs, mine, orphan)(send)

    seen: list[Any] = []
    run = drive(m.consume(10, 0), redis, seen.extend, group="search", groups=GROUPS)
    assert run.error is None and run.result == 2
    assert [(e.id, e.body, e.meta) for e in seen] == [("2-0", "mine", {}), ("3-0", "orphan", {})]
    assert b"1-0" in acks[0] and b"2-0" not in acks[0]  # acked for search, never handed over
    assert b"2-0" in acks[1] and b"3-0" in acks[1]


def test_dead_letters_name_the_group_they_failed_in() -> None:
    m = fanout("search", policy=RetryPolicy(max_deliveries=1))
    written: list[Any] = []

    def redis(send: Send) -> list[Any]:
        if send.packed:
            return [1]
        if names(send) == ["XREADGROUP", "XPENDING"]:
            return [read_reply("s", entry("1-0")), [[b"1-0", b"consumer-1", 5, 2]]]
        if names(send)[0] == "XADD":
            written.extend(send.commands)
            return [b"9-0"]
        return [b"OK", b"OK"]

    run = drive(m.consume(10, 0), redis, group="search", groups=GROUPS)
    assert run.error is None and run.result == 0
    fields = written[0][3:]
    assert written[0][1] == "{s}:dead"
    assert fields[-2:] == [b"fluxabee-group", b"search"]
