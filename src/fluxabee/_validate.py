"""Pure: the one place where public arguments are checked and converted.

Every count, block, duration and TTL argument of the public API goes through one of these
functions, so every bad value raises :class:`~fluxabee.errors.InvalidArgumentError` whose
message starts with the argument's name. Durations are ``datetime.timedelta`` or seconds
(``int`` / ``float``, never ``bool`` or ``str``), converted once to Redis milliseconds.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import re
import reprlib
from typing import Any

from .errors import InvalidArgumentError

#: Largest count accepted (Redis reads a signed 64-bit integer; far beyond any batch).
MAX_COUNT = 2**31 - 1
#: Longest duration accepted, seconds (about 292 years in ms still fits in 64 bits).
MAX_SECONDS = 9.2e15 / 1000


def _shown(value: object) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


def count(value: object, name: str = "count") -> int:
    """A batch size: an ``int`` from 1 to :data:`MAX_COUNT`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int >= 1, got {_shown(value)}")
    if not 1 <= value <= MAX_COUNT:
        raise InvalidArgumentError(f"{name} must be an int from 1 to {MAX_COUNT}, got {value}")
    return value


def seconds(value: object, name: str, *, positive: bool = False) -> float:
    """A duration as finite seconds: ``>= 0``, or ``> 0`` when ``positive``."""
    if isinstance(value, _dt.timedelta):
        result = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    else:
        raise InvalidArgumentError(
            f"{name} must be seconds (int or float) or a datetime.timedelta, got {_shown(value)}"
        )
    if not math.isfinite(result) or result < 0 or result > MAX_SECONDS:
        raise InvalidArgumentError(f"{name} must be a finite duration >= 0, got {value!r}")
    if positive and result <= 0:
        raise InvalidArgumentError(f"{name} must be a duration > 0, got {value!r}")
    return result


def ms(value: object, name: str, *, positive: bool = False) -> int:
    """A duration as whole Redis milliseconds, rounded up (0.0001 s is not "now")."""
    return math.ceil(seconds(value, name, positive=positive) * 1000)


def length(value: object, name: str) -> int:
    """A number of entries: an ``int`` >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{name} must be an int >= 0, got {_shown(value)}")
    return value


_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def stream_id(value: object, name: str) -> str:
    """A stream entry ID: ``<ms>`` or ``<ms>-<seq>``."""
    if not isinstance(value, str) or not _STREAM_ID.fullmatch(value):
        raise InvalidArgumentError(
            f"{name} must be a stream ID like 1700000000000-0, got {_shown(value)}"
        )
    return value


def handler(value: object, *, sync: bool) -> None:
    """A batch handler: callable, and a plain function (not ``async def``) for the sync API."""
    if not callable(value):
        raise InvalidArgumentError(f"handler must be callable, got {_shown(value)}")
    if sync and _is_async(value):
        raise InvalidArgumentError(
            "handler is an async function but this is the sync API: "
            "use fluxabee.AsyncEngine for async def handlers"
        )


def _is_async(value: Any) -> bool:
    if inspect.iscoroutinefunction(value):
        return True
    call = getattr(value, "__call__", None)  # noqa: B004 - an object with async __call__
    func = getattr(value, "func", None)  # functools.partial of an async function
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(func)


def name_text(value: object, name: str) -> str:
    """A non-empty ``str`` (stream, group, consumer names)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} must be a non-empty str, got {_shown(value)}")
    return value


def consumer_name(value: object, *, reserved: str) -> str:
    """A stable ``consumer_many`` name given by the user (a pod or host name): printable,
    no whitespace (it shows in tables and logs), and not ``reserved`` (``consumer_single``'s
    own name, whose pending entries belong to the single consumer)."""
    text = name_text(value, "name")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidArgumentError(
            f"name must have no whitespace or control characters, got {text!r}"
        )
    if text == reserved:
        raise InvalidArgumentError(f"name {text!r} is consumer_single's; choose another")
    return text
