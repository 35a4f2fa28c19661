"""Event bodies shared by every benchmark case.

``make_body(size)`` returns a plain dict whose msgpack encoding is ``size`` bytes
long (exactly, for every size used here; never shorter than the minimal dict).
"""

from __future__ import annotations

from typing import Any

import msgpack

#: Named body sizes used across the benchmark (approximate packed length in bytes).
SIZES: dict[str, int] = {
    "16B": 16,
    "100B": 100,
    "1KiB": 1024,
    "64KiB": 64 * 1024,
}

DEFAULT_SIZE = 100

# Below this size the "event-like" shape does not fit, so a minimal dict is used.
_SMALL_LIMIT = 48


def _packed_len(body: dict[str, Any]) -> int:
    return len(msgpack.packb(body))


def make_body(size: int = DEFAULT_SIZE, i: int = 0) -> dict[str, Any]:
    """Return a dict whose msgpack encoding is about ``size`` bytes.

    For ``size >= 48`` the shape is event-like:
    ``{"id": i, "name": "event-name-xxxx", "payload": "xxx..."}``;
    below that it is ``{"id": i, "p": "xxx..."}``.
    """
    if size < _SMALL_LIMIT:
        body: dict[str, Any] = {"id": i, "p": ""}
        key = "p"
    else:
        body = {"id": i, "name": "event-name-xxxx", "payload": ""}
        key = "payload"
    pad = max(0, size - _packed_len(body))
    # The msgpack str header grows at 32, 256 and 65536 chars: shrink to fit.
    while pad > 0:
        body[key] = "x" * pad
        if _packed_len(body) <= size:
            break
        pad -= 1
    else:
        body[key] = ""
    return body


def body_bytes(size: int = DEFAULT_SIZE, i: int = 0) -> bytes:
    """``msgpack.packb(make_body(size, i))``."""
    packed: bytes = msgpack.packb(make_body(size, i))
    return packed
