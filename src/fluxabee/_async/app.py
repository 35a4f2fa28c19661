"""The runtime of an :class:`~fluxabee.App` (the IO shell): an engine, a broker for the
app's own publishing, and one ``consumer.process`` loop per registered handler.

What a handler takes and which handlers may live together is decided by the pure
:mod:`fluxabee._app`; what a consumer does is the consumer's business. This module only
wires them: each event's arguments are built from the handler's spec (a body that does not
fit is a :class:`~fluxabee.DecodeError`, which the app's retry policy dead-letters at once),
the handler runs with its own follow-up broker in :data:`~fluxabee._app.CURRENT`, and that
broker is flushed when the handler returns, **before** the window acks the event: a crash
between the two can only duplicate a follow-up, never lose it. A handler that raises (or
whose follow-ups cannot be flushed) publishes nothing more and its event is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .._app import CURRENT, Registration, Registry, Scope
from .._apploops import AsyncLoops
from .._backends import AsyncBackend
from .._observe import Observer
from ..config import Config
from ..event import AsyncEvent
from .broker import AsyncEventBroker
from .consumer import AsyncConsumer
from .engine import AsyncEngine

logger = logging.getLogger("fluxabee")


class AsyncAppRuntime:
    """An opened app: an engine, its broker, and (while serving) its consumers."""

    def __init__(
        self,
        config: Config,
        observers: Iterable[Observer],
        registry: Registry,
        name: str | None = None,
    ) -> None:
        self._registry = registry
        self._name = name
        self._engine = AsyncEngine(config, observers=list(observers))
        #: The broker of ``app.publish`` / ``flush`` / ``publish_now`` outside handlers.
        self.broker: AsyncEventBroker = self._engine.new_context().event_broker()
        self._consumers: list[AsyncConsumer] = []
        self._stopping = False
        self._guard = AsyncBackend.new_guard()
        #: How many loops are reading now (``/healthz``).
        self.reading = 0
        #: Events handlers finished without an error, over every loop.
        self.handled = 0

    @property
    def engine(self) -> AsyncEngine:
        """The engine (its connections serve every consumer and broker of the app)."""
        return self._engine

    def new_broker(self) -> AsyncEventBroker:
        """A broker of a context of its own (a handler call's follow-ups)."""
        return self._engine.new_context().event_broker()

    # -- serving -------------------------------------------------------------------------

    async def serve(self) -> int:
        """Run every handler's loop until :meth:`stop`; return how many events they
        handled. The first loop that fails stops the others; its error is raised."""
        broker = self._engine.new_context().event_broker()
        items = list(self._registry)
        consumers = [self._consumer(broker, item, self._name) for item in items]
        self._consumers = consumers
        if self._stopping:
            for consumer in consumers:
                consumer.stop()
        loops = [self._loop_of(c, item) for c, item in zip(consumers, items, strict=True)]
        try:
            await AsyncLoops.run_all(loops, self.stop)
        finally:
            self._consumers = []
        return self.handled

    @staticmethod
    def _consumer(
        broker: AsyncEventBroker, item: Registration, name: str | None = None
    ) -> AsyncConsumer:
        if item.single:
            return broker.consumer_single(
                item.stream, group=item.group, retry_policy=item.retry_policy
            )
        options: dict[str, Any] = {"name": name}
        if item.min_idle is not None:
            options["min_idle"] = item.min_idle
        return broker.consumer_many(
            item.stream, group=item.group, retry_policy=item.retry_policy, **options
        )

    def _loop_of(self, consumer: AsyncConsumer, item: Registration) -> Any:
        pool = AsyncLoops.new_pool(item.spec.is_async, item.concurrency)

        async def handle(event: AsyncEvent) -> None:
            await self._handle(item, event, pool)

        async def loop() -> None:
            try:
                await serve()
            finally:
                AsyncLoops.close_pool(pool)

        async def serve() -> None:
            async with consumer:
                logger.info(
                    "app handler %s reads %s as %s of group %s",
                    item.spec.name,
                    item.stream,
                    consumer.name,
                    item.group,
                )
                with self._guard:
                    self.reading += 1
                try:
                    handled = await consumer.process(
                        handle, concurrency=item.concurrency, key=item.key
                    )
                finally:
                    with self._guard:
                        self.reading -= 1
                with self._guard:
                    self.handled += handled

        return loop

    async def _handle(self, item: Registration, event: AsyncEvent, pool: Any = None) -> None:
        """One handler call: its arguments, its own follow-up broker, the flush before the
        ack (the window acks when this returns)."""
        spec = item.spec
        args, kwargs = spec.arguments(event)  # DecodeError: dead-lettered at once
        scope = Scope(self)
        token = CURRENT.set(scope)
        try:
            await AsyncLoops.call(spec.func, spec.is_async, args, kwargs, pool)
        except BaseException:
            if scope.broker is not None:
                scope.broker.discard()  # a handler that raises publishes nothing
            raise
        finally:
            CURRENT.reset(token)
        follow_ups = scope.broker
        if follow_ups is not None and follow_ups.buffered:
            try:
                await follow_ups.flush()
            except BaseException:
                follow_ups.discard()  # the event is retried and publishes them again
                raise

    def stop(self) -> None:
        """Ask every loop to stop (thread- and signal-safe): events in flight finish."""
        self._stopping = True
        for consumer in list(self._consumers):
            consumer.stop()

    async def aclose(self) -> None:
        """Close the engine (events still buffered in the app's broker are warned about)."""
        await self._engine.aclose()
