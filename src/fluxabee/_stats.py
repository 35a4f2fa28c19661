"""Pure: XINFO / XPENDING / TIME replies -> statistics dataclasses.

Ages are computed against the server's ``TIME``, read in the same round trip, so a client
with a skewed clock still reports true ages. Every age and idle time is in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._keys import dead_letter_key
from ._protocol import Arg, id_ms
from .errors import NoGroupError, RedisReplyError


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
    """One consumer group of a stream (``consumer_group`` unless declared otherwise)."""

    #: Group name.
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
    #: Seconds since the oldest pending entry was published (``None`` when none is).
    lowest_pending_age: float | None
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
    #: Seconds since the oldest entry was published (``None`` when the stream is empty).
    oldest_event_age: float | None
    #: The group, or ``None`` before any consumer created it.
    group: GroupStatistics | None
    #: Seconds since the oldest pending (delivered, not acked) entry was published, ``None``
    #: when none is: FluxaORM's ``OldestEventSeconds``.
    oldest_pending_age: float | None = None
    #: Entries in the dead-letter stream ``{stream}:dead``.
    dead_letters: int = 0


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


def _age_or_none(entry_id: str | None, now_ms: float) -> float | None:
    return None if entry_id is None else _age(entry_id, now_ms)


#: Replies per stream in :func:`statistics_commands`.
PER_STREAM = 5


def statistics_commands(streams: list[str], group: str) -> list[list[Arg]]:
    """One round trip for the statistics of ``streams`` (one pool): ``TIME``, then
    :data:`PER_STREAM` commands per stream."""
    commands: list[list[Arg]] = [[b"TIME"]]
    for stream in streams:
        commands += [
            [b"XINFO", b"STREAM", stream],
            [b"XINFO", b"GROUPS", stream],
            [b"XPENDING", stream, group],
            [b"XINFO", b"CONSUMERS", stream, group],
            [b"XLEN", dead_letter_key(stream)],
        ]
    return commands


def _missing(reply: Any, *, what: type[RedisReplyError] | None = None) -> bool:
    """Whether an error reply only says the stream (or its group) does not exist."""
    if not isinstance(reply, RedisReplyError):
        return False
    if what is not None and isinstance(reply, what):
        return True
    return reply.prefix == "ERR" and "no such key" in str(reply)


def parse_statistics(
    streams: list[str], pool: str, group: str, replies: list[Any]
) -> list[StreamStatistics]:
    """Statistics from the replies of :func:`statistics_commands` (errors raised)."""
    time_reply = replies[0]
    if isinstance(time_reply, RedisReplyError):
        raise time_reply
    out = []
    for index, stream in enumerate(streams):
        base = 1 + index * PER_STREAM
        info_stream, info_groups, pending, consumers, dead = replies[base : base + PER_STREAM]
        if _missing(info_stream):
            info_stream = info_groups = pending = consumers = None
        for reply in (info_stream, info_groups, dead):
            if isinstance(reply, RedisReplyError):
                raise reply
        for reply in (pending, consumers):
            if isinstance(reply, RedisReplyError) and not _missing(reply, what=NoGroupError):
                raise reply
        if isinstance(pending, RedisReplyError) or isinstance(consumers, RedisReplyError):
            pending = consumers = None
        out.append(
            build_statistics(
                stream=stream,
                pool=pool,
                group=group,
                time_reply=time_reply,
                info_stream=info_stream,
                info_groups=info_groups,
                pending_summary=pending,
                info_consumers=consumers,
                dead_letters=int(dead or 0),
            )
        )
    return out


def build_statistics(
    *,
    stream: str,
    pool: str,
    group: str,
    time_reply: Any,
    info_stream: Any,
    info_groups: Any,
    pending_summary: Any,
    info_consumers: Any,
    dead_letters: int = 0,
) -> StreamStatistics:
    """Assemble :class:`StreamStatistics` from the raw replies of one round trip.

    ``info_stream`` is ``None`` when the stream does not exist; ``info_groups``,
    ``pending_summary`` and ``info_consumers`` are ``None`` when the group does not.
    """
    now_ms = server_now_ms(time_reply)
    if info_stream is None:
        return StreamStatistics(stream, pool, 0, None, None, None, dead_letters)
    info = _as_dict(info_stream)
    length = int(info.get("length", 0))
    first = info.get("first-entry")
    oldest_age = _age(_text(first[0]), now_ms) if first else None
    found = None
    for raw_group in info_groups or ():
        g = _as_dict(raw_group)
        if _text(g.get("name", b"")) != group:
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
        found = GroupStatistics(
            name=group,
            lag=None if lag is None else int(lag),
            pending=int(g.get("pending", 0)),
            last_delivered_id=last_id,
            last_delivered_age=_age(last_id, now_ms),
            lowest_pending_id=lowest,
            lowest_pending_age=_age_or_none(lowest, now_ms),
            consumers=consumers,
        )
    pending_age = found.lowest_pending_age if found is not None else None
    return StreamStatistics(stream, pool, length, oldest_age, found, pending_age, dead_letters)
