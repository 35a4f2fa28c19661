"""Pure: retry and dead-letter decisions, backoff, reconnect delays, dead-letter fields.

Both IO shells call these; nothing here touches Redis or sleeps.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from . import _validate as validate
from ._constants import (
    DEAD_DELIVERIES_FIELD,
    DEAD_ERROR_FIELD,
    DEAD_SOURCE_ID_FIELD,
    DEAD_TIME_FIELD,
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_DELIVERIES,
    GROUP_FIELD,
    RECONNECT_BASE_DELAY,
    RECONNECT_MAX_DELAY,
)
from .errors import BrokerAuthenticationError, InvalidArgumentError, PermissionDeniedError

#: Error text kept per dead letter at most (the rest is cut).
MAX_ERROR_TEXT = 2000

_RESERVED = {
    DEAD_ERROR_FIELD.encode(),
    DEAD_DELIVERIES_FIELD.encode(),
    DEAD_SOURCE_ID_FIELD.encode(),
    DEAD_TIME_FIELD.encode(),
    GROUP_FIELD.encode(),
}


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often an event is delivered before it goes to the dead letters, and how fast.

    ``max_deliveries`` (default 10): an event read for the ``max_deliveries + 1``-th time
    is moved to ``<stream>:dead`` (with its original body bytes and meta, the last error
    and the delivery count) and acked from the source instead of being handed over. In
    ``run()``, a delivery in a failed batch that is then split (each event handed over
    again alone) does not count: a healthy event is not charged for a poison neighbour;
    ``delivery_count`` still counts every delivery.
    ``backoff`` (default 1 s): the wait before a failed event is handed over again,
    doubled on each further delivery up to ``max_backoff`` (default 60 s), with jitter
    (a random 50-100 % of the delay). ``backoff`` may also be a callable
    ``deliveries -> seconds``. The backoff applies in ``run()``; ``consume()`` is one batch.
    ``dead_letter_on`` (default none): exception types that send an event straight to the
    dead letters, without retries (dramatiq's ``throws``), when its own hand-over raised one:
    in ``run()`` after a failed batch was split into single events, in ``consume()`` when
    the batch that raised had one event left un-acked.
    """

    #: Deliveries allowed before an event goes to the dead letters (>= 1).
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    #: First retry delay (seconds or timedelta), or ``callable(deliveries) -> seconds``.
    backoff: float | _dt.timedelta | Callable[[int], float] = DEFAULT_BACKOFF
    #: Longest retry delay (seconds or timedelta).
    max_backoff: float | _dt.timedelta = DEFAULT_MAX_BACKOFF
    #: Exception types that go to the dead letters at once, without retries.
    dead_letter_on: tuple[type[BaseException], ...] = ()
    _cap: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the fields."""
        validate.count(self.max_deliveries, "max_deliveries")
        if not callable(self.backoff):
            validate.seconds(self.backoff, "backoff")
        object.__setattr__(self, "_cap", validate.seconds(self.max_backoff, "max_backoff"))
        kinds: object = self.dead_letter_on
        if isinstance(kinds, type):
            kinds = (kinds,)
        if not isinstance(kinds, (tuple, list)) or not all(
            isinstance(k, type) and issubclass(k, BaseException) for k in kinds
        ):
            raise InvalidArgumentError(
                f"dead_letter_on must be a tuple of exception types, got {kinds!r}"
            )
        object.__setattr__(self, "dead_letter_on", tuple(kinds))

    def exceeded(self, deliveries: int) -> bool:
        """Whether a delivery with this count must go to the dead letters instead."""
        return deliveries > self.max_deliveries

    def dead_letters_at_once(self, exc: BaseException) -> bool:
        """Whether ``exc`` sends its event to the dead letters without retries."""
        return bool(self.dead_letter_on) and isinstance(exc, self.dead_letter_on)

    def delay(self, deliveries: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before handing over again an event delivered ``deliveries`` times.

        ``backoff * 2 ** (deliveries - 1)``, capped at ``max_backoff``, times a random
        50-100 % (``rand`` returns 0..1; injected by tests).
        """
        if callable(self.backoff):
            return max(0.0, min(float(self.backoff(deliveries)), self._cap))
        base = validate.seconds(self.backoff, "backoff")
        raw: float = min(self._cap, base * 2.0 ** max(0, min(deliveries - 1, 62)))
        return raw * (0.5 + 0.5 * rand())


def reconnect_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect attempt ``attempt`` (>= 1): capped doubling, 50-100 % jitter."""
    raw: float = min(RECONNECT_MAX_DELAY, RECONNECT_BASE_DELAY * 2.0 ** min(attempt - 1, 30))
    return raw * (0.5 + 0.5 * rand())


def needs_a_human(exc: BaseException) -> bool:
    """Whether a failure is one that waiting will not cure: Redis refused the credentials
    (WRONGPASS, NOAUTH) or the ACL user's permissions (NOPERM). ``run`` raises these at
    once instead of retrying them as an outage."""
    return isinstance(exc, (BrokerAuthenticationError, PermissionDeniedError))


def error_text(exc: BaseException | None) -> str:
    """A short, single-string description of a handler failure."""
    if exc is None:
        return "unknown error (the consumer that failed did not record one)"
    text = f"{type(exc).__qualname__}: {exc}"
    return text[:MAX_ERROR_TEXT]


def dead_letter_fields(
    fields: list[bytes],
    *,
    error: str,
    deliveries: int,
    source_id: str,
    now_ms: int,
    group: str,
) -> list[bytes]:
    """The dead-letter entry: the original fields, then fluxabee's reserved ones (the last
    error, the deliveries, the source ID, the time, and the group it failed in)."""
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
        GROUP_FIELD.encode(),
        group.encode(),
    ]


@dataclass(frozen=True)
class DeadLetterParts:
    """A dead-letter entry split into the original fields and fluxabee's notes."""

    fields: list[bytes]
    error: str
    deliveries: int
    source_id: str
    #: The group it failed in (``None`` for letters written before groups were recorded).
    group: str | None = None


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
    group = notes.get(GROUP_FIELD.encode())
    return DeadLetterParts(
        fields=original,
        error=notes.get(DEAD_ERROR_FIELD.encode(), b"").decode("utf-8", "replace"),
        deliveries=int(deliveries) if deliveries.isdigit() else 0,
        source_id=notes.get(DEAD_SOURCE_ID_FIELD.encode(), b"").decode("utf-8", "replace"),
        group=group.decode("utf-8", "replace") if group is not None else None,
    )
