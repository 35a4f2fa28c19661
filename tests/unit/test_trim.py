"""An explicit trim without Redis: where ``max_len`` cuts is found by a walk on the server
(one ID per round trip, from the nearer end), refusals, and the trim itself (issue 14,
item 11)."""

from __future__ import annotations

from typing import Any

import pytest

from fluxabee import Stream, TrimRefusedError
from fluxabee._actions import Send
from fluxabee._constants import TRIM_WALK_BUDGET, TRIM_WALK_PAGE
from fluxabee._scripts import ScriptCall
from fluxabee._trim import trim_to
from tests.unit.machine_driver import drive

PLAIN = Stream("s")


def full(length: int, first: str, last_delivered: str) -> list[Any]:
    """``XINFO STREAM s FULL COUNT 1``: one group that read up to ``last_delivered``."""
    return [
        b"length", length, b"entries", [[first.encode(), [b"s", b"x"]]],
        b"groups", [[b"name", b"consumer_group", b"last-delivered-id",
                     last_delivered.encode(), b"pending", []]],
    ]  # fmt: skip


class Server:
    """Answers XINFO with ``info``, each walk with the next of ``walks``, XTRIM with 7."""

    def __init__(self, info: list[Any], *walks: list[Any]) -> None:
        self.info = info
        self.walks = list(walks)
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, send: Send) -> list[Any]:
        command = send.commands[0]
        if isinstance(command, ScriptCall):
            assert command.script.name == "walk"
            self.calls.append(command.args)
            return [self.walks.pop(0)]
        name = command[0]
        if name == b"XINFO":
            return [self.info]
        if name == b"XREVRANGE":
            return [[[b"100-4", [b"s", b"x"]]]]
        assert name == b"XTRIM"
        return [7]


def trim(server: Server, **kwargs: Any) -> Any:
    options = {"min_id": None, "max_len": None, "force": False, "acked_guard": False}
    options.update(kwargs)
    return drive(trim_to(PLAIN, **options), server)


def xtrims(run: Any) -> list[list[Any]]:
    commands = [a.commands[0] for a in run.actions if a.commands]
    return [c for c in commands if not isinstance(c, ScriptCall) and c[0] == b"XTRIM"]


def test_keeping_few_walks_from_the_newest_end_and_reads_one_id() -> None:
    server = Server(full(1000, "1-0", "999-0"), [1, b"990-0"])
    run = trim(server, max_len=10)
    assert run.error is None and run.result == 7
    assert server.calls == [(b"rev", "", 10, TRIM_WALK_BUDGET, TRIM_WALK_PAGE)]
    assert xtrims(run) == [[b"XTRIM", "s", b"MINID", "990-0"]]  # keeps 990-0 and after


def test_removing_few_walks_from_the_oldest_end() -> None:
    server = Server(full(200_001, "1-0", "999-0"), [1, b"2-0"])
    run = trim(server, max_len=200_000)
    assert run.result == 7
    assert server.calls == [(b"fwd", "", 2, TRIM_WALK_BUDGET, TRIM_WALK_PAGE)]  # 1 removed
    assert xtrims(run) == [[b"XTRIM", "s", b"MINID", "2-0"]]


def test_a_long_walk_goes_on_from_where_each_round_trip_stopped() -> None:
    server = Server(full(100_000, "1-0", "999-0"), [0, b"500-0", 30_000], [1, b"300-0"])
    run = trim(server, max_len=50_000)
    assert run.result == 7
    assert server.calls == [
        (b"rev", "", 50_000, TRIM_WALK_BUDGET, TRIM_WALK_PAGE),
        (b"rev", "500-0", 30_000, TRIM_WALK_BUDGET, TRIM_WALK_PAGE),
    ]
    assert xtrims(run) == [[b"XTRIM", "s", b"MINID", "300-0"]]


def test_a_stream_that_got_shorter_during_the_walk_is_not_cut() -> None:
    server = Server(full(1000, "1-0", "999-0"), [-1])
    run = trim(server, max_len=10)
    assert run.error is None and run.result == 0 and xtrims(run) == []


def test_max_len_zero_cuts_after_the_newest_and_a_short_stream_is_left_alone() -> None:
    run = trim(Server(full(5, "100-0", "100-4")), max_len=0)
    assert xtrims(run) == [[b"XTRIM", "s", b"MINID", "100-5"]]
    server = Server(full(5, "100-0", "100-4"))
    run = trim(server, max_len=5)
    assert run.result == 0 and server.calls == [] and xtrims(run) == []


def test_a_cut_past_what_the_group_needs_is_refused_unless_forced() -> None:
    server = Server(full(1000, "1-0", "500-0"), [1, b"990-0"])
    run = trim(server, max_len=10)
    assert isinstance(run.error, TrimRefusedError) and xtrims(run) == []
    assert run.error.safe_id == "500-1" and run.error.holders == ("consumer_group",)
    forced = trim(Server(full(1000, "1-0", "500-0"), [1, b"990-0"]), max_len=10, force=True)
    assert forced.result == 7


@pytest.mark.parametrize("min_id", ["1-0", "0-5"])
def test_a_min_id_at_or_below_the_first_entry_removes_nothing_and_walks_nothing(
    min_id: str,
) -> None:
    server = Server(full(1000, "1-0", "999-0"))
    run = trim(server, min_id=min_id)
    assert run.result == 0 and server.calls == [] and xtrims(run) == []
