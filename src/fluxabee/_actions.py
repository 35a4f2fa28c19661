"""Pure: what a flow of the core asks its IO shell to do, and the lease of a single consumer.

The core's flows (:mod:`fluxabee._machine`) are generators: each ``yield`` is one
:class:`Send`, :class:`Hand`, :class:`Pause` or :class:`Probe`, and the shell sends back
its result (or throws in its failure). The shell makes no decision about events (what
to read, retry or dead-letter, what a reply means); it moves bytes (following Cluster
redirects, re-sending a NOSCRIPT call as EVAL and, where a :class:`Send` allows it, a
command once on a fresh connection), calls the handler, waits and answers feature
probes. This is httpcore's split from h11, as generators.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from ._protocol import Command
from ._scripts import ScriptCall
from .event import Event

T = TypeVar("T")


@dataclass(slots=True)
class Send:
    """Run commands on the stream's server, in one round trip.

    Result: one raw reply per command, an error reply as a ``RedisReplyError`` in its slot.
    A connection failure is thrown into the flow. ``packed`` (``count`` commands already in
    RESP) replaces ``commands`` on the hot path. ``retry_safe``: the shell may send it again
    once on a fresh connection when a pooled one turns out dead before any reply.
    """

    commands: Sequence[Command | ScriptCall] = ()
    packed: bytes = b""
    count: int = 0
    retry_safe: bool = False
    timeout: float | None = None  # None: the pool's command timeout


@dataclass(slots=True)
class Hand:
    """Call the handler with ``events``. Result: ``None``, or the ``Exception`` it raised.

    A ``BaseException`` (cancellation, KeyboardInterrupt) or a handler the API cannot call
    (an ``async def`` under the sync API) is thrown into the flow instead.
    """

    events: list[Event[Any]]


@dataclass(slots=True)
class Pause:
    """Wait ``seconds``, or less when ``stop()`` is asked. Result: whether it was."""

    seconds: float


@dataclass(slots=True)
class Probe:
    """Ask whether the stream's server has command ``command`` (``COMMAND INFO``, asked once
    per server and cached by the shell's client). Result: a ``bool``."""

    command: str


#: Anything a flow yields.
Action: TypeAlias = Send | Hand | Pause | Probe
#: A flow of the core returning ``T``: ``result = yield from flow`` inside other flows.
Flow: TypeAlias = Generator[Action, Any, T]


def new_token() -> str:
    """A lock token naming its holder: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


class Lease:
    """The ``consumer_single`` lock as its holder sees it, against an injected clock.

    Redis keeps the key with a TTL; locally the holder trusts it only until ``sent_at + ttl``
    of the last command that confirmed it, so a process that stalled (GC, SIGSTOP, a slow
    handler) never hands over events after the lock may have passed to another.
    """

    __slots__ = ("_clock", "key", "on_confirm", "token", "ttl", "ttl_ms", "valid_until")

    def __init__(
        self,
        key: str,
        ttl: float,
        *,
        clock: Callable[[], float],
        token: str | None = None,
        on_confirm: Callable[[], None] | None = None,
    ) -> None:
        #: The lock key (``{stream}:lock``).
        self.key = key
        #: This holder's token, stored as the key's value.
        self.token = token or new_token()
        #: Seconds the key lives without a refresh.
        self.ttl = ttl
        #: The TTL in milliseconds, as Redis takes it.
        self.ttl_ms = max(1, round(ttl * 1000))
        #: Clock time until which the holder may trust the lock (0: not held).
        self.valid_until = 0.0
        self._clock = clock
        #: Called each time Redis confirms the lock (the shell starts its keeper there).
        self.on_confirm = on_confirm

    @property
    def poll_interval(self) -> float:
        """How often a standby tries to take the lock: a tenth of the TTL."""
        return max(0.01, self.ttl / 10)

    @property
    def refresh_interval(self) -> float:
        """How often the holder refreshes the key: a third of the TTL."""
        return self.ttl / 3

    def held(self) -> bool:
        """Whether the holder may still trust the lock now."""
        return self._clock() < self.valid_until

    def confirmed(self, sent_at: float, *, notify: bool = True) -> None:
        """Redis confirmed the lock for a command sent at clock time ``sent_at``; ``notify``
        calls ``on_confirm`` (not for the keeper's own refreshes)."""
        self.valid_until = sent_at + self.ttl
        if notify and self.on_confirm is not None:
            self.on_confirm()

    def lost(self) -> None:
        """Another holder has the lock (or it was released)."""
        self.valid_until = 0.0

    def now(self) -> float:
        """The lease's clock, for ``sent_at``."""
        return self._clock()
