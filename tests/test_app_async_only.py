"""The App under asyncio only: cancelling ``serve`` strands nothing, and a stop before the
loops exist still stops them."""

from __future__ import annotations

import asyncio
import threading

import msgpack
import pytest
import redis

from fluxabee import App, AsyncEngine, Config
from fluxabee.testing import running


async def test_cancelling_serve_strands_nothing(redis_url: str, rclient: redis.Redis) -> None:
    config = Config.from_url(redis_url, streams=["orders", "invoices"])
    app = App(config)
    seen: list[int] = []
    some = asyncio.Event()

    @app.consumer("orders", concurrency=10, min_idle=1)
    async def bill(order: int) -> None:
        seen.append(order)
        if len(seen) >= 50:
            some.set()
        await asyncio.sleep(0.001)
        app.publish("invoices", order)

    async with AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for number in range(500):
            broker.publish("orders", number)
        await broker.flush()
    serving = asyncio.ensure_future(app.serve())
    await some.wait()
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert app.runtime is None  # closed by serve
    # What the cancelled loop held is pending, handed back or claimed after min_idle.
    async with running(app) as run:
        await run.drained()
    assert sorted(set(seen)) == list(range(500))
    assert rclient.xpending("orders", "consumer_group")["pending"] == 0
    assert {int(v) for v in _bodies(rclient)} == set(range(500))


def _bodies(rclient: redis.Redis) -> list[int]:
    return [msgpack.unpackb(f[b"s"]) for _, f in rclient.xrange("invoices")]


async def test_a_stop_before_serve_stops_it_at_once(redis_url: str) -> None:
    app = App(Config.from_url(redis_url, streams=["orders"]))

    @app.consumer("orders")
    async def nothing(order: int) -> None:
        pass

    app.stop()
    assert await asyncio.wait_for(app.serve(), 30) == 0


async def test_plain_calls_from_threads_of_an_asyncio_app_return_their_results(
    redis_url: str, rclient: redis.Redis
) -> None:
    app = App(Config.from_url(redis_url, streams=["orders", "invoices"]))
    results: list[object] = []

    @app.consumer("orders")
    def bill(order: int) -> None:  # a plain def: a thread of the asyncio runtime
        results.append(app.publish_now("invoices", order))
        app.publish("invoices", order + 100)
        results.append(app.flush())

    async with running(app) as run:
        # A thread of the web process (a sync FastAPI endpoint) calls plainly too.
        entry = await asyncio.to_thread(app.publish_now, "orders", 1)
        assert isinstance(entry, str)
        await run.drained()
    assert isinstance(results[0], str)
    assert isinstance(results[1], list) and len(results[1]) == 1
    assert sorted(msgpack.unpackb(f[b"s"]) for _, f in rclient.xrange("invoices")) == [1, 101]


async def test_a_plain_def_handler_of_an_asyncio_app_runs_concurrency_at_once(
    redis_url: str,
) -> None:
    app = App(Config.from_url(redis_url, streams=["orders"]))
    meeting = threading.Barrier(20, timeout=20)  # breaks unless 20 calls run at once
    met: list[int] = []

    @app.consumer("orders", concurrency=20)
    def bill(order: int) -> None:  # a plain def: a thread of the app's own pool
        meeting.wait()
        met.append(order)

    async with running(app) as run:
        for number in range(20):
            app.publish("orders", number)
        await app.flush()
        await run.drained()
    assert sorted(met) == list(range(20))
