"""Reading and replaying a stream's dead letters (``{stream}:dead``)."""

from __future__ import annotations

from .._constants import DEAD_LETTER_PAGE
from .._keys import dead_letter_key
from .._policy import split_dead_letter
from .._protocol import Arg, parse_entries, xadd_command
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
        letters.append(DeadLetter(entry.id, event, parts.error, parts.deliveries))
    return letters


async def replay_dead_letters(client: AsyncCommands, stream: str) -> int:
    """Move every dead letter back to ``stream`` (XADD first, then XDEL); how many."""
    key = dead_letter_key(stream)
    source = stream.encode()
    moved = 0
    while True:
        page: list[Arg] = [b"XRANGE", key, b"-", b"+", b"COUNT", DEAD_LETTER_PAGE]
        raw = await client.call(page, retry_safe=True)
        entries = [e for e in parse_entries(raw) if e.fields is not None]
        if not entries:
            return moved
        commands = [xadd_command(source, split_dead_letter(e.fields or []).fields) for e in entries]
        replies = await client.execute(commands)  # never resent: a resend could duplicate
        done = [e.id for e, r in zip(entries, replies, strict=True) if isinstance(r, bytes)]
        if done:  # only letters whose XADD Redis confirmed leave the dead letters
            await client.call([b"XDEL", key, *done], retry_safe=True)
            moved += len(done)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
