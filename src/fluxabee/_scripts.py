"""Lua scripts shipped as package data, loaded once, called through named builders.

Each builder returns an ``EVAL`` command for :meth:`execute`; Redis caches the compiled
script by its SHA, so sending the text costs bytes, not compilation.
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
