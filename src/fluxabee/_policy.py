"""Pure: retry and dead-letter decisions, backoff, reconnect delays, key names.

Both IO shells call these; nothing here touches Redis or sleeps.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from ._constants import (
    DEAD_DELIVERIES_FIELD,
    DEAD_ERROR_FIELD,
    DEAD_LETTER_SUFFIX,
    DEAD_SOURCE_ID_FIELD,
    DEAD_TIME_FIELD,
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_DELIVERIES,
    LOCK_KEY_SUFFIX,
    RECONNECT_BASE_DELAY,
    RECONNECT_MAX_DELAY,
)
from ._protocol import to_seconds
from .errors import InvalidArgumentError

#: Error text kept per dead letter at most (the rest is cut).
MAX_ERROR_TEXT = 2000

_RESERVED = {
    DEAD_ERROR_FIELD.encode(),
    DEAD_DELIVERIES_FIELD.encode(),
    DEAD_SOURCE_ID_FIELD.encode(),
    DEAD_TIME_FIELD.encode(),
}


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often an event is delivered before it goes to the dead letters, and how fast.

    ``max_deliveries`` (default 10): an event read for the ``max_deliveries + 1``-th time
    is moved to ``<stream>:dead`` (with its original body bytes and meta, the last error
    and the delivery count) and acked from the source instead of being handed over.
    ``backoff`` (default 1 s): the wait before a failed event is handed over again,
    doubled on each further delivery up to ``max_backoff`` (default 60 s), with jitter
    (a random 50-100 % of the delay). ``backoff`` may also be a callable
    ``deliveries -> seconds``. The backoff applies in ``run()``; ``consume()`` is one batch.
    """

    #: Deliveries allowed before an event goes to the dead letters (>= 1).
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    #: First retry delay (seconds or timedelta), or ``callable(deliveries) -> seconds``.
    backoff: float | _dt.timedelta | Callable[[int], float] = DEFAULT_BACKOFF
    #: Longest retry delay (seconds or timedelta).
    max_backoff: float | _dt.timedelta = DEFAULT_MAX_BACKOFF

    def __post_init__(self) -> None:
        """Validate the fields."""
        if (
            isinstance(self.max_deliveries, bool)
            or not isinstance(self.max_deliveries, int)
            or self.max_deliveries < 1
        ):
            raise InvalidArgumentError(
                f"max_deliveries must be an int >= 1, got {self.max_deliveries!r}"
            )
        if not callable(self.backoff):
            to_seconds(self.backoff, "backoff")
        to_seconds(self.max_backoff, "max_backoff")

    def exceeded(self, deliveries: int) -> bool:
        """Whether a delivery with this count must go to the dead letters instead."""
        return deliveries > self.max_deliveries

    def delay(self, deliveries: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before handing over again an event delivered ``deliveries`` times."""
        cap = to_seconds(self.max_backoff, "max_backoff")
        if callable(self.backoff):
            return max(0.0, min(float(self.backoff(deliveries)), cap))
        base = to_seconds(self.backoff, "backoff")
        raw: float = min(cap, base * 2.0 ** max(0, min(deliveries - 1, 62)))
        return raw * (0.5 + 0.5 * rand())


def reconnect_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect attempt ``attempt`` (>= 1): capped doubling, 50-100 % jitter."""
    raw: float = min(RECONNECT_MAX_DELAY, RECONNECT_BASE_DELAY * 2.0 ** min(attempt - 1, 30))
    return raw * (0.5 + 0.5 * rand())


def _same_slot_key(stream: str, suffix: str) -> str:
    """A key in the same Redis Cluster slot as ``stream``: ``{stream}suffix`` or
    ``stream + suffix`` when the name already carries a hash tag."""
    opening = stream.find("{")
    if opening != -1 and stream.find("}", opening + 2) != -1:
        return stream + suffix
    return "{" + stream + "}" + suffix


def dead_letter_key(stream: str) -> str:
    """The dead-letter stream of ``stream`` (same Cluster slot): ``{stream}:dead``."""
    return _same_slot_key(stream, DEAD_LETTER_SUFFIX)


def lock_key(stream: str) -> str:
    """The ``consumer_single`` lock key of ``stream`` (same Cluster slot)."""
    return _same_slot_key(stream, LOCK_KEY_SUFFIX)


def error_text(exc: BaseException | None) -> str:
    """A short, single-string description of a handler failure."""
    if exc is None:
        return "unknown error (the consumer that failed did not record one)"
    text = f"{type(exc).__qualname__}: {exc}"
    return text[:MAX_ERROR_TEXT]


def dead_letter_fields(
    fields: list[bytes], *, error: str, deliveries: int, source_id: str, now_ms: int
) -> list[bytes]:
    """The dead-letter entry: the original fields, then fluxabee's reserved ones."""
    kept = [
        item
        for pair in zip(fields[::2], fields[1::2], strict=True)
        if pair[0] not in _RESERVED
        for item in pair
    ]
    return [
        *kept,
        DEAD_ERROR_FIELD.encode(),
        error.encode("utf-8", "replace"),
        DEAD_DELIVERIES_FIELD.encode(),
        str(deliveries).encode(),
        DEAD_SOURCE_ID_FIELD.encode(),
        source_id.encode(),
        DEAD_TIME_FIELD.encode(),
        str(now_ms).encode(),
    ]


@dataclass(frozen=True)
class DeadLetterParts:
    """A dead-letter entry split into the original fields and fluxabee's notes."""

    fields: list[bytes]
    error: str
    deliveries: int
    source_id: str


def split_dead_letter(fields: list[bytes]) -> DeadLetterParts:
    """Separate the original fields from the reserved ones of a dead-letter entry."""
    original: list[bytes] = []
    notes: dict[bytes, bytes] = {}
    for key, value in zip(fields[::2], fields[1::2], strict=True):
        if key in _RESERVED:
            notes[key] = value
        else:
            original += (key, value)
    deliveries = notes.get(DEAD_DELIVERIES_FIELD.encode(), b"0")
    return DeadLetterParts(
        fields=original,
        error=notes.get(DEAD_ERROR_FIELD.encode(), b"").decode("utf-8", "replace"),
        deliveries=int(deliveries) if deliveries.isdigit() else 0,
        source_id=notes.get(DEAD_SOURCE_ID_FIELD.encode(), b"").decode("utf-8", "replace"),
    )
