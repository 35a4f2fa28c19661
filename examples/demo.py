"""fluxabee demo: publish, consume (single and many), autoclaim, statistics.

Runs against a throwaway redis-server it starts on a free 127.0.0.1 port (``redis-server``
must be on PATH), or against ``FLUXABEE_DEMO_URL`` when that is set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
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
    """Yield a Redis URL: FLUXABEE_DEMO_URL, or a redis-server started just for the demo."""
    if os.environ.get("FLUXABEE_DEMO_URL"):
        yield os.environ["FLUXABEE_DEMO_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: apt-get install -y redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="fluxabee-demo-")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


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
