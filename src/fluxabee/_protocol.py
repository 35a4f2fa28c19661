"""Pure protocol helpers: command arguments, RESP packing, reply parsing, naming.

Both IO shells (asyncio and the generated sync one) call these; none of them does IO.
Replies are the raw RESP2 values hiredis gives (lists of bytes), not redis-py's
per-command parsed shapes, so one parser serves every client and topology.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Sequence
from typing import Any, NamedTuple

import hiredis

from ._constants import BODY_FIELD, MANY_CONSUMER_PREFIX, MANY_CONSUMER_RANDOM_DIGITS

#: One command argument as the packer takes it.
Arg = bytes | str | int | float
#: One command: its name and arguments.
Command = Sequence[Arg]


# -- consumer names ----------------------------------------------------------------------


def many_consumer_name(now: _dt.datetime | None = None, rand: int | None = None) -> str:
    """A ``consumer_many`` name: ``consumer-2025_02_11_12_23_21-4943234234234234``.

    UTC time of creation, then random digits (``secrets``): two never collide in practice.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if rand is None:
        rand = secrets.randbelow(10**MANY_CONSUMER_RANDOM_DIGITS)
    return f"{MANY_CONSUMER_PREFIX}{now:%Y_%m_%d_%H_%M_%S}-{rand:0{MANY_CONSUMER_RANDOM_DIGITS}d}"


# -- RESP packing ------------------------------------------------------------------------


def encode_arg(arg: Arg) -> bytes:
    """One command argument as bytes."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise TypeError(f"unsupported argument type {type(arg).__name__}")


def pack_command(args: Command) -> bytes:
    """Pack one command in RESP: ``*N\\r\\n$len\\r\\narg\\r\\n...``."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = encode_arg(arg)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


def split_packed(payload: bytes | list[bytes], count: int) -> list[bytes]:
    """``count`` packed commands, one ``bytes`` each (for a slow path: a Cluster redirect)."""
    if isinstance(payload, list) and len(payload) == count:
        return payload
    reader = hiredis.Reader()
    reader.feed(b"".join(payload) if isinstance(payload, list) else payload)
    commands = [reader.gets() for _ in range(count)]
    if any(c is False for c in commands) or reader.gets() is not False:
        raise ValueError(f"the payload does not hold exactly {count} commands")
    return [pack_command(c) for c in commands]


#: ``ASKING`` in RESP: sent before a command that follows an ASK redirect.
ASKING = b"*1\r\n$6\r\nASKING\r\n"


def xadd_header(stream: str) -> bytes:
    """The fixed part of ``XADD <stream> *`` in RESP, cached per stream by the broker."""
    name = stream.encode()
    return b"$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n" % (len(name), name)


def pack_xadd(header: bytes, fields: Sequence[bytes]) -> bytes:
    """``XADD <stream> * field value ...`` in RESP, from :func:`xadd_header`."""
    parts = [b"$%d\r\n%b\r\n" % (len(f), f) for f in fields]
    return b"*%d\r\n%b%b" % (len(fields) + 3, header, b"".join(parts))


def pack_body_xadd(header: bytes, body: bytes) -> bytes:
    """``XADD <stream> * s <body>`` in RESP: :func:`pack_xadd` for an event without meta,
    in one format (it runs per publish)."""
    return _BODY_XADD % (header, len(body), body)


#: The format of :func:`pack_body_xadd`: header, then the body field and its value.
_BODY_XADD = b"*5\r\n%%b$%d\r\n%b\r\n$%%d\r\n%%b\r\n" % (len(BODY_FIELD), BODY_FIELD.encode())


def _bulks(ids: Sequence[str]) -> bytes:
    """Stream IDs as RESP bulk strings, joined (IDs are ASCII: characters are bytes)."""
    return "".join([f"${len(i)}\r\n{i}\r\n" for i in ids]).encode()


def pack_ack(stream: str, group: str, ids: Sequence[str]) -> bytes:
    """``XACK <stream> <group> ids...`` + ``XDEL <stream> ids...`` in RESP (two commands)."""
    name = stream.encode()
    group_b = group.encode()
    args = _bulks(ids)
    key = b"$%d\r\n%b\r\n" % (len(name), name)
    return b"*%d\r\n$4\r\nXACK\r\n%b$%d\r\n%b\r\n%b*%d\r\n$4\r\nXDEL\r\n%b%b" % (
        len(ids) + 3,
        key,
        len(group_b),
        group_b,
        args,
        len(ids) + 2,
        key,
        args,
    )


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack_xack(stream: str, group: str, ids: Sequence[str]) -> bytes:
    """``XACK <stream> <group> ids...`` in RESP (one command): acking that leaves the entries
    for a trim (``retention: trim``, or several groups without XACKDEL)."""
    args = _bulks(ids)
    return b"*%d\r\n$4\r\nXACK\r\n%b%b%b" % (
        len(ids) + 3,
        _bulk(stream.encode()),
        _bulk(group.encode()),
        args,
    )


def pack_xackdel(stream: str, group: str, ids: Sequence[str]) -> bytes:
    """``XACKDEL <stream> <group> ACKED IDS <n> ids...`` in RESP (one command, Redis 8.2+):
    acks, and deletes each entry only once every group of the stream has acked it."""
    args = _bulks(ids)
    return b"*%d\r\n$7\r\nXACKDEL\r\n%b%b$5\r\nACKED\r\n$3\r\nIDS\r\n%b%b" % (
        len(ids) + 6,
        _bulk(stream.encode()),
        _bulk(group.encode()),
        _bulk(b"%d" % len(ids)),
        args,
    )


def xtrim_minid_command(stream: str, minid: str, *, acked: bool = False) -> list[Arg]:
    """``XTRIM <stream> MINID <minid> [ACKED]``: exact (never ``~``: with ACKED it removed
    nothing on Redis 8.2.3), removes the entries with IDs below ``minid``. ``ACKED``
    (Redis 8.2+) also keeps any entry a group has not acked, as a second guard."""
    command: list[Arg] = [b"XTRIM", stream, b"MINID", minid]
    if acked:
        command.append(b"ACKED")
    return command


def stream_full_command(stream: str) -> list[Arg]:
    """``XINFO STREAM <stream> FULL COUNT 1``: length, first entry, and per group its
    last-delivered ID and its lowest pending entry (a PEL is kept in ID order)."""
    return [b"XINFO", b"STREAM", stream, b"FULL", b"COUNT", 1]


def xadd_command(stream: str | bytes, fields: Sequence[bytes]) -> list[Arg]:
    """``XADD <stream> * field value ...``."""
    return [b"XADD", stream, b"*", *fields]


def group_create_command(stream: str, group: str, *, mkstream: bool = True) -> list[Arg]:
    """``XGROUP CREATE <stream> <group> 0 [MKSTREAM]``: events already there count."""
    command: list[Arg] = [b"XGROUP", b"CREATE", stream, group, b"0"]
    if mkstream:
        command.append(b"MKSTREAM")
    return command


def xreadgroup_command(
    stream: str, group: str, consumer: str, count: int, *, start: str, block_ms: int = 0
) -> list[Arg]:
    """XREADGROUP of one stream (Cluster-safe): own pending after ``start``, or new (``>``).

    Only a read of new entries blocks, and ``block_ms == 0`` sends no BLOCK (Redis's
    ``BLOCK 0`` would wait forever).
    """
    cmd: list[Arg] = [b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", count]
    if block_ms > 0 and start == ">":
        cmd += [b"BLOCK", block_ms]
    cmd += [b"STREAMS", stream, start]
    return cmd


def pending_command(
    stream: str, group: str, consumer: str, count: int, *, start: str = "-", end: str = "+"
) -> list[Arg]:
    """``XPENDING <stream> <group> <start> <end> <count> <consumer>``: counts per ID."""
    return [b"XPENDING", stream, group, start, end, count, consumer]


def xautoclaim_command(
    stream: str, group: str, consumer: str, *, min_idle_ms: int, start: str, count: int
) -> list[Arg]:
    """``XAUTOCLAIM <stream> <group> <consumer> <min-idle> <start> COUNT <n>``."""
    return [b"XAUTOCLAIM", stream, group, consumer, min_idle_ms, start, b"COUNT", count]


def command_name(command: Command) -> str:
    """A command's name for messages (``XINFO STREAM``, ``EVALSHA``...)."""
    first = command[0]
    name = first.decode() if isinstance(first, bytes) else str(first)
    if name.upper() in ("XINFO", "XGROUP", "CONFIG", "SCRIPT", "CLIENT") and len(command) > 1:
        second = command[1]
        name += " " + (second.decode() if isinstance(second, bytes) else str(second))
    return name.upper()


# -- reply parsing -----------------------------------------------------------------------


class Entry(NamedTuple):
    """One stream entry from a reply: ``fields`` is ``None`` for a deleted entry."""

    id: str
    fields: list[bytes] | None
    #: Delivery count (1 for new entries; from XPENDING for re-read and claimed ones).
    deliveries: int = 1


def parse_entries(raw: Any) -> list[Entry]:
    """``[[id, [f, v, ...]], ...]`` -> entries (deleted ones keep ``fields=None``).

    A bare nil where an entry should be (Redis 6.2's XAUTOCLAIM of a deleted entry) is
    skipped: it carries no ID.
    """
    if not raw:
        return []
    new = tuple.__new__  # the hot path: skips the namedtuple's Python-level __new__
    return [new(Entry, (item[0].decode(), item[1], 1)) for item in raw if item is not None]


def parse_xreadgroup(raw: Any) -> list[Entry]:
    """An XREADGROUP reply for one stream -> its entries (``None`` reply -> ``[]``)."""
    if not raw:
        return []
    return parse_entries(raw[0][1])


def raw_entries(raw: Any) -> list[list[Any]]:
    """An XREADGROUP reply of new entries for one stream -> its items as hiredis built them,
    ``[id bytes, fields]`` each, unparsed (the hot path: the machine turns each into an
    event and frees it at once; see ``ConsumerMachine.prepare``)."""
    if not raw:
        return []
    items: list[list[Any]] = raw[0][1]
    return items


class AutoclaimReply(NamedTuple):
    """XAUTOCLAIM's reply: next cursor, claimed entries, and how many bare nils stood for
    deleted entries (Redis 6.2: claimed, yet without an ID). Redis 7's third element (IDs
    it found deleted) is not kept: Redis already dropped them from the pending list."""

    cursor: str
    entries: list[Entry]
    holes: int = 0


def parse_xautoclaim(raw: Any) -> AutoclaimReply:
    """Parse XAUTOCLAIM for Redis 6.2 (two elements) and 7+ (three elements)."""
    cursor = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    items = raw[1] or []
    entries = parse_entries(items)
    return AutoclaimReply(cursor, entries, len(items) - len(entries))


def parse_pending_counts(raw: Any) -> dict[str, int]:
    """XPENDING extended form -> ``{id: delivery_count}``."""
    out: dict[str, int] = {}
    for item in raw or ():
        entry_id = item[0].decode() if isinstance(item[0], bytes) else item[0]
        out[entry_id] = int(item[3])
    return out


def id_ms(entry_id: str | bytes) -> int:
    """The millisecond part of a stream ID (``"1700000000000-3"`` -> 1700000000000)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])
