"""``fluxabee.App``: decorated, typed handlers, follow-up events, one command to run them.

The facade over the pure rules (:mod:`fluxabee._app`) and the two runtimes
(:mod:`fluxabee._async.app`, and its generated sync twin). One ``App`` object serves a web
process (opened with ``with app:`` / ``async with app:`` to publish) and a worker process
(``app.run()``, ``await app.serve()`` or ``fluxabee run module:app``).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
import logging
import signal
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from ._app import CURRENT, Registration, Registry, Scope
from ._async.app import AsyncAppRuntime
from ._constants import SINGLE_CONSUMER_NAME
from ._observe import Observer
from ._policy import RetryPolicy
from ._sync.app import AppRuntime
from ._validate import consumer_name
from .config import Config
from .errors import ClosedError, InvalidArgumentError
from .event import Event

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("fluxabee")


class App:
    """An application: handlers decorated with :meth:`consumer`, run together.

    ``App(config, observers=...)`` holds the handlers; nothing connects until the app is
    opened: ``with app:`` / ``async with app:`` to publish (a web process), :meth:`run` or
    ``await`` :meth:`serve` to run every handler (``fluxabee run module:app`` does that in
    one or more worker processes). Each handler becomes one ``consumer.process`` loop on
    its stream and group (``consumer_single`` with ``single=True``).

    Handlers are typed: the first parameter's annotation says what it gets (a dataclass, a
    pydantic model, ``list[...]`` or any hint :meth:`Event.unserialize` takes, ``bytes``
    for the raw body, the event itself with ``fluxabee.Event`` / ``AsyncEvent``, the
    decoded body without an annotation); a further parameter annotated with the event type
    gets the event too. A body that does not fit is a :class:`~fluxabee.DecodeError` (its
    path in the message), dead-lettered on its first delivery, never retried.
    """

    def __init__(
        self, config: Config, *, observers: Iterable[Observer] = (), name: str | None = None
    ) -> None:
        if not isinstance(config, Config):
            raise InvalidArgumentError(f"App needs a fluxabee.Config, got {config!r}")
        #: The configuration of the app's streams and Redis pools.
        self.config = config
        #: A stable consumer name for the app's ``consumer_many`` handlers (say the pod
        #: name; ``fluxabee run --processes`` gives each worker one): a restarted process
        #: re-reads what it left pending at once. ``None``: generated names.
        self.name = None if name is None else consumer_name(name, reserved=SINGLE_CONSUMER_NAME)
        self._observers = list(observers)
        self._registry = Registry(config)
        self._runtime: AsyncAppRuntime | AppRuntime | None = None
        self._serving = False
        self._stop_early = False
        #: The loop of the asyncio runtime while it is open (for calls from threads).
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<App handlers={len(self._registry)} opened={self._runtime is not None}>"

    # -- registering ---------------------------------------------------------------------

    def consumer(
        self,
        stream: str,
        *,
        group: str | None = None,
        single: bool = False,
        concurrency: int = 1,
        key: str | Callable[[Event[Any]], Hashable] | None = None,
        retry_policy: RetryPolicy | None = None,
        min_idle: float | _dt.timedelta | None = None,
    ) -> Callable[[F], F]:
        """Decorate a handler of ``stream`` in ``group`` (default: the stream's first).

        ``concurrency`` events at once (``process``), in order per ``key`` (a meta field
        name or a function of the event); ``single=True`` runs it as ``consumer_single``
        (one holder, hot standbys). ``retry_policy`` as for consumers (a body that does
        not fit the annotation is dead-lettered at once whatever it says); ``min_idle``
        as ``consumer_many``'s. A second handler of one stream and group is refused here
        (:class:`InvalidArgumentError`), as are undeclared streams and groups. The
        function is returned unchanged.
        """
        if self._serving:
            raise InvalidArgumentError("handlers are registered before the app runs")

        def register(func: F) -> F:
            self._registry.add(
                func,
                stream,
                group=group,
                single=single,
                concurrency=concurrency,
                key=key,
                retry_policy=retry_policy,
                min_idle=min_idle,
            )
            return func

        return register

    @property
    def handlers(self) -> tuple[Registration, ...]:
        """The registered handlers, in registration order."""
        return tuple(self._registry)

    # -- publishing ----------------------------------------------------------------------

    def _scope(self) -> Scope | None:
        scope = CURRENT.get()
        if scope is None or scope.runtime is not self._runtime:
            return None
        return scope

    def _broker(self) -> Any:
        scope = self._scope()
        if scope is not None:
            return scope.follow_ups()
        if self._runtime is None:
            raise ClosedError("the app is not open: use `with app:` / `async with app:`, or run it")
        return self._runtime.broker

    def publish(
        self,
        stream: str,
        body: Any = None,
        *,
        meta: Mapping[str, str] | None = None,
        **meta_kw: str,
    ) -> None:
        """Buffer one event (no IO), as ``broker.publish``.

        Inside a handler the event is a follow-up: buffered in that handler call's own
        context, flushed when the handler returns and before its event is acked (a crash
        between the two can duplicate it, never lose it); a handler that raises publishes
        none. Outside handlers it buffers in the app's broker until :meth:`flush`.
        """
        self._broker().publish(stream, body, meta=meta, **meta_kw)

    def flush(self, **options: Any) -> Any:
        """``broker.flush`` of what :meth:`publish` buffered: the entry IDs. A plain call
        in an app opened with ``with app:`` (or run by :meth:`run` under threads), awaited
        in one opened with ``async with app:`` (or served under asyncio)."""
        return self._settle(self._broker().flush(**options))

    def publish_now(
        self,
        stream: str,
        body: Any = None,
        *,
        meta: Mapping[str, str] | None = None,
        **meta_kw: str,
    ) -> Any:
        """``broker.publish_now``: send one event at once, return its entry ID (awaited
        in an app opened with ``async with app:``, as :meth:`flush`)."""
        return self._settle(self._broker().publish_now(stream, body, meta=meta, **meta_kw))

    def _settle(self, result: Any) -> Any:
        """An awaitable of the asyncio runtime asked for from a thread without a loop (a
        plain ``def`` handler, a sync FastAPI endpoint): run it on the app's loop and wait
        for its result, so such callers call plainly."""
        loop = self._loop
        if loop is None or not inspect.iscoroutine(result):
            return result
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(result, loop).result()
        return result

    # -- opening -------------------------------------------------------------------------

    @property
    def runtime(self) -> AsyncAppRuntime | AppRuntime | None:
        """The opened runtime (``None`` while the app is closed)."""
        return self._runtime

    def _open(self, kind: type[AsyncAppRuntime] | type[AppRuntime]) -> Any:
        if self._runtime is not None:
            raise InvalidArgumentError("the app is already open")
        runtime = kind(self.config, self._observers, self._registry, self.name)
        self._runtime = runtime
        return runtime

    def __enter__(self) -> App:
        self._open(AppRuntime)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runtime, self._runtime = self._runtime, None
        if isinstance(runtime, AppRuntime):
            runtime.close()

    async def __aenter__(self) -> App:
        self._open(AsyncAppRuntime)
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runtime, self._runtime, self._loop = self._runtime, None, None
        if isinstance(runtime, AsyncAppRuntime):
            await runtime.aclose()

    # -- running -------------------------------------------------------------------------

    def _check_runnable(self) -> None:
        if not len(self._registry):
            raise InvalidArgumentError("the app has no handlers: decorate some with app.consumer")
        if self._serving:
            raise InvalidArgumentError("the app is already running")

    def stop(self) -> None:
        """Stop a running app gracefully (thread- and signal-safe): reading stops, events
        in the handlers finish and are acked, events read but not started are handed back.
        """
        runtime = self._runtime
        if runtime is None or not self._serving:
            self._stop_early = True  # a stop before the loops exist still counts
            return
        runtime.stop()

    async def serve(self) -> int:
        """Run every handler under asyncio until :meth:`stop` (or a cancellation); return
        how many events they handled. Opens the app for the time it runs unless it is
        open already (``async with app:``). Signals are the caller's (:meth:`run` and
        ``fluxabee run`` stop on SIGTERM / SIGINT)."""
        self._check_runnable()
        opened = self._runtime is None
        runtime = self._open(AsyncAppRuntime) if opened else self._runtime
        if opened:
            self._loop = asyncio.get_running_loop()
        if not isinstance(runtime, AsyncAppRuntime):
            raise InvalidArgumentError("serve() needs an app opened with `async with app:`")
        self._serving = True
        if self._stop_early:
            runtime.stop()
        try:
            return await runtime.serve()
        finally:
            self._serving = self._stop_early = False
            if opened:
                self._runtime = self._loop = None
                await runtime.aclose()

    def run(self) -> int:
        """Run every handler until SIGTERM / SIGINT (or :meth:`stop`), then stop gracefully;
        return how many events they handled. Blocks.

        Under threads when every handler is a plain ``def`` (each ``process`` loop in its
        own thread, handlers in its thread pool); under asyncio (``asyncio.run``) when one
        is ``async def`` (plain ``def`` handlers then run in threads).
        """
        self._check_runnable()
        if self._registry.any_async:
            return asyncio.run(self._serve_with_signals())
        runtime: AppRuntime = self._open(AppRuntime)
        previous = self._trap(runtime.stop)
        self._serving = True
        if self._stop_early:
            runtime.stop()
        try:
            return runtime.serve()
        finally:
            self._serving = self._stop_early = False
            self._runtime = None
            _restore(previous)
            runtime.close()

    async def _serve_with_signals(self) -> int:
        loop = asyncio.get_running_loop()
        trapped = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
                trapped.append(sig)
        try:
            return await self.serve()
        finally:
            for sig in trapped:
                loop.remove_signal_handler(sig)

    @staticmethod
    def _trap(stop: Callable[[], None]) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: Any) -> None:
            stop()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
