"""Pure: the rules of an :class:`~fluxabee.App`: what a handler takes, which handlers may
live together, and where a follow-up event goes.

Nothing here talks to Redis. A handler's signature is read **once**, when it is
decorated (``typing.get_type_hints``), into a :class:`HandlerSpec`; per event,
:meth:`HandlerSpec.arguments` only builds the arguments from the event. The
:class:`Registry` refuses a second handler for one stream and group, at decoration time.
Follow-ups (``app.publish`` inside a handler) go to the handler call's own broker, found
through the :data:`CURRENT` context variable (each handler call, a task or a thread, runs
in its own context): the IO shells (:mod:`fluxabee._async.app`) set it and flush that
broker before the event is acked.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import inspect
import typing
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any

from . import _validate as validate
from ._policy import RetryPolicy
from .config import Config
from .errors import DecodeError, FluxabeeError, InvalidArgumentError
from .event import Event

#: What the first parameter of a handler gets.
EVENT, RAW, BODY, TYPED = "event", "bytes", "body", "typed"


def _is_event_hint(hint: Any) -> bool:
    """``fluxabee.Event``, ``SyncEvent`` or ``AsyncEvent`` (``Event[...]``)."""
    return hint is Event or typing.get_origin(hint) is Event


def _target(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function whose signature counts: ``func`` (a partial too), or ``__call__`` of
    an object."""
    if inspect.isfunction(func) or inspect.ismethod(func) or isinstance(func, functools.partial):
        return func
    call = getattr(func, "__call__", None)  # noqa: B004 - a callable object
    return func if call is None else call


@dataclasses.dataclass(frozen=True)
class HandlerSpec:
    """A handler's signature, read once: what its first parameter gets (the event, the raw
    body, the decoded body, or the body as a type) and which other parameters get the
    event (positionally or by keyword)."""

    #: The decorated function, unchanged.
    func: Callable[..., Any]
    #: Whether calling it returns an awaitable (``async def``, or ``__call__`` one).
    is_async: bool
    #: :data:`EVENT`, :data:`RAW`, :data:`BODY` or :data:`TYPED`.
    kind: str
    #: The annotation of the first parameter (``Any`` when it has none).
    hint: Any
    #: How many further positional parameters get the event.
    event_positional: int = 0
    #: Keyword-only parameters that get the event.
    event_keywords: tuple[str, ...] = ()

    @classmethod
    def of(cls, func: Callable[..., Any]) -> HandlerSpec:
        """Read ``func``'s signature; :class:`InvalidArgumentError` when fluxabee cannot
        call it with one event (no parameter, a required one it cannot fill, a hint that
        does not resolve)."""
        if not callable(func):
            raise InvalidArgumentError(f"a handler must be callable, got {func!r}")
        target = _target(func)
        name = getattr(func, "__qualname__", repr(func))
        try:
            inner = target
            while isinstance(inner, functools.partial):
                inner = inner.func
            hints = typing.get_type_hints(inner)
        except Exception as exc:
            raise InvalidArgumentError(
                f"the annotations of handler {name} do not resolve: {exc}"
            ) from exc
        try:
            params = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"handler {name} has no signature: {exc}") from exc
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not positional:
            raise InvalidArgumentError(
                f"handler {name} must take the event (or its body) as its first parameter"
            )
        first = positional[0]
        hint = hints.get(first.name, Any)
        if _is_event_hint(hint):
            kind = EVENT
        elif hint is bytes:
            kind = RAW
        elif hint is Any or hint is object:
            kind = BODY
        else:
            kind = TYPED
        event_positional = 0
        for param in positional[1:]:
            if _is_event_hint(hints.get(param.name)):
                if event_positional != positional.index(param) - 1:
                    raise InvalidArgumentError(
                        f"handler {name}: parameter {param.name!r} gets the event, so the "
                        "parameters before it must too"
                    )
                event_positional += 1
            elif param.default is param.empty:
                raise InvalidArgumentError(
                    f"handler {name}: fluxabee cannot fill parameter {param.name!r} "
                    "(annotate it with fluxabee.Event / AsyncEvent, or give it a default)"
                )
        keywords = []
        for param in params:
            if param.kind is not param.KEYWORD_ONLY:
                continue
            if _is_event_hint(hints.get(param.name)):
                keywords.append(param.name)
            elif param.default is param.empty:
                raise InvalidArgumentError(
                    f"handler {name}: fluxabee cannot fill keyword {param.name!r}"
                )
        return cls(
            func=func,
            is_async=validate._is_async(func),
            kind=kind,
            hint=hint,
            event_positional=event_positional,
            event_keywords=tuple(keywords),
        )

    @property
    def name(self) -> str:
        """The handler's qualified name (for logs and documents)."""
        return str(getattr(self.func, "__qualname__", repr(self.func)))

    def first(self, event: Event[Any]) -> Any:
        """What the first parameter gets for ``event``; a body that does not fit the
        annotation raises :class:`DecodeError` naming the path (it never will fit)."""
        kind = self.kind
        if kind == EVENT:
            return event
        if kind == RAW:
            return event.raw_body or b""
        if kind == BODY:
            return event.body
        return event.unserialize(self.hint)

    def arguments(self, event: Event[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments of one call with ``event``."""
        args = (self.first(event), *([event] * self.event_positional))
        return args, dict.fromkeys(self.event_keywords, event)


def app_policy(policy: RetryPolicy | None) -> RetryPolicy:
    """The retry policy of an app's handler: ``policy`` (default: ``RetryPolicy()``) with
    :class:`DecodeError` among the types dead-lettered at once: a body that does not fit
    the handler's annotation will not fit on a retry either."""
    if policy is None:
        policy = RetryPolicy()
    if not isinstance(policy, RetryPolicy):
        raise InvalidArgumentError(f"retry_policy must be a RetryPolicy, got {policy!r}")
    if policy.dead_letters_at_once(DecodeError("")):
        return policy
    return dataclasses.replace(policy, dead_letter_on=(*policy.dead_letter_on, DecodeError))


@dataclasses.dataclass(frozen=True)
class Registration:
    """One decorated handler: the ``process`` loop an app runs for it."""

    #: The stream it reads.
    stream: str
    #: The consumer group it reads in (resolved: the stream's first group by default).
    group: str
    #: ``consumer_single`` (one holder, hot standbys) instead of ``consumer_many``.
    single: bool
    #: Events in the handler at once.
    concurrency: int
    #: ``process``'s ``key``: a meta field name or a function of the event.
    key: str | Callable[[Event[Any]], Hashable] | None
    #: The retry policy (with :class:`DecodeError` dead-lettered at once).
    retry_policy: RetryPolicy
    #: ``consumer_many``'s ``min_idle`` (seconds; ``None``: the default).
    min_idle: float | None
    #: The handler's signature.
    spec: HandlerSpec


class Registry:
    """The handlers of one app, one per stream and group."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._items: dict[tuple[str, str], Registration] = {}

    def __iter__(self) -> typing.Iterator[Registration]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    @property
    def any_async(self) -> bool:
        """Whether some handler is ``async def`` (the app then runs under asyncio)."""
        return any(r.spec.is_async for r in self._items.values())

    def add(
        self,
        func: Callable[..., Any],
        stream: str,
        *,
        group: str | None,
        single: bool,
        concurrency: int,
        key: str | Callable[[Event[Any]], Hashable] | None,
        retry_policy: RetryPolicy | None,
        min_idle: float | _dt.timedelta | None,
    ) -> Registration:
        """Check one handler's options and register it; raises
        :class:`InvalidArgumentError` for a second handler of a stream and group,
        :class:`UnknownStreamError` / :class:`UnknownGroupError` for undeclared ones."""
        settings = self._config.stream(stream)
        if group is not None:
            validate.name_text(group, "group")
        resolved = settings.group(group)
        concurrency = validate.count(concurrency, "concurrency")
        if single and key is None and concurrency > 1:
            raise InvalidArgumentError(
                f"{stream}: single=True without key keeps the whole stream's order: only "
                "concurrency=1 can keep it (pass key= to run different keys in parallel)"
            )
        if key is not None and not callable(key) and not (isinstance(key, str) and key):
            raise InvalidArgumentError(
                f"key must be a meta field name or a function of the event, got {key!r}"
            )
        idle = None if min_idle is None else validate.seconds(min_idle, "min_idle")
        if single and idle is not None:
            raise InvalidArgumentError("min_idle is for consumer_many: single=True claims nothing")
        spec = HandlerSpec.of(func)
        existing = self._items.get((stream, resolved))
        if existing is not None:
            raise InvalidArgumentError(
                f"stream {stream!r} group {resolved!r} already has handler "
                f"{existing.spec.name}: one handler per stream and group in an app"
            )
        item = Registration(
            stream=stream,
            group=resolved,
            single=single,
            concurrency=concurrency,
            key=key,
            retry_policy=app_policy(retry_policy),
            min_idle=idle,
            spec=spec,
        )
        self._items[(stream, resolved)] = item
        return item


class NotDrainedError(FluxabeeError):
    """``running.drained()`` (:mod:`fluxabee.testing`) timed out: some handler's group
    still had events to handle."""


class Scope:
    """The follow-ups of one handler call: its own broker (sync or asyncio), made by its
    runtime on the first ``app.publish`` of the call (a call that publishes nothing costs
    no broker)."""

    __slots__ = ("broker", "runtime")

    def __init__(self, runtime: Any) -> None:
        #: The app runtime running the call (``new_broker()`` makes a broker).
        self.runtime = runtime
        #: The call's event broker, once ``app.publish`` was called in it.
        self.broker: Any = None

    def follow_ups(self) -> Any:
        """The call's broker (made on first use): follow-ups buffer here."""
        if self.broker is None:
            self.broker = self.runtime.new_broker()
        return self.broker


#: The handler call the current task or thread runs, if any.
CURRENT: ContextVar[Scope | None] = ContextVar("fluxabee_app_handler", default=None)
