"""fluxabee demo: publish, consume (single and many), autoclaim, statistics.

Runs against a throwaway server that ``fluxabee.LocalServer`` starts on a free 127.0.0.1
port (``redis-server`` or ``valkey-server`` on PATH, else the one ``fluxabee[embedded]``
ships), or against ``FLUXABEE_DEMO_URL`` when that is set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import fluxabee


@dataclass
class OrderPlaced:
    Order: int
    Customer: str


@contextmanager
def local_redis() -> Iterator[str]:
    """Yield a Redis URL: FLUXABEE_DEMO_URL, or a server started just for the demo."""
    if os.environ.get("FLUXABEE_DEMO_URL"):
        yield os.environ["FLUXABEE_DEMO_URL"]
        return
    try:
        server = fluxabee.LocalServer()
    except fluxabee.ServerNotFoundError as exc:
        raise SystemExit(str(exc)) from exc
    with server:
        print(
            f"started {server.binary.flavor}-server {server.binary.version_string} on {server.url}"
        )
        yield server.url


def sync_demo(config: fluxabee.Config) -> None:
    with fluxabee.Engine(config) as engine:
        broker = engine.new_context().event_broker()
        broker.publish("orders", OrderPlaced(Order=1, Customer="ada"), source="shop")
        broker.publish("orders", {"Order": 2, "Customer": "grace"})
        broker.publish("orders", "plain text works too")
        print("flushed ids:", broker.flush())

        with broker.consumer_single("orders") as consumer:

            def handler(events: list[fluxabee.Event]) -> None:
                for event in events:
                    print(f"  [{consumer.name}] {event.id} body={event.body!r} "
                          f"source={event.tag('source')!r}")  # fmt: skip
                    event.ack()

            handled = consumer.consume(5, 0.1, handler)
            print("single consumer handled", handled)

        stats = broker.stream_statistics("orders")
        print(f"stats: length={stats.length} pending={stats.group.pending if stats.group else 0}")


async def async_demo(config: fluxabee.Config) -> None:
    async with fluxabee.AsyncEngine(config) as engine:
        broker = engine.new_context().event_broker()
        for i in range(6):
            broker.publish("orders", {"Order": 100 + i, "Customer": "async"})
        await broker.flush()

        async def worker(number: int) -> int:
            async with broker.consumer_many("orders") as consumer:

                async def handler(events: list[fluxabee.AsyncEvent]) -> None:
                    print(f"  worker {number} ({consumer.name}) got",
                          [e.body["Order"] for e in events])  # fmt: skip

                return await consumer.consume(3, 0.1, handler)

        print("async workers handled", await asyncio.gather(worker(1), worker(2)))
        for stats in await broker.streams_statistics():
            print(f"stats {stats.stream}: length={stats.length}")


def main() -> None:
    with local_redis() as url:
        config = fluxabee.Config.from_yaml(f"default:\n  redis: {url}\n  streams: [orders]\n")
        print("== sync API")
        sync_demo(config)
        print("== asyncio API")
        asyncio.run(async_demo(config))


if __name__ == "__main__":
    main()
