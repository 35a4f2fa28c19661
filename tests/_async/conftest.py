"""Engine and broker fixtures for the asyncio tests (the sync copy is generated)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fluxabee import AsyncEngine, AsyncEventBroker, Config


@pytest.fixture
async def engine(config: Config) -> AsyncIterator[AsyncEngine]:
    """An engine on the test server, closed after the test."""
    async with AsyncEngine(config) as engine:
        yield engine


@pytest.fixture
def broker(engine: AsyncEngine) -> AsyncEventBroker:
    """The event broker of a fresh context."""
    return engine.new_context().event_broker()
