"""An explicit trim: the gaps a mutation pass found (issue 14, section 9)."""

from __future__ import annotations

from typing import Any

import pytest

from fluxabee import Stream, TrimRefusedError
from fluxabee._actions import Send
from fluxabee._scripts import ScriptCall
from fluxabee._trim import trim_to, walk_target
from fluxabee.errors import reply_error
from tests.unit.machine_driver import drive

TWO = Stream("s", groups=["a", "b"])


def group(name: str, last_delivered: str, pending: str | None = None) -> list[Any]:
    rows = [[pending.encode(), b"c", 1, 1]] if pending else []
    return [b"name", name.encode(), b"last-delivered-id", last_delivered.encode(), b"pending", rows]


def full(first: str, *groups: list[Any], length: int = 1000) -> list[Any]:
    return [
        b"length",
        length,
        b"entries",
        [[first.encode(), [b"s", b"x"]]],
        b"groups",
        list(groups),
    ]


def server(info: Any, walk: Any = None, newest: Any = None) -> Any:
    def redis(send: Send) -> list[Any]:
        command: Any = send.commands[0]
        if isinstance(command, ScriptCall):
            return [walk]
        return {b"XINFO": [info], b"XREVRANGE": [newest], b"XTRIM": [7]}[command[0]]

    return redis


def trim(info: Any, stream: Stream = TWO, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "min_id": None,
        "max_len": None,
        "force": False,
        "acked_guard": False,
    }
    options.update(kwargs)
    return drive(trim_to(stream, **options), server(info, [1, b"990-0"]), groups=("a", "b"))


def xtrim(run: Any) -> list[Any]:
    return [a.commands[0] for a in run.actions if a.commands[0][0] == b"XTRIM"]


def test_a_min_id_past_the_first_entry_trims_exactly_there() -> None:
    run = trim(full("1-0", group("a", "999-0"), group("b", "999-0")), min_id="500-0")
    assert run.error is None and run.result == 7
    assert xtrim(run) == [[b"XTRIM", "s", b"MINID", "500-0"]]


def test_a_missing_stream_trims_nothing() -> None:
    run = trim(reply_error("ERR no such key"), min_id="500-0")
    assert run.error is None and run.result == 0 and xtrim(run) == []


def test_acked_guards_a_trim_where_the_server_has_it_but_never_a_forced_one() -> None:
    info = full("1-0", group("a", "999-0"), group("b", "999-0"))
    guarded = trim(info, min_id="500-0", acked_guard=True)
    assert xtrim(guarded) == [[b"XTRIM", "s", b"MINID", "500-0", b"ACKED"]]
    forced = trim(info, min_id="500-0", acked_guard=True, force=True)
    assert xtrim(forced) == [[b"XTRIM", "s", b"MINID", "500-0"]]


def refusal(info: Any, min_id: str) -> str:
    run = trim(info, min_id=min_id)
    assert isinstance(run.error, TrimRefusedError) and xtrim(run) == []
    return str(run.error)


@pytest.mark.parametrize(
    ("info", "who"),
    [
        (full("1-0", group("a", "999-0")), "no declared group has read it"),
        (
            full("5-0", group("a", "4-0"), group("b", "4-0")),
            "groups a, b need every entry, from 5-0",
        ),
        (
            full("5-0", group("a", "99-0", pending="5-0"), group("b", "99-0")),
            "groups a need every entry, from 5-0",
        ),
        (
            full("1-0", group("a", "99-0", pending="50-0"), group("b", "50-0", pending="50-0")),
            "groups a, b need the entries from 50-0 on",
        ),
    ],
)
def test_a_refused_trim_says_which_groups_hold_it_back(info: Any, who: str) -> None:
    assert refusal(info, "500-0") == (
        f"trimming s below 500-0 would remove entries not acked yet ({who}); "
        "nothing was removed (force=True removes them anyway)"
    )


def test_every_round_trip_of_a_trim_is_marked_safe_to_send_again() -> None:
    run = drive(
        trim_to(TWO, min_id=None, max_len=10, force=True, acked_guard=False),
        server(full("1-0", group("a", "1-0"), group("b", "1-0")), [1, b"990-0"]),
        groups=("a", "b"),
    )
    assert run.result == 7
    sends = [a for a in run.actions if isinstance(a, Send)]
    assert len(sends) == 3 and all(s.retry_safe for s in sends)
    everything = drive(walk_target("s", 5, 0), server(None, newest=[[b"100-4", [b"s", b"x"]]]))
    assert everything.result == "100-5"
    assert all(a.retry_safe for a in everything.actions)


def test_cutting_everything_from_a_stream_emptied_meanwhile_cuts_nothing() -> None:
    run = drive(walk_target("s", 5, 0), server(None, newest=[]))
    assert run.error is None and run.result is None
