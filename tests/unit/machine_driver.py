"""A scripted driver for the pure consumer machine: no Redis, no real clock.

Each test states what Redis answers to each command (in the raw RESP2 shapes hiredis
gives) and what the handler does; the driver runs a flow to its end and records every
action, so a test can assert exactly what the machine asked for, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from fluxabee import RetryPolicy
from fluxabee._actions import Flow, Hand, Lease, Pause, Send
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
    result: Any = None
    error: BaseException | None = None

    def sent(self) -> list[str]:
        """The names of every command sent, in order (packed acks as ``XACK+XDEL``)."""
        names = []
        for action in self.actions:
            if isinstance(action, Send):
                if action.packed:
                    names.append("XACK+XDEL")
                else:
                    names.extend(name_of(c) for c in action.commands)
        return names

    def hands(self) -> list[list[str]]:
        """The event IDs of each hand-over."""
        return [[e.id for e in a.events] for a in self.actions if isinstance(a, Hand)]

    def pauses(self) -> list[float]:
        """The seconds of each pause."""
        return [a.seconds for a in self.actions if isinstance(a, Pause)]


Responder = Callable[[Send], list[Any]]


def drive(
    flow: Flow[Any],
    redis: Responder,
    handler: Callable[[list[Event[Any]]], BaseException | None] = lambda events: None,
    *,
    on_pause: Callable[[float], bool] = lambda seconds: False,
) -> Run:
    """Run ``flow`` to its end: ``redis`` answers each Send (or raises), ``handler`` each Hand
    (returns the exception it "raised", or raises a BaseException to throw it in)."""
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
        run.actions.append(action)
        result = error = None
        try:
            if isinstance(action, Send):
                result = redis(action)
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
) -> ConsumerMachine:
    """A machine for stream ``s``, with a fake clock (1000 s) and jitter fixed at 100 %."""
    clock = clock or Clock()
    return ConsumerMachine(
        stream="s",
        group=GROUP,
        name=name,
        policy=policy or RetryPolicy(max_deliveries=3, backoff=1.0, max_backoff=8.0),
        acker=FakeAcks(),
        clock=clock,
        wall_ms=lambda: 1_700_000_000_000,
        lease=lease,
        rand=rand,
    )


def ok_acks(send: Send) -> list[Any] | None:
    """The reply to a packed XACK + XDEL of every ID (None when ``send`` is something else)."""
    if send.packed:
        return [1, 1]
    return None
