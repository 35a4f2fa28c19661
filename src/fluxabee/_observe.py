"""Hooks: what a broker and its consumers did, told once to the observers that listen.

An :class:`Observer` has one no-op method per thing that happens (an event published, a
batch handed to a handler, events acked, retried, dead-lettered, claimed, the events in
flight of ``process``); metrics
(:class:`fluxabee.PrometheusObserver`), traces (:class:`fluxabee.TracingObserver`) or an
application's own code override the ones they need and are registered on the engine:
``Engine(config, observers=[...])``. :class:`Observers` calls them in order and logs, never
raises, what one of them raises, so a broken observer cannot break publishing or
consuming. With no observer registered the library makes none of these calls (one
truthiness check per batch or flush).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import FluxabeeError, InvalidArgumentError

if TYPE_CHECKING:
    from ._outbox import Flush, Pending
    from .event import Event

logger = logging.getLogger("fluxabee")


@dataclass(slots=True)
class Publication:
    """The events of one stream that one ``flush`` (or one ``publish_now``) sent."""

    #: The stream.
    stream: str
    #: The meta of each event, in publish order (with what observers added at publish).
    metas: list[Mapping[str, str]]
    #: The new entry ID of each event, ``None`` where Redis did not confirm it.
    ids: list[str | None]
    #: Seconds the whole flush (or the ``publish_now``) took.
    seconds: float
    #: The error the flush raised (or ``None``); events with an ID landed all the same.
    error: BaseException | None = None
    #: Sent by ``publish_now`` rather than by ``flush``.
    immediate: bool = False

    @property
    def confirmed(self) -> list[str]:
        """The IDs of the events Redis confirmed."""
        return [i for i in self.ids if i is not None]


@dataclass(slots=True)
class Batch:
    """One hand-over of events to a handler, seen by :meth:`Observer.handling` before the
    handler runs and by :meth:`Observer.handled` after (the same object)."""

    #: The stream.
    stream: str
    #: The consumer group.
    group: str
    #: The consumer's name in the group.
    consumer: str
    #: The events handed over.
    events: Sequence[Event[Any]]
    #: Seconds the handler took (set before :meth:`Observer.handled`).
    seconds: float = 0.0
    #: What the handler raised, or ``None`` (set before :meth:`Observer.handled`).
    error: BaseException | None = None
    #: Free room for observers, keyed by the observer (a tracer keeps its span here).
    state: dict[Any, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """How many events the handler left un-acked when it raised (0 when it returned)."""
        return 0 if self.error is None else sum(1 for e in self.events if not e.acked)


class Observer:
    """Hooks into a broker and its consumers; every method is a documented no-op.

    Subclass and override what you need, then register it: ``Engine(config,
    observers=[MyObserver()])``. Methods run inline (keep them quick) and must not raise:
    an exception is logged (logger ``fluxabee``) and swallowed. The events passed are the
    library's own objects: read them, do not keep or ack them.
    """

    def publishing(self, stream: str, meta: dict[str, str]) -> None:
        """An event is being packed by ``publish`` or ``publish_now``; ``meta`` (a private
        copy) may be given extra keys that travel with the event (a trace context)."""

    def published(self, publication: Publication) -> None:
        """A ``flush`` or ``publish_now`` ended (also when it failed): once per stream."""

    def handling(self, batch: Batch) -> None:
        """The handler is about to be called with ``batch.events``."""

    def handled(self, batch: Batch) -> None:
        """The handler returned or raised (``batch.error``) after ``batch.seconds``."""

    def acked(self, stream: str, group: str, count: int) -> None:
        """``count`` handed-over events were acked (XACK + XDEL confirmed by Redis)."""

    def retried(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """``run`` will hand these failed events over again: at once and one at a time
        (poison isolation), or after the retry policy's backoff."""

    def dead_lettered(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """These events moved to ``{stream}:dead`` and were acked from the stream."""

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        """``consumer`` claimed ``count`` events left pending by others (XAUTOCLAIM)."""

    def in_flight(self, stream: str, group: str, consumer: str, count: int, change: int) -> None:
        """``process`` of ``consumer`` now has ``count`` events in its handler, ``change``
        more than when it last told (told at most once per turn of its loop, and with
        ``count`` 0 when it returns). Each handler call is also a one-event :class:`Batch`
        of :meth:`handling` and :meth:`handled`, so its duration is per event."""


def _call(observer: Observer, name: str, *args: Any) -> None:
    try:
        getattr(observer, name)(*args)
    except Exception:
        logger.exception("observer %r failed in %s", observer, name)


class Observers:
    """The observers of one engine, called in order (``handled`` in reverse, so what
    ``handling`` opened closes innermost first); a failing one is logged, never raised.

    Engines hold ``None`` instead of an empty one (:func:`dispatcher`), so the call sites'
    ``if observers:`` costs no method call on the hot paths.
    """

    __slots__ = ("_all",)

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        found = tuple(observers)
        for observer in found:
            if not isinstance(observer, Observer):
                raise InvalidArgumentError(
                    f"observers must be fluxabee.Observer instances, got {observer!r}"
                )
        self._all = found

    def __bool__(self) -> bool:
        return bool(self._all)

    def _each(self, name: str, *args: Any) -> None:
        for observer in self._all:
            _call(observer, name, *args)

    # -- publishing ------------------------------------------------------------------

    def publishing(self, stream: str, meta: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``meta``, as the observers completed it."""
        copy = dict(meta)
        self._each("publishing", stream, copy)
        return copy

    def flushed(self, flush: Flush, seconds: float) -> None:
        """Tell what a flush sent, one :class:`Publication` per stream, in publish order."""
        try:
            flush.outcome()
            error: BaseException | None = None
        except FluxabeeError as exc:
            error = exc
        by_stream: dict[str, Publication] = {}
        for index, item in enumerate(flush.items):
            found = by_stream.get(item.stream)
            if found is None:
                found = by_stream[item.stream] = Publication(item.stream, [], [], seconds, error)
            found.metas.append(item.meta or {})
            found.ids.append(flush.ids[index])
        for publication in by_stream.values():
            self._each("published", publication)

    def sent_now(
        self, item: Pending, entry_id: str | None, started: float, error: BaseException | None
    ) -> None:
        """Tell what one ``publish_now`` sent (``started``: its ``perf_counter``)."""
        seconds = time.perf_counter() - started
        publication = Publication(
            item.stream, [item.meta or {}], [entry_id], seconds, error, immediate=True
        )
        self._each("published", publication)

    # -- consuming -------------------------------------------------------------------

    def handling(self, batch: Batch) -> None:
        """Before the handler."""
        self._each("handling", batch)

    def handled(self, batch: Batch) -> None:
        """After the handler, in reverse order."""
        for observer in reversed(self._all):
            _call(observer, "handled", batch)

    def acked(self, stream: str, group: str, count: int) -> None:
        """Handed-over events were acked."""
        self._each("acked", stream, group, count)

    def retried(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """Failed events will be handed over again."""
        self._each("retried", stream, group, events)

    def dead_lettered(self, stream: str, group: str, events: Sequence[Event[Any]]) -> None:
        """Events went to the dead letters."""
        self._each("dead_lettered", stream, group, events)

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        """A consumer claimed events."""
        self._each("claimed", stream, group, consumer, count)

    def in_flight(self, stream: str, group: str, consumer: str, count: int, change: int) -> None:
        """The number of events in a ``process`` handler changed."""
        self._each("in_flight", stream, group, consumer, count, change)


def dispatcher(observers: Iterable[Observer]) -> Observers | None:
    """The dispatcher of ``observers`` (checked), or ``None`` when there is none."""
    found = Observers(observers)
    return found if found else None
