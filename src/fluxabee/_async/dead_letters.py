"""Reading and replaying a stream's dead letters (``{stream}:dead``, one per stream, each
letter naming the group it failed in)."""

from __future__ import annotations

from collections.abc import Collection

from .._constants import DEAD_LETTER_PAGE
from .._keys import dead_letter_key
from .._policy import split_dead_letter
from .._protocol import Arg, parse_entries, xadd_command
from .._retention import replay_fields
from .._streamconfig import Stream
from ..codec import split_fields
from ..errors import RedisReplyError
from ..event import AsyncDeadLetter, AsyncEvent, DeadLetter, Event
from .client import AsyncCommands


async def read_dead_letters(
    client: AsyncCommands, stream: str, count: int
) -> list[AsyncDeadLetter]:
    """The oldest ``count`` dead letters of ``stream``."""
    key = dead_letter_key(stream)
    raw = await client.call([b"XRANGE", key, b"-", b"+", b"COUNT", count], retry_safe=True)
    letters: list[AsyncDeadLetter] = []
    for entry in parse_entries(raw):
        parts = split_dead_letter(entry.fields or [])
        body, meta = split_fields(parts.fields)

        async def delete(event: AsyncEvent, dead_id: str = entry.id) -> None:
            if not event.acked:
                await client.call([b"XDEL", key, dead_id], retry_safe=True)
                event.acked = True

        event: AsyncEvent = Event(
            id=parts.source_id or entry.id,
            stream=stream,
            raw_body=body,
            meta=meta,
            acker=delete,
            delivery_count=parts.deliveries,
        )
        letters.append(DeadLetter(entry.id, event, parts.error, parts.deliveries, parts.group))
    return letters


async def replay_dead_letters(
    client: AsyncCommands,
    settings: Stream,
    group: str | None = None,
    ids: Collection[str] | None = None,
) -> int:
    """Move the dead letters (of ``group``, or all; only the letters ``ids`` when given)
    back to the stream (XADD first, then XDEL), each for the group it failed in
    (:func:`~fluxabee._retention.replay_fields`); how many."""
    stream = settings.name
    key = dead_letter_key(stream)
    source = stream.encode()
    moved = 0
    start = "-"
    while True:
        page: list[Arg] = [b"XRANGE", key, start, b"+", b"COUNT", DEAD_LETTER_PAGE]
        raw = await client.call(page, retry_safe=True)
        entries = [e for e in parse_entries(raw) if e.fields is not None]
        if not entries:
            return moved
        start = "(" + entries[-1].id  # the next page starts after this one (Redis 6.2+)
        letters = [(e, split_dead_letter(e.fields or [])) for e in entries]
        chosen = [
            (e, p)
            for e, p in letters
            if (group is None or p.group == group) and (ids is None or e.id in ids)
        ]
        if not chosen:
            continue
        commands = [
            xadd_command(source, replay_fields(p.fields, p.group, settings.groups))
            for _, p in chosen
        ]
        replies = await client.execute(commands)  # never resent: a resend could duplicate
        done = [e.id for (e, _), r in zip(chosen, replies, strict=True) if isinstance(r, bytes)]
        if done:  # only letters whose XADD Redis confirmed leave the dead letters
            await client.call([b"XDEL", key, *done], retry_safe=True)
            moved += len(done)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
