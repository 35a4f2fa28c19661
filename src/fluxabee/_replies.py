"""Pure: small helpers every reply parser shares (one copy each, not one per module)."""

from __future__ import annotations

from typing import Any

from .errors import RedisReplyError


def text(value: Any) -> str:
    """A reply's bulk string (``bytes``) or number as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def no_such_key(reply: Any) -> bool:
    """Whether ``reply`` is the error Redis gives a command on a key that does not exist
    (``ERR no such key``: XINFO, XGROUP CREATE without MKSTREAM...), also when a script
    raised it."""
    return isinstance(reply, RedisReplyError) and "no such key" in str(reply)
