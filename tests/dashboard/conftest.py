"""The dashboard's test scene: a real password-protected server with two streams, the
dashboard served by uvicorn on a free loopback port, and Debian's chromium driven by
Playwright (never a downloaded browser).

``orders`` (over its cap of 5 entries) has two groups: ``billing``, where a crashed
consumer holds 3 of its 6 events pending and a live consumer waits, and ``shipping``, a
slow group that read nothing yet.
``emails`` has one group and two dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from fluxabee import Config, Engine, RedisPool, RetryPolicy, Stream
from fluxabee._keys import dead_letter_key
from fluxabee.dashboard import create_app
from tests.servers import RedisServer

#: The Redis password: it must appear in no page.
SECRET = "Dash-S3cret-Pw-7"
#: Where the test run saves its screenshots (a CI artifact; git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
#: Where Debian's package puts the browser.
CHROMIUM_PATHS = ("chromium", "/usr/bin/chromium", "chromium-browser")


def chromium() -> str:
    """Debian's chromium, or a skip with the reason (a failure in CI, where CI=true)."""
    for name in CHROMIUM_PATHS:
        found = shutil.which(name)
        if found:
            return found
    reason = "chromium is not installed (apt-get install chromium): browser tests skipped"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run them", pytrace=False)
    pytest.skip(reason)


class _Server(uvicorn.Server):
    """uvicorn that says when it listens (an event, not a sleep)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@dataclass
class Served:
    """A dashboard being served: its URL and the app."""

    url: str
    app: Any


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Serve ``create_app(config, **options)`` on 127.0.0.1, a free port; stopped after."""
    running: list[tuple[_Server, threading.Thread]] = []

    def start(config: Config, prefix: str = "", **options: Any) -> Served:
        app = create_app(config, refresh=1.0, **options)
        asgi: Any = app
        if prefix:  # mounted: the host's lifespan closes the dashboard, as the README says

            @contextlib.asynccontextmanager
            async def lifespan(host: Starlette) -> AsyncIterator[None]:
                yield
                await app.aclose()

            asgi = Starlette(routes=[Mount(prefix, app=app)], lifespan=lifespan)
        server = _Server(
            uvicorn.Config(
                asgi, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on"
            )
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        running.append((server, thread))
        assert server.ready.wait(30), "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        return Served(f"http://127.0.0.1:{port}{prefix}", app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(30)


@dataclass
class Scene:
    """The scene's server, config and a redis-py client on it."""

    server: RedisServer
    config: Config
    r: redis.Redis
    #: Entry IDs of ``orders``, oldest first.
    orders: list[str]


def _dead(events: list[Any]) -> None:
    raise ValueError("the mail server said no")


@pytest.fixture
def scene(server_factory: Callable[..., RedisServer]) -> Iterator[Scene]:
    """The two streams, as the module docstring says, on a server with a password."""
    server = server_factory(extra_args=["--requirepass", SECRET])
    uri = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
    config = Config(
        redis_pools=[
            RedisPool(
                code="default",
                uri=uri,
                streams=[
                    Stream("orders", groups=("billing", "shipping"), max_len=5),
                    Stream("emails"),
                ],
            )
        ]
    )
    r = redis.Redis(host="127.0.0.1", port=server.port, password=SECRET)
    with Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(6):
            broker.publish("orders", {"order": n, "total": 9.5 + n}, tenant="acme")
        broker.publish("emails", {"to": "a@example.com"})
        broker.publish("emails", {"to": "b@example.com"})
        orders = broker.flush()[:6]
        consumer = broker.consumer_many(
            "emails", retry_policy=RetryPolicy(dead_letter_on=(ValueError,))
        )
        for _ in range(2):
            with pytest.raises(ValueError):
                consumer.consume(1, 0, _dead)
    r.xgroup_create("orders", "billing", id="0")
    r.xgroup_create("orders", "shipping", id="0")
    r.xreadgroup("billing", "consumer-crashed1", {"orders": ">"}, count=3)  # then kill -9
    r.xgroup_createconsumer("orders", "billing", "consumer-live")
    assert r.xlen(dead_letter_key("emails")) == 2
    yield Scene(server, config, r, orders)
    r.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium (Debian's) driven by Playwright, headless; per module, because Playwright's
    sync API holds an event loop running in the main thread while it lives (so no
    asyncio test may run meanwhile: keep async tests out of the browser modules)."""
    path = chromium()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own cookies); dialogs are answered by the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def screenshot(tab: Any, name: str) -> Path:
    """Save a screenshot of ``tab`` under :data:`SCREENSHOTS`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
