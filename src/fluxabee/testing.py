"""pytest plugin: a real, throwaway Redis for the tests of code that uses fluxabee.

Enable it with ``pytest -p fluxabee.testing``, or in the root ``conftest.py``::

    pytest_plugins = ["fluxabee.testing"]

Fixtures:

- ``redis_server``: one :class:`~fluxabee.LocalServer` for the whole session, on a free
  127.0.0.1 port (``redis-server`` / ``valkey-server`` from PATH, else the server
  ``fluxabee[embedded]`` ships; ``$FLUXABEE_SERVER_BINARY`` picks one);
- ``fluxabee_redis_url``: its URL, with the database flushed before the test;
- ``fluxabee_config``: a factory of :class:`~fluxabee.Config` on that server:
  ``fluxabee_config("orders", "payments")`` (the database is flushed before the test);
- ``fluxabee_streams``: the streams ``engine`` and ``async_engine`` declare (``["events"]``;
  override the fixture to change them);
- ``engine`` / ``async_engine``: an :class:`~fluxabee.Engine` / :class:`~fluxabee.AsyncEngine`
  on a clean database, closed after the test (``async_engine`` needs pytest-asyncio).

And :func:`running`, to run a :class:`~fluxabee.App`'s handlers while a test publishes:
``async with running(app) as run: app.publish(...); await run.drained()`` (``with`` and a
plain ``run.drained()`` for an app of plain ``def`` handlers).

A test reads like this::

    def test_orders_are_handled(engine):
        broker = engine.new_context().event_broker()
        broker.publish("events", {"order": 1})
        broker.flush()
        with broker.consumer_single("events") as consumer:
            assert consumer.consume(10, 1.0, handle_orders) == 1
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._app import NotDrainedError
from ._async.apptest import AsyncRunning
from ._async.engine import AsyncEngine
from ._localserver import HOST, LocalServer
from ._sync.apptest import Running
from ._sync.engine import Engine
from .config import Config
from .errors import LocalServerError

if TYPE_CHECKING:
    from ._application import App

__all__ = [
    "AsyncRunning",
    "NotDrainedError",
    "Running",
    "async_engine",
    "engine",
    "flushall",
    "fluxabee_config",
    "fluxabee_redis_url",
    "fluxabee_streams",
    "redis_server",
    "running",
]

_FLUSHALL = b"*1\r\n$8\r\nFLUSHALL\r\n"


def flushall(server: LocalServer, timeout: float = 10.0) -> None:
    """Empty every database of ``server`` (a plain-TCP one), starting it if it stopped."""
    if not server.running:
        server.start()
    with socket.create_connection((HOST, server.port), timeout=timeout) as sock:
        sock.sendall(_FLUSHALL)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    if not reply.startswith(b"+"):
        raise LocalServerError(f"FLUSHALL on {server.url} failed: {reply!r}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalServer]:
    """One real server for the session, on a free 127.0.0.1 port; stopped at the end."""
    with LocalServer() as server:
        yield server


@pytest.fixture
def fluxabee_redis_url(redis_server: Any) -> str:
    """The session server's URL; every database is flushed before the test."""
    local = getattr(redis_server, "server", redis_server)  # the suite's RedisServer wraps one
    flushall(local)
    return str(local.url)


@pytest.fixture
def fluxabee_config(fluxabee_redis_url: str) -> Callable[..., Config]:
    """Build a one-pool config on the (flushed) session server: ``fluxabee_config("s1")``."""

    def build(*streams: str) -> Config:
        return Config.from_url(fluxabee_redis_url, streams=list(streams or ("events",)))

    return build


@pytest.fixture
def fluxabee_streams() -> list[str]:
    """The streams of ``engine`` and ``async_engine``; override it to declare others."""
    return ["events"]


@pytest.fixture
def engine(fluxabee_config: Callable[..., Config], fluxabee_streams: list[str]) -> Iterator[Engine]:
    """A sync engine on a clean database, declaring ``fluxabee_streams``; closed after."""
    with Engine(fluxabee_config(*fluxabee_streams)) as opened:
        yield opened


async def _async_engine(
    fluxabee_config: Callable[..., Config], fluxabee_streams: list[str]
) -> AsyncIterator[AsyncEngine]:
    """An asyncio engine on a clean database, declaring ``fluxabee_streams``; closed after
    the test (needs pytest-asyncio)."""
    async with AsyncEngine(fluxabee_config(*fluxabee_streams)) as opened:
        yield opened


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is not installed

    @pytest.fixture
    def async_engine() -> None:
        """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
        pytest.fail("the async_engine fixture needs pytest-asyncio: pip install pytest-asyncio")

else:
    async_engine = pytest_asyncio.fixture(_async_engine, name="async_engine")  # type: ignore[assignment]


class running:
    """Run ``app``'s handlers in the background for the block of a test.

    ``async with running(app) as run:`` (asyncio: an :class:`AsyncRunning`) or
    ``with running(app) as run:`` (threads, plain ``def`` handlers: a :class:`Running`)
    opens the app, so ``app.publish`` / ``app.flush`` work in the block, and runs every
    handler; ``[await] run.drained()`` waits until they handled everything published so
    far (follow-ups included) without a sleep in the test; leaving the block stops the
    app gracefully and raises what stopped a handler loop, if anything did::

        async def test_orders_are_billed(fluxabee_config):
            app = make_app(fluxabee_config("orders", "invoices"))
            async with running(app) as run:
                app.publish("orders", {"id": 1})
                await run.drained()
            assert ...
    """

    def __init__(self, app: App) -> None:
        self._app = app
        self._sync: Running | None = None
        self._async: AsyncRunning | None = None

    def __enter__(self) -> Running:
        self._sync = Running(self._app)
        return self._sync.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        if self._sync is not None:
            self._sync.__exit__(*exc_info)

    async def __aenter__(self) -> AsyncRunning:
        self._async = AsyncRunning(self._app)
        return await self._async.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._async is not None:
            await self._async.__aexit__(*exc_info)
