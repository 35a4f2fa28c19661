"""Pure: commands and replies for looking at a stream without consuming it.

Reading entries without a group (XREVRANGE, XREAD), listing a group's pending entries
(XPENDING with IDLE) and moving them to another consumer (XCLAIM ... JUSTID, which leaves
the delivery counts alone): what ``fluxabee tail``, ``pending`` and ``claim`` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._protocol import Arg, Entry, id_ms
from ._replies import text as _text


@dataclass(frozen=True)
class PendingEntry:
    """One entry delivered to a consumer of a group and not acked yet (XPENDING)."""

    #: The entry ID.
    id: str
    #: The consumer that holds it.
    consumer: str
    #: Seconds since it was last delivered to that consumer.
    idle: float
    #: How many times it was delivered.
    deliveries: int

    @property
    def published_ms(self) -> int:
        """When it was published: the entry ID's milliseconds since the epoch."""
        return id_ms(self.id)


def newest_command(stream: str, count: int) -> list[Arg]:
    """The newest ``count`` entries, newest first."""
    return [b"XREVRANGE", stream, b"+", b"-", b"COUNT", count]


def after_command(stream: str, after: str, count: int, block_ms: int) -> list[Arg]:
    """Entries after ``after``, waiting up to ``block_ms`` for one (0: do not wait)."""
    command: list[Arg] = [b"XREAD", b"COUNT", count]
    if block_ms > 0:
        command += [b"BLOCK", block_ms]
    return [*command, b"STREAMS", stream, after]


def pending_entries_command(
    stream: str, group: str, count: int, min_idle_ms: int = 0, consumer: str | None = None
) -> list[Arg]:
    """XPENDING's extended form, oldest first, entries idle at least ``min_idle_ms``."""
    command: list[Arg] = [b"XPENDING", stream, group]
    if min_idle_ms > 0:
        command += [b"IDLE", min_idle_ms]
    command += [b"-", b"+", count]
    return command if consumer is None else [*command, consumer]


def claim_command(
    stream: str, group: str, consumer: str, min_idle_ms: int, ids: list[str]
) -> list[Arg]:
    """XCLAIM ``ids`` to ``consumer`` if still idle that long; JUSTID: counts unchanged."""
    return [b"XCLAIM", stream, group, consumer, min_idle_ms, *ids, b"JUSTID"]


def parse_pending_entries(raw: Any) -> list[PendingEntry]:
    """XPENDING's extended reply -> entries."""
    return [
        PendingEntry(_text(item[0]), _text(item[1]), int(item[2]) / 1000, int(item[3]))
        for item in raw or ()
    ]


def live(entries: list[Entry]) -> list[Entry]:
    """The entries that still have fields (not deleted)."""
    return [e for e in entries if e.fields is not None]
