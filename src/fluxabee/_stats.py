"""Pure: XINFO / XPENDING / TIME replies -> statistics dataclasses.

Ages are computed against the server's ``TIME``, read in the same round trip, so a client
with a skewed clock still reports true ages. Every age and idle time is in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._keys import dead_letter_key
from ._protocol import Arg, id_ms
from ._replies import no_such_key
from ._replies import text as _text
from ._retention import over_cap
from ._streamconfig import Stream
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
    #: Entries not yet delivered to the group. ``None`` when Redis cannot tell: before 7.0,
    #: and where entries were deleted past the group's position (Redis says nil there).
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
    #: Entries delivered to the group since it was created (Redis 7.0+ ``entries-read``;
    #: ``None`` before 7.0 or when Redis cannot tell): its out rate, sampled over time.
    entries_read: int | None = None

    @property
    def oldest_pending_age(self) -> float | None:
        """Seconds since the group's oldest pending entry was published (``None``: none is);
        the same as :attr:`lowest_pending_age`."""
        return self.lowest_pending_age


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
    #: The first declared group, or ``None`` before any consumer created it.
    group: GroupStatistics | None
    #: Seconds since the oldest pending (delivered, not acked) entry of any group was
    #: published, ``None`` when none is: FluxaORM's ``OldestEventSeconds``.
    oldest_pending_age: float | None = None
    #: Entries in the dead-letter stream ``{stream}:dead`` (of every group).
    dead_letters: int = 0
    #: One entry per declared group that exists, in declared order.
    groups: tuple[GroupStatistics, ...] = ()
    #: Whether the stream is over its ``max_len`` or ``max_age`` (fluxabee removes acked
    #: entries, so this means a group lags, or holds an old entry pending).
    over_cap: bool = False
    #: Entries ever added to the stream (Redis 7.0+ ``entries-added``; ``None`` before):
    #: its in rate, sampled over time.
    entries_added: int | None = None


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


def per_stream(stream: Stream) -> int:
    """Replies per stream in :func:`statistics_commands`: three, and two per group."""
    return 3 + 2 * len(stream.groups)


def statistics_commands(streams: list[Stream]) -> list[list[Arg]]:
    """One round trip for the statistics of ``streams`` (one pool): ``TIME``, then
    :func:`per_stream` commands per stream."""
    commands: list[list[Arg]] = [[b"TIME"]]
    for stream in streams:
        name = stream.name
        commands += [[b"XINFO", b"STREAM", name], [b"XINFO", b"GROUPS", name]]
        for group in stream.groups:
            commands += [[b"XPENDING", name, group], [b"XINFO", b"CONSUMERS", name, group]]
        commands.append([b"XLEN", dead_letter_key(name)])
    return commands


def _missing(reply: Any, *, what: type[RedisReplyError] | None = None) -> bool:
    """Whether an error reply only says the stream (or its group) does not exist."""
    if not isinstance(reply, RedisReplyError):
        return False
    if what is not None and isinstance(reply, what):
        return True
    return no_such_key(reply)


def parse_statistics(
    streams: list[Stream], pool: str, replies: list[Any]
) -> list[StreamStatistics]:
    """Statistics from the replies of :func:`statistics_commands` (errors raised)."""
    time_reply = replies[0]
    if isinstance(time_reply, RedisReplyError):
        raise time_reply
    out = []
    base = 1
    for stream in streams:
        size = per_stream(stream)
        chunk = replies[base : base + size]
        base += size
        info_stream, info_groups, dead = chunk[0], chunk[1], chunk[-1]
        per_group = [(chunk[i], chunk[i + 1]) for i in range(2, size - 1, 2)]
        if _missing(info_stream):
            info_stream = info_groups = None
            per_group = [(None, None) for _ in per_group]
        for reply in (info_stream, info_groups, dead):
            if isinstance(reply, RedisReplyError):
                raise reply
        for pair in per_group:
            for reply in pair:
                if isinstance(reply, RedisReplyError) and not _missing(reply, what=NoGroupError):
                    raise reply
        out.append(
            build_statistics(
                stream=stream,
                pool=pool,
                time_reply=time_reply,
                info_stream=info_stream,
                info_groups=info_groups,
                pending_summaries=[None if _error(p) else p for p, _ in per_group],
                info_consumers=[None if _error(c) else c for _, c in per_group],
                dead_letters=int(dead or 0),
            )
        )
    return out


def _error(reply: Any) -> bool:
    return isinstance(reply, RedisReplyError)


def _group_statistics(
    name: str, raw_group: Any, pending_summary: Any, info_consumers: Any, now_ms: float
) -> GroupStatistics:
    g = _as_dict(raw_group)
    lag = g.get("lag")
    read = g.get("entries-read")
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
    return GroupStatistics(
        name=name,
        lag=None if lag is None else int(lag),
        pending=int(g.get("pending", 0)),
        last_delivered_id=last_id,
        last_delivered_age=_age(last_id, now_ms),
        lowest_pending_id=lowest,
        lowest_pending_age=_age_or_none(lowest, now_ms),
        consumers=consumers,
        entries_read=None if read is None else int(read),
    )


def build_statistics(
    *,
    stream: Stream,
    pool: str,
    time_reply: Any,
    info_stream: Any,
    info_groups: Any,
    pending_summaries: list[Any],
    info_consumers: list[Any],
    dead_letters: int = 0,
) -> StreamStatistics:
    """Assemble :class:`StreamStatistics` from the raw replies of one round trip.

    ``info_stream`` is ``None`` when the stream does not exist. ``pending_summaries`` and
    ``info_consumers`` have one reply per declared group, ``None`` where it does not exist.
    """
    now_ms = server_now_ms(time_reply)
    name = stream.name
    if info_stream is None:
        return StreamStatistics(name, pool, 0, None, None, None, dead_letters)
    info = _as_dict(info_stream)
    length = int(info.get("length", 0))
    first = info.get("first-entry")
    first_id = _text(first[0]) if first else None
    oldest_age = _age(first_id, now_ms) if first_id else None
    raw_groups = {_text(g.get("name", b"")): raw for raw, g in _groups(info_groups)}
    found = tuple(
        _group_statistics(group, raw_groups[group], summary, consumers, now_ms)
        for group, summary, consumers in zip(
            stream.groups, pending_summaries, info_consumers, strict=True
        )
        if group in raw_groups
    )
    first_group = found[0] if found and found[0].name == stream.groups[0] else None
    ages = [g.lowest_pending_age for g in found if g.lowest_pending_age is not None]
    added = info.get("entries-added")
    return StreamStatistics(
        name,
        pool,
        length,
        oldest_age,
        first_group,
        max(ages) if ages else None,
        dead_letters,
        found,
        over_cap(stream, length, first_id, now_ms) is not None,
        None if added is None else int(added),
    )


def _groups(info_groups: Any) -> list[tuple[Any, dict[str, Any]]]:
    return [(raw, _as_dict(raw)) for raw in info_groups or ()]
