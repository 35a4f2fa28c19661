"""The App under asyncio only: cancelling ``serve`` strands nothing, and a stop before the
loops exist still stops them."""

from __future__ import annotations

import asyncio

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
