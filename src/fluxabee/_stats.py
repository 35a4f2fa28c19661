"""Pure: XINFO / XPENDING / TIME replies -> statistics dataclasses.

Ages are computed against the server's ``TIME``, read in the same round trip, so a client
with a skewed clock still reports true ages. Every age and idle time is in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._constants import GROUP_NAME
from ._protocol import id_ms


@dataclass(frozen=True)
class ConsumerStatistics:
    """One consumer of a stream's group."""

    #: Consumer name.
    name: str
    #: Events delivered to it and not yet acked.
    pending: int
    #: Seconds since it last read or claimed.
    idle: float


@dataclass(frozen=True)
class GroupStatistics:
    """The ``consumer_group`` of a stream."""

    #: Group name (always ``consumer_group``).
    name: str
    #: Entries not yet delivered to the group (``None`` when Redis cannot tell, or < 7.0).
    lag: int | None
    #: Entries delivered and not yet acked.
    pending: int
    #: ID of the last entry delivered to the group.
    last_delivered_id: str
    #: Seconds since the last delivered entry was published (0 when none).
    last_delivered_age: float
    #: Oldest pending entry ID (``None`` when nothing is pending).
    lowest_pending_id: str | None
    #: Seconds since the oldest pending entry was published (0 when none).
    lowest_pending_age: float
    #: The group's consumers.
    consumers: tuple[ConsumerStatistics, ...]


@dataclass(frozen=True)
class StreamStatistics:
    """Length, age and consumer-group state of one stream."""

    #: Stream name.
    stream: str
    #: Code of the Redis pool the stream lives on.
    pool: str
    #: Entries in the stream: with ack = XACK + XDEL, this is the backlog.
    length: int
    #: Seconds since the oldest entry was published (0 when empty).
    oldest_event_age: float
    #: The group, or ``None`` before any consumer created it.
    group: GroupStatistics | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_dict(flat: Any) -> dict[str, Any]:
    it = iter(flat or ())
    return {_text(k): v for k, v in zip(it, it, strict=False)}


def server_now_ms(time_reply: Any) -> float:
    """TIME's ``[seconds, microseconds]`` -> milliseconds since the epoch."""
    return int(time_reply[0]) * 1000 + int(time_reply[1]) / 1000


def _age(entry_id: str | None, now_ms: float) -> float:
    if not entry_id or entry_id == "0-0":
        return 0.0
    return max(0.0, (now_ms - id_ms(entry_id)) / 1000)


def build_statistics(
    *,
    stream: str,
    pool: str,
    time_reply: Any,
    info_stream: Any,
    info_groups: Any,
    pending_summary: Any,
    info_consumers: Any,
) -> StreamStatistics:
    """Assemble :class:`StreamStatistics` from the raw replies of one round trip.

    ``info_stream`` is ``None`` when the stream does not exist; ``info_groups``,
    ``pending_summary`` and ``info_consumers`` are ``None`` when the group does not.
    """
    now_ms = server_now_ms(time_reply)
    if info_stream is None:
        return StreamStatistics(stream, pool, 0, 0.0, None)
    info = _as_dict(info_stream)
    length = int(info.get("length", 0))
    first = info.get("first-entry")
    oldest_age = _age(_text(first[0]), now_ms) if first else 0.0
    group = None
    for raw_group in info_groups or ():
        g = _as_dict(raw_group)
        if _text(g.get("name", b"")) != GROUP_NAME:
            continue
        lag = g.get("lag")
        last_id = _text(g.get("last-delivered-id", b"0-0"))
        lowest = _text(pending_summary[1]) if pending_summary and pending_summary[1] else None
        consumers = tuple(
            ConsumerStatistics(
                name=_text(c.get("name", b"")),
                pending=int(c.get("pending", 0)),
                idle=int(c.get("idle", 0)) / 1000,
            )
            for c in map(_as_dict, info_consumers or ())
        )
        group = GroupStatistics(
            name=GROUP_NAME,
            lag=None if lag is None else int(lag),
            pending=int(g.get("pending", 0)),
            last_delivered_id=last_id,
            last_delivered_age=_age(last_id, now_ms),
            lowest_pending_id=lowest,
            lowest_pending_age=_age(lowest, now_ms),
            consumers=consumers,
        )
    return StreamStatistics(stream, pool, length, oldest_age, group)
