"""Lua scripts shipped as package data, run by EVALSHA, called through named builders.

Each builder returns a :class:`ScriptCall`; the client sends it as ``EVALSHA`` once it knows
the server has the script, else as ``EVAL`` (which also loads it), and re-sends a call that
got ``NOSCRIPT`` (a restarted or flushed server) as ``EVAL``: a NOSCRIPT call did not run,
so re-sending it is safe even for scripts that read. Every script touches only keys in one
Cluster slot (a stream and its ``{stream}:...`` companions).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ._protocol import Arg


@dataclass(frozen=True)
class Script:
    """One Lua script: its name, source and SHA1 (hex, as EVALSHA takes it)."""

    name: str
    source: bytes
    sha: bytes


@cache
def script(name: str) -> Script:
    """The script ``lua/<name>.lua``, read once."""
    source = resources.files("fluxabee").joinpath("lua").joinpath(f"{name}.lua").read_bytes()
    return Script(name, source, hashlib.sha1(source).hexdigest().encode())


@dataclass(frozen=True)
class ScriptCall:
    """A call of a script with its keys and arguments, packed by the client."""

    script: Script
    keys: tuple[Arg, ...]
    args: tuple[Arg, ...]

    def as_eval(self) -> list[Arg]:
        """``EVAL <source> <nkeys> keys... args...``."""
        return [b"EVAL", self.script.source, len(self.keys), *self.keys, *self.args]

    def as_evalsha(self) -> list[Arg]:
        """``EVALSHA <sha> <nkeys> keys... args...``."""
        return [b"EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args]


def cleanup_consumer(stream: str, group: str, consumer: str) -> ScriptCall:
    """Delete ``consumer`` from the group unless it holds pending entries (1 / 0 / -1)."""
    return ScriptCall(script("cleanup"), (stream,), (group, consumer))


def prune_consumers(stream: str, group: str, idle_ms: int, prefix: str, keep: str) -> ScriptCall:
    """Delete the group's consumers named ``prefix...`` (but not ``keep``) idle at least
    ``idle_ms`` that hold no pending entries; the reply lists their names."""
    return ScriptCall(script("prune"), (stream,), (group, idle_ms, prefix, keep))


def read_single(
    stream: str,
    lock: str,
    *,
    group: str,
    token: str,
    ttl_ms: int,
    consumer: str,
    count: int,
    pending: bool,
    start: str = "0",
) -> ScriptCall:
    """Read the group under the lock (see ``lua/read_single.lua`` for the reply); with
    ``pending``, own pending entries after ``start`` first."""
    return ScriptCall(
        script("read_single"),
        (stream, lock),
        (token, ttl_ms, group, consumer, count, start.encode() if pending else b">"),
    )


def redeliver(
    stream: str,
    group: str,
    consumer: str,
    ids: list[str],
    *,
    lock: str | None = None,
    token: str = "",
    ttl_ms: int = 0,
) -> ScriptCall:
    """Hand again exactly ``ids`` that ``consumer`` still holds, as a new delivery each
    (see ``lua/redeliver.lua``); under ``lock`` when given."""
    keys: tuple[Arg, ...] = (stream,) if lock is None else (stream, lock)
    return ScriptCall(script("redeliver"), keys, (group, consumer, token, ttl_ms, *ids))


def lock_refresh(lock: str, token: str, ttl_ms: int) -> ScriptCall:
    """Take or extend a lock: 1 when held, else minus the holder's remaining ms."""
    return ScriptCall(script("lock_refresh"), (lock,), (token, ttl_ms))


def lock_release(lock: str, token: str) -> ScriptCall:
    """Release a lock if it is still ours (1 released, 0 not ours)."""
    return ScriptCall(script("lock_release"), (lock,), (token,))


def walk(stream: str, *, newest_first: bool, after: str, position: int, budget: int,
         page: int) -> ScriptCall:  # fmt: skip
    """The ID of the ``position``-th entry after ``after`` (``""``: from the newest or the
    oldest end), walked past on the server (see ``lua/walk.lua`` for the reply)."""
    direction = b"rev" if newest_first else b"fwd"
    return ScriptCall(script("walk"), (stream,), (direction, after, position, budget, page))
