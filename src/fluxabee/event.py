"""The :class:`Event` handed to consumer handlers. Pure: the IO of ``ack`` is injected.

``Event`` is generic in what ``ack()`` returns: ``None`` for the sync API (the default,
so a plain ``Event`` annotation means the sync one) and an awaitable for asyncio, so
``event.ack()`` and ``await event.ack()`` are both typed right by one class.
"""

from __future__ import annotations

import reprlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic

from typing_extensions import TypeVar

from . import codec
from .errors import DecodeError

T = TypeVar("T")
#: What ``Event.ack()`` returns: ``None`` (sync) or ``Awaitable[None]`` (asyncio).
AckT = TypeVar("AckT", default=None)

_UNSET: Any = object()
#: Bodies longer than this are not decoded for ``repr`` (their size is shown).
_PREVIEW_DECODE_LIMIT = 4096
_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxdict = 6
_REPR.maxlist = 6


class Event(Generic[AckT]):
    """One stream entry delivered to a handler.

    ``id`` and ``stream`` name the entry; ``body`` is the decoded MessagePack value
    (decoded on first access and cached); ``meta`` holds the other fields;
    ``delivery_count`` is 1 on the first delivery. ``ack()`` acknowledges the entry at
    once and is idempotent (the entry is deleted with it when the stream has one group
    and no ``retention: trim``; otherwise once every group acked it, by XACKDEL or a
    trim); events a handler leaves un-acked are acked in one round trip when the handler
    returns.
    """

    __slots__ = ("_acker", "_body", "acked", "delivery_count", "id", "meta", "raw_body", "stream")

    def __init__(  # noqa: PLR0917 - positional: built once per event on the hot path
        self,
        id: str,
        stream: str,
        raw_body: bytes | None,
        meta: dict[str, str],
        acker: Callable[[Event[AckT]], AckT],
        delivery_count: int = 1,
    ) -> None:
        #: The entry ID, e.g. ``"1700000000000-0"``.
        self.id = id
        #: The stream the entry was read from.
        self.stream = stream
        #: The undecoded ``s`` field (``None`` when the entry has none).
        self.raw_body = raw_body
        #: Every field but ``s``, as text (non-UTF-8 bytes survive as surrogate escapes).
        self.meta = meta
        #: How many times Redis has delivered this entry (1 on the first delivery).
        self.delivery_count = delivery_count
        #: True once the event is acknowledged.
        self.acked = False
        self._acker = acker
        self._body: Any = _UNSET

    @property
    def body(self) -> Any:
        """The decoded body: dict, list, str, bytes, int, float, bool, datetime or ``None``.

        A timestamp (Go's ``time.Time``) is an aware UTC ``datetime``, nanoseconds
        truncated to microseconds; one outside datetime's range (years 1 to 9999) stays a
        ``msgpack.Timestamp``. Any other MessagePack extension is an
        :class:`~fluxabee.Extension` (Go's ``complex128``: code -128). Raises
        :class:`~fluxabee.DecodeError` (with ``.raw``) for an undecodable entry.
        """
        body = self._body
        if body is _UNSET:
            raw = self.raw_body
            body = self._body = None if raw is None else codec.decode_body(raw)
        return body

    @property
    def decodable(self) -> bool:
        """Whether ``body`` can be decoded (never raises)."""
        try:
            self.body  # noqa: B018 - decoding is the point
        except DecodeError:
            return False
        return True

    def unserialize(self, cls: type[T]) -> T:
        """The body as ``cls``: a dataclass, a pydantic model or any type hint.

        Nested dataclasses and models are built inside lists, dicts, tuples, ``Optional``
        and unions; field names follow the class's wire names. Raises
        :class:`~fluxabee.DecodeError` (with ``.raw``) naming the path of a value that
        does not fit (``items[2].sku``).
        """
        try:
            return codec.unserialize(self.body, cls)
        except DecodeError as exc:
            if exc.raw is None:
                exc.raw = self.raw_body
            raise

    def tag(self, key: str) -> str:
        """The meta value of ``key``, ``""`` when the event has none."""
        return self.meta.get(key, "")

    def ack(self) -> AckT:
        """Acknowledge this entry now, in the stream's ack mode (idempotent; see the class
        docstring for when it is deleted). ``await`` it under asyncio."""
        return self._acker(self)

    def __repr__(self) -> str:
        """ID, stream, delivery count, ack state and a bounded preview of body and meta."""
        return (
            f"<Event {self.id} of {self.stream!r} delivery={self.delivery_count}"
            f"{' acked' if self.acked else ''} body={self._preview()}"
            f"{' meta=' + _REPR.repr(self.meta) if self.meta else ''}>"
        )

    def _preview(self) -> str:
        raw = self.raw_body
        if raw is None:
            return "None"
        if self._body is _UNSET and len(raw) > _PREVIEW_DECODE_LIMIT:
            return f"<{len(raw)} bytes>"  # not decoded just to be shown
        try:
            return _REPR.repr(self.body)
        except DecodeError:
            return f"<undecodable, {len(raw)} bytes>"


#: The event type of the sync API (``ack()`` returns ``None``).
SyncEvent = Event[None]
#: The event type of the asyncio API (``await event.ack()``).
AsyncEvent = Event[Awaitable[None]]


@dataclass(frozen=True)
class DeadLetter(Generic[AckT]):
    """An event that exceeded its retry policy, kept in ``{stream}:dead``.

    ``event`` is the original event (its ``id`` is the source entry ID, ``raw_body`` and
    ``meta`` the original bytes); ``event.ack()`` deletes the dead letter for good.
    """

    #: The entry ID in the dead-letter stream.
    id: str
    #: The original event, as it was in the source stream.
    event: Event[AckT]
    #: The last handler error recorded for it (type and message).
    error: str
    #: How many times it was handed to a handler before it was moved here.
    deliveries: int
    #: The consumer group it failed in (``None`` for letters written before fluxabee
    #: recorded groups); ``replay_dead_letters`` sends it back to that group only.
    group: str | None = None


#: A dead letter of the sync API.
SyncDeadLetter = DeadLetter[None]
#: A dead letter of the asyncio API (``await letter.event.ack()``).
AsyncDeadLetter = DeadLetter[Awaitable[None]]
