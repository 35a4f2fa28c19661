"""Engine and context: the entry points of the API.

An engine owns the Redis connections of a config; a context is a unit of work with its own
publish buffer (its event broker). Close the engine, or use it as a context manager.
Closing does not flush: events still buffered are reported in a warning (their count per
context) and dropped with the context; a closed engine, its contexts and its consumers
raise :class:`~fluxabee.ClosedError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType

from .._backends import AsyncBackend, AsyncNetworkBackend
from .._observe import Observer, Observers, dispatcher
from ..config import Config
from .broker import AsyncEventBroker
from .clients import AsyncClients

logger = logging.getLogger("fluxabee")


class AsyncEngine:
    """Owns the Redis pools of a :class:`~fluxabee.Config`; makes contexts.

    ``network_backend`` opens the connections (the default: TCP, TLS or unix sockets);
    inject one to wrap them, as httpcore's ``network_backend``. ``observers``
    (:class:`~fluxabee.Observer`) hear about every publish, hand-over, ack, retry, dead
    letter and claim of the engine's brokers and consumers (metrics, traces).
    """

    def __init__(
        self,
        config: Config,
        *,
        network_backend: AsyncNetworkBackend | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        #: The configuration this engine serves.
        self.config = config
        self._observers = dispatcher(observers)
        self._clients = AsyncClients(config, network_backend)

    @property
    def closed(self) -> bool:
        """Whether the engine was closed."""
        return self._clients.closed

    def new_context(self) -> AsyncContext:
        """A new context, with its own event broker and publish buffer (no IO)."""
        self._clients.check_open()
        return AsyncContext(self._clients, self._observers)

    async def aclose(self) -> None:
        """Release the ``consumer_single`` locks, close every Redis connection (a blocked
        read wakes up), and warn about events still buffered (closing does not flush).

        The work is shielded: a cancelled ``aclose`` raises its cancellation at once and
        the closing still finishes.
        """
        if self._clients.closed:
            return
        await AsyncBackend.shielded(self._close)

    async def _close(self) -> None:
        buffered = [b.buffered for b in list(self._clients.brokers) if b.buffered]
        if buffered:
            logger.warning(
                "engine closed with %d events still buffered in %d contexts "
                "(never flushed: they are not sent)",
                sum(buffered),
                len(buffered),
            )
        await self._clients.aclose()

    async def __aenter__(self) -> AsyncEngine:
        self._clients.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncContext:
    """A unit of work: holds one event broker (the same object on every call)."""

    def __init__(self, clients: AsyncClients, observers: Observers | None = None) -> None:
        self._clients = clients
        self._observers = observers
        self._broker: AsyncEventBroker | None = None

    @property
    def buffered(self) -> int:
        """How many events its broker holds for ``flush``."""
        return 0 if self._broker is None else self._broker.buffered

    def event_broker(self) -> AsyncEventBroker:
        """This context's event broker (created on first call, then reused)."""
        self._clients.check_open()
        if self._broker is None:
            self._broker = AsyncEventBroker(self._clients, self._observers)
        return self._broker
