"""Engine and context: the entry points of the asyncio API.

An engine owns the Redis connections of a config; a context is a unit of work with its own
publish buffer (its event broker). Close the engine, or use it as a context manager.
"""

from __future__ import annotations

from types import TracebackType

from ..config import Config
from .broker import AsyncEventBroker
from .client import AsyncClients


class AsyncEngine:
    """Owns the Redis pools of a :class:`~fluxabee.Config`; makes contexts."""

    def __init__(self, config: Config) -> None:
        #: The configuration this engine serves.
        self.config = config
        self._clients = AsyncClients(config)

    def new_context(self) -> AsyncContext:
        """A new context, with its own event broker and publish buffer (no IO)."""
        return AsyncContext(self._clients)

    async def aclose(self) -> None:
        """Close every Redis connection of this engine."""
        await self._clients.aclose()

    async def __aenter__(self) -> AsyncEngine:
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

    def __init__(self, clients: AsyncClients) -> None:
        self._clients = clients
        self._broker: AsyncEventBroker | None = None

    def event_broker(self) -> AsyncEventBroker:
        """This context's event broker (created on first call, then reused)."""
        if self._broker is None:
            self._broker = AsyncEventBroker(self._clients)
        return self._broker
