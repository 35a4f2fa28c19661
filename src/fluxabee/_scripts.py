"""Lua scripts shipped as package data, loaded once, called through named builders.

Each builder returns an ``EVAL`` command for ``execute``; Redis caches the compiled script
by its SHA, so sending the text costs bytes, not compilation. Every script touches only
keys in one Cluster slot (a stream and its ``{stream}:...`` companions).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from ._constants import GROUP_NAME


@cache
def _source(name: str) -> bytes:
    return resources.files("fluxabee").joinpath("lua").joinpath(f"{name}.lua").read_bytes()


def cleanup_consumer(stream: str, consumer: str) -> list[bytes | str]:
    """Delete ``consumer`` from the group unless it holds pending entries (1 / 0 / -1)."""
    return [b"EVAL", _source("cleanup"), b"1", stream, GROUP_NAME, consumer]


def read_single(
    stream: str, lock: str, *, token: str, ttl_ms: int, consumer: str, count: int, pending: bool
) -> list[bytes | str | int]:
    """Read the group under the lock (see ``lua/read_single.lua`` for the reply)."""
    return [
        b"EVAL",
        _source("read_single"),
        b"2",
        stream,
        lock,
        token,
        ttl_ms,
        GROUP_NAME,
        consumer,
        count,
        b"0" if pending else b">",
    ]


def lock_refresh(lock: str, token: str, ttl_ms: int) -> list[bytes | str | int]:
    """Take or extend a lock: 1 when held, else minus the holder's remaining ms."""
    return [b"EVAL", _source("lock_refresh"), b"1", lock, token, ttl_ms]


def lock_release(lock: str, token: str) -> list[bytes | str]:
    """Release a lock if it is still ours (1 released, 0 not ours)."""
    return [b"EVAL", _source("lock_release"), b"1", lock, token]
