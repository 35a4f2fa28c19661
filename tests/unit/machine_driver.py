"""A scripted driver for the pure consumer machine: no Redis, no real clock.

Each test states what Redis answers to each command (in the raw RESP2 shapes hiredis
gives) and what the handler does; the driver runs a flow to its end and records every
action, so a test can assert exactly what the machine asked for, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hiredis
import msgpack

from fluxabee import RetryPolicy, Stream
from fluxabee._actions import Flow, Hand, Lease, Pause, Probe, Send
from fluxabee._machine import ConsumerMachine
from fluxabee._scripts import ScriptCall
from fluxabee.event import Event

GROUP = "consumer_group"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def name_of(command: Any) -> str:
    """``XREADGROUP``, ``XACK``, or ``EVAL:<script>`` for a script call."""
    if isinstance(command, ScriptCall):
        return f"EVAL:{command.script.name}"
    first = command[0]
    return (first.decode() if isinstance(first, bytes) else str(first)).upper()


def entry(entry_id: str, body: Any = "x", **meta: str) -> list[Any]:
    """One entry as a reply carries it: ``[id, [s, body, k, v, ...]]``."""
    fields: list[bytes] = [b"s", msgpack.packb(body)]
    for key, value in meta.items():
        fields += [key.encode(), value.encode()]
    return [entry_id.encode(), fields]


def read_reply(stream: str, *entries: list[Any]) -> Any:
    """An XREADGROUP reply of one stream (``None`` when empty)."""
    return [[stream.encode(), list(entries)]] if entries else None


def pending_rows(consumer: str, *rows: tuple[str, int]) -> list[Any]:
    """An XPENDING extended reply: ``(id, delivery count)`` rows."""
    return [[i.encode(), consumer.encode(), 5, count] for i, count in rows]


@dataclass
class Run:
    """What a flow asked for, and what it returned or raised."""

    actions: list[Any] = field(default_factory=list)
    #: Group checks (``XINFO GROUPS``) :func:`drive` answered itself, kept out of ``actions``.
    checks: list[Send] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None

    def sent(self) -> list[str]:
        """The names of every command sent, in order (packed acks as ``XACK+XDEL``,
        ``XACK`` or ``XACKDEL``; probes as ``PROBE:<command>``)."""
        names = []
        for action in self.actions:
            if isinstance(action, Send):
                if action.packed:
                    commands = _unpack(action.packed, action.count)
                    names.append("+".join(c[0].decode() for c in commands))
                else:
                    names.extend(name_of(c) for c in action.commands)
            elif isinstance(action, Probe):
                names.append(f"PROBE:{action.command}")
        return names

    def hands(self) -> list[list[str]]:
        """The event IDs of each hand-over."""
        return [[e.id for e in a.events] for a in self.actions if isinstance(a, Hand)]

    def pauses(self) -> list[float]:
        """The seconds of each pause."""
        return [a.seconds for a in self.actions if isinstance(a, Pause)]


Responder = Callable[[Send], list[Any]]


def is_groups_check(send: Send) -> bool:
    """Whether ``send`` is a retention's look for undeclared groups (``XINFO GROUPS s``)."""
    if send.packed or len(send.commands) != 1 or isinstance(send.commands[0], ScriptCall):
        return False
    return [_text(a).upper() for a in send.commands[0][:2]] == ["XINFO", "GROUPS"]


def groups_reply(names: tuple[str, ...]) -> list[Any]:
    """An ``XINFO GROUPS`` reply (RESP2) listing ``names``."""
    return [[b"name", n.encode(), b"consumers", 0, b"pending", 0] for n in names]


def _text(arg: Any) -> str:
    assert isinstance(arg, (bytes, str, int)) and not isinstance(arg, bool), arg
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def _unpack(packed: bytes, count: int) -> list[list[Any]]:
    reader = hiredis.Reader()
    reader.feed(packed)
    commands = [reader.gets() for _ in range(count)]
    assert reader.gets() is False, "more commands than counted"
    return commands


def _is_id(text: str, *, exclusive: bool = False) -> bool:
    if exclusive and text.startswith("("):
        text = text[1:]
    ms, _, seq = text.partition("-")
    return ms.isdigit() and seq.isdigit()


def check_command(
    command: Any, stream: str = "s", group: str = GROUP, groups: tuple[str, ...] = (GROUP,)
) -> None:
    """Fail unless ``command`` is a well-formed command of stream ``stream``, as Redis would
    (so a machine passing a wrong or missing argument cannot hide behind a scripted reply).
    ``group`` is the consumer's group, ``groups`` every declared one."""
    if isinstance(command, ScriptCall):
        assert command.keys[0] in (stream, "{" + stream + "}:lock"), command.keys
        assert all(a is not None for a in (*command.keys, *command.args)), command
        if command.script.name in ("read_single", "redeliver", "cleanup", "prune"):
            group_at = {"read_single": 2, "redeliver": 0, "cleanup": 0, "prune": 0}
            assert command.args[group_at[command.script.name]] == group
        return
    args = [_text(a) for a in command]
    name = args[0].upper()
    consumer_ok = lambda c: c.startswith("consumer-")  # noqa: E731
    if name == "XREADGROUP":
        assert args[1:3] == ["GROUP", group] and consumer_ok(args[3]), args
        assert args[4] == "COUNT" and int(args[5]) >= 1, args
        tail = args[6:]
        if tail[0] == "BLOCK":
            assert int(tail[1]) >= 1 and args[-1] == ">", args
            tail = tail[2:]
        assert tail[:2] == ["STREAMS", stream] and len(tail) == 3, args
    elif name == "XPENDING":
        assert args[1:3] == [stream, group], args
        if len(args) > 3:
            assert len(args) == 7 and int(args[5]) >= 1 and consumer_ok(args[6]), args
            assert args[3] == "-" or _is_id(args[3], exclusive=True), args
            assert args[4] == "+" or _is_id(args[4], exclusive=True), args
    elif name == "XAUTOCLAIM":
        assert args[1:3] == [stream, group] and consumer_ok(args[3]), args
        assert int(args[4]) >= 0 and args[6] == "COUNT" and int(args[7]) >= 1, args
    elif name == "XGROUP":
        assert args[1:3] == ["CREATE", stream] and args[3] in groups, args
        assert args[4:] in (["0", "MKSTREAM"], ["0"]), args
    elif name == "XADD":
        assert args[1] in (stream, "{" + stream + "}:dead") and args[2] == "*", args
        assert len(args) > 3 and len(args) % 2 == 1, args
    elif name == "XREAD":
        assert args[1] == "BLOCK" and int(args[2]) >= 1 and args[3:5] == ["STREAMS", stream]
    elif name in ("XACK", "XDEL"):
        assert args[1] == stream and len(args) > 2, args
        assert all(_is_id(i) for i in args[(3 if name == "XACK" else 2) :]), args
        if name == "XACK":
            assert args[2] == group and len(args) > 3, args
    elif name == "XACKDEL":
        assert args[1:3] == [stream, group] and args[3:5] == ["ACKED", "IDS"], args
        assert int(args[5]) == len(args) - 6 >= 1 and all(_is_id(i) for i in args[6:]), args
    elif name in ("XRANGE", "XREVRANGE"):
        low, high = (2, 3) if name == "XRANGE" else (3, 2)
        assert args[1] == stream and len(args) in (4, 6), args
        assert args[low] == "-" or _is_id(args[low]), args
        assert args[high] == "+" or _is_id(args[high]), args
        if len(args) == 6:
            assert args[4] == "COUNT" and int(args[5]) >= 1, args
    elif name == "XTRIM":
        assert args[1:3] == [stream, "MINID"] and _is_id(args[3]), args  # exact: never "~"
        assert args[4:] in ([], ["ACKED"]), args
    elif name == "XINFO":
        assert args[1:] in (["STREAM", stream, "FULL", "COUNT", "1"], ["GROUPS", stream]), args
    elif name in ("TIME", "XLEN"):
        assert len(args) == (1 if name == "TIME" else 2), args
    else:
        raise AssertionError(f"unexpected command {args}")


def check_send(send: Send, group: str = GROUP, groups: tuple[str, ...] = (GROUP,)) -> None:
    """Check every command of ``send`` (a packed one is decoded first: an ack)."""
    if send.packed:
        commands = _unpack(send.packed, send.count)
        names = [c[0] for c in commands]
        assert names in ([b"XACK", b"XDEL"], [b"XACK"], [b"XACKDEL"]), names
        if len(names) == 2:
            assert commands[0][3:] == commands[1][2:], "XACK and XDEL name other IDs"
    else:
        assert len(send.commands) >= 1
        commands = list(send.commands)
    for command in commands:
        check_command(command, group=group, groups=groups)


def drive(
    flow: Flow[Any],
    redis: Responder,
    handler: Callable[[list[Event[Any]]], BaseException | None] = lambda events: None,
    *,
    on_pause: Callable[[float], bool] = lambda seconds: False,
    commands: frozenset[str] = frozenset(),
    group: str = GROUP,
    groups: tuple[str, ...] = (GROUP,),
    others: tuple[str, ...] | None = (),
) -> Run:
    """Run ``flow`` to its end: ``redis`` answers each Send (or raises), ``handler`` each Hand
    (returns the exception it "raised", or raises a BaseException to throw it in); a Probe
    is answered from ``commands`` (the server's optional commands, say ``{"XACKDEL"}``).
    A group check (``XINFO GROUPS``) is answered with ``groups`` plus ``others`` (groups in
    Redis the config does not declare) and kept in ``run.checks``, not ``run.actions``;
    ``others=None`` leaves it to ``redis``, as any other command."""
    run = Run()
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            action = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as done:
            run.result = done.value
            return run
        except BaseException as exc:
            run.error = exc
            return run
        result = error = None
        if isinstance(action, Send):
            check_send(action, group, groups)  # a malformed command fails the test
        if isinstance(action, Send) and others is not None and is_groups_check(action):
            run.checks.append(action)
            result = [groups_reply(groups + others)]
            continue
        run.actions.append(action)
        try:
            if isinstance(action, Send):
                result = redis(action)
            elif isinstance(action, Probe):
                result = action.command in commands
            elif isinstance(action, Hand):
                result = handler(action.events)
            else:
                result = on_pause(action.seconds)
        except BaseException as exc:
            error = exc


class FakeAcks:
    """Records ``event.ack()`` calls (the shell would drive ``machine.ack_event``)."""

    def __init__(self) -> None:
        self.acked: list[str] = []

    def __call__(self, event: Event[Any]) -> None:
        self.acked.append(event.id)
        event.acked = True


def machine(
    *,
    name: str = "consumer-1",
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    lease: Lease | None = None,
    rand: Callable[[], float] = lambda: 1.0,
    group: str = GROUP,
    settings: Stream | None = None,
) -> ConsumerMachine:
    """A machine for stream ``s``, with a fake clock (1000 s) and jitter fixed at 100 %."""
    clock = clock or Clock()
    return ConsumerMachine(
        stream="s",
        group=group,
        settings=settings,
        name=name,
        policy=policy or RetryPolicy(max_deliveries=3, backoff=1.0, max_backoff=8.0),
        acker=FakeAcks(),
        clock=clock,
        wall_ms=lambda: 1_700_000_000_000,
        lease=lease,
        rand=rand,
    )


def ok_acks(send: Send) -> list[Any] | None:
    """The reply to a packed ack (XACK + XDEL, XACK or XACKDEL) of every ID (None when
    ``send`` is something else)."""
    if send.packed:
        return [1] * send.count
    return None
