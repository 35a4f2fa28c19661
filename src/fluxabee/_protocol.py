"""Pure protocol helpers: command arguments, RESP packing, reply parsing, naming.

Both IO shells (asyncio and the generated sync one) call these; none of them does IO.
Replies are the raw RESP2 values hiredis gives (lists of bytes), not redis-py's
per-command parsed shapes, so one parser serves every client and topology.
"""

from __future__ import annotations

import datetime as _dt
import math
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ._constants import GROUP_NAME, MANY_CONSUMER_PREFIX, MANY_CONSUMER_RANDOM_DIGITS
from .errors import InvalidArgumentError

_GROUP_B = GROUP_NAME.encode()


# -- durations ---------------------------------------------------------------------------


def to_seconds(value: float | _dt.timedelta, name: str) -> float:
    """A duration given as ``timedelta`` or seconds, as non-negative finite seconds."""
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidArgumentError(
            f"{name} must be seconds (float) or a datetime.timedelta, not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{name} must be a finite duration >= 0, got {value!r}")
    return seconds


def to_ms(value: float | _dt.timedelta, name: str) -> int:
    """A duration as whole Redis milliseconds (rounded up, so 0.0001 s is not 'now')."""
    return math.ceil(to_seconds(value, name) * 1000)


def check_count(count: int, name: str = "count") -> int:
    """A positive batch size."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {count!r}")
    return count


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


def encode_arg(arg: bytes | str | int | float) -> bytes:
    """One command argument as bytes."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return repr(arg).encode()
    raise TypeError(f"unsupported argument type {type(arg).__name__}")


def pack_command(args: Sequence[bytes | str | int | float]) -> bytes:
    """Pack one command in RESP: ``*N\\r\\n$len\\r\\narg\\r\\n...``."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = encode_arg(arg)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(b"\r\n")
    return b"".join(out)


def pack_commands(commands: Iterable[Sequence[bytes | str | int | float]]) -> bytes:
    """Pack many commands into one buffer, for one write and one round trip."""
    return b"".join(pack_command(c) for c in commands)


def xadd_header(stream: str) -> bytes:
    """The fixed part of ``XADD <stream> *`` in RESP, cached per stream by the broker."""
    name = stream.encode()
    return b"$4\r\nXADD\r\n$%d\r\n%b\r\n$1\r\n*\r\n" % (len(name), name)


def pack_xadd(header: bytes, fields: Sequence[bytes]) -> bytes:
    """``XADD <stream> * field value ...`` in RESP, from :func:`xadd_header`."""
    if len(fields) == 2 and fields[0] == b"s":
        body = fields[1]
        return b"*5\r\n%b$1\r\ns\r\n$%d\r\n%b\r\n" % (header, len(body), body)
    parts = [b"$%d\r\n%b\r\n" % (len(f), f) for f in fields]
    return b"*%d\r\n%b%b" % (len(fields) + 3, header, b"".join(parts))


def pack_ack(stream: str, ids: Sequence[str]) -> bytes:
    """``XACK <stream> consumer_group ids...`` + ``XDEL <stream> ids...`` in RESP."""
    name = stream.encode()
    args = b"".join([b"$%d\r\n%b\r\n" % (len(i), i) for i in (x.encode() for x in ids)])
    key = b"$%d\r\n%b\r\n" % (len(name), name)
    return b"*%d\r\n$4\r\nXACK\r\n%b$%d\r\n%b\r\n%b*%d\r\n$4\r\nXDEL\r\n%b%b" % (
        len(ids) + 3,
        key,
        len(_GROUP_B),
        _GROUP_B,
        args,
        len(ids) + 2,
        key,
        args,
    )


def xadd_command(stream: bytes, fields: Sequence[bytes]) -> list[bytes]:
    """``XADD <stream> * field value ...``."""
    return [b"XADD", stream, b"*", *fields]


def group_create_command(stream: str) -> list[bytes | str]:
    """``XGROUP CREATE <stream> consumer_group 0 MKSTREAM``: events already there count."""
    return [b"XGROUP", b"CREATE", stream, _GROUP_B, b"0", b"MKSTREAM"]


def xreadgroup_command(
    stream: str, consumer: str, count: int, *, pending: bool, block_ms: int
) -> list[bytes | str | int]:
    """XREADGROUP for one stream (Cluster-safe): own pending from ``0``, or new with ``>``.

    ``block_ms == 0`` sends no BLOCK (Redis's ``BLOCK 0`` would wait forever).
    """
    cmd: list[bytes | str | int] = [b"XREADGROUP", b"GROUP", _GROUP_B, consumer, b"COUNT", count]
    if block_ms > 0 and not pending:
        cmd += [b"BLOCK", block_ms]
    cmd += [b"STREAMS", stream, b"0" if pending else b">"]
    return cmd


def pending_command(
    stream: str, consumer: str, count: int, start: str = "-", end: str = "+"
) -> list[bytes | str | int]:
    """``XPENDING <stream> consumer_group <start> <end> <count> <consumer>``: counts per ID."""
    return [b"XPENDING", stream, _GROUP_B, start, end, count, consumer]


def xautoclaim_command(
    stream: str, consumer: str, min_idle_ms: int, start: str, count: int
) -> list[bytes | str | int]:
    """``XAUTOCLAIM <stream> consumer_group <consumer> <min-idle> <start> COUNT <n>``."""
    return [b"XAUTOCLAIM", stream, _GROUP_B, consumer, min_idle_ms, start, b"COUNT", count]


# -- reply parsing -----------------------------------------------------------------------


class Entry(NamedTuple):
    """One stream entry from a reply: ``fields`` is ``None`` for a deleted entry."""

    id: str
    fields: list[bytes] | None
    #: Delivery count (1 for new entries; from XPENDING for re-read and claimed ones).
    deliveries: int = 1


def parse_entries(raw: Any) -> list[Entry]:
    """``[[id, [f, v, ...]], ...]`` -> entries (deleted ones keep ``fields=None``)."""
    if not raw:
        return []
    return [Entry(item[0].decode(), item[1]) for item in raw]


def parse_xreadgroup(raw: Any) -> list[Entry]:
    """An XREADGROUP reply for one stream -> its entries (``None`` reply -> ``[]``)."""
    if not raw:
        return []
    return parse_entries(raw[0][1])


class AutoclaimReply(NamedTuple):
    """XAUTOCLAIM's reply: next cursor, claimed entries, IDs that no longer exist."""

    cursor: str
    entries: list[Entry]
    deleted: list[str]


def parse_xautoclaim(raw: Any) -> AutoclaimReply:
    """Parse XAUTOCLAIM for Redis 6.2 (two elements) and 7+ (three elements)."""
    cursor = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
    entries = parse_entries(raw[1])
    deleted = [d.decode() if isinstance(d, bytes) else d for d in raw[2]] if len(raw) > 2 else []
    # Redis 6.2 reports deleted pending entries as [id, nil] among the claimed ones.
    return AutoclaimReply(cursor, entries, deleted)


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
