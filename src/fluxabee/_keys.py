"""Pure: Redis Cluster slots and the names of the keys fluxabee derives from a stream.

A key's slot is ``CRC16(key) mod 16384`` over its hash tag when it has one: the part
between the first ``{`` and the first ``}`` after it, when that part is non-empty (Redis's
rule). Every key fluxabee derives from a stream (dead letters, locks) lives in the stream's
slot, so each command and Lua script touches one slot only, on a Cluster too.
"""

from __future__ import annotations

from functools import lru_cache

from ._constants import DEAD_LETTER_SUFFIX, GROUP_NAME, LOCK_GROUP_SUFFIX, LOCK_KEY_SUFFIX

#: Number of hash slots of a Redis Cluster.
SLOTS = 16384


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster uses."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def hash_tag(key: bytes) -> bytes | None:
    """The hash tag of ``key`` (first ``{``, first ``}`` after it, non-empty), or ``None``."""
    opening = key.find(b"{")
    if opening == -1:
        return None
    closing = key.find(b"}", opening + 1)
    if closing <= opening + 1:  # no closing brace, or an empty tag "{}"
        return None
    return key[opening + 1 : closing]


def key_slot(key: str | bytes) -> int:
    """The Cluster slot of ``key``."""
    data = key.encode() if isinstance(key, str) else key
    tag = hash_tag(data)
    return crc16(data if tag is None else tag) % SLOTS


@lru_cache(maxsize=1024)
def _tag_for_slot(slot: int) -> str:
    """The smallest decimal string whose slot is ``slot`` (found by search, then cached)."""
    number = 0
    while crc16(str(number).encode()) % SLOTS != slot:
        number += 1
    return str(number)


@lru_cache(maxsize=4096)
def derived_key(stream: str, suffix: str) -> str:
    """A key named after ``stream`` + ``suffix`` that lives in ``stream``'s slot.

    - ``stream`` has a hash tag: ``stream + suffix`` keeps it (``{orders}.eu:dead``);
    - no ``}`` in ``stream``: ``{stream}suffix`` (``{orders}:dead``, FluxaORM-style);
    - otherwise (``a}b``, ``a{}b``: no tag, yet a ``}`` that would end one early): a tag
      of digits chosen to hash to the stream's slot leads the name (``{8191}a{}b:dead``).
    """
    data = stream.encode()
    if hash_tag(data) is not None:
        return stream + suffix
    if b"}" not in data:
        return "{" + stream + "}" + suffix
    return "{" + _tag_for_slot(key_slot(data)) + "}" + stream + suffix


def dead_letter_key(stream: str) -> str:
    """The dead-letter stream of ``stream``: ``{stream}:dead`` (same Cluster slot)."""
    return derived_key(stream, DEAD_LETTER_SUFFIX)


def lock_key(stream: str, group: str = GROUP_NAME) -> str:
    """The ``consumer_single`` lock of ``stream`` in ``group`` (same Cluster slot):
    ``{stream}:lock`` for ``consumer_group`` (the key existing locks use), else
    ``{stream}:lock:<group>``, so each group has its own single consumer."""
    if group == GROUP_NAME:
        return derived_key(stream, LOCK_KEY_SUFFIX)
    return derived_key(stream, LOCK_GROUP_SUFFIX + group)
