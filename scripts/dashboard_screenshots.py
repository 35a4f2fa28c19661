#!/usr/bin/env python3
"""Take the README's dashboard screenshots (docs/images/) from a real run.

``scripts/dashboard_screenshots.py [--seconds 120]``: a throwaway server with a password,
three streams with traffic (a fast and a slow group, a failing handler that fills the dead
letters, a crashed consumer holding events), the dashboard sampling every 2 s, then Debian's
chromium (Playwright, ``executable_path``) photographs the overview and a stream page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
import uvicorn
from playwright.sync_api import sync_playwright

from fluxabee import Config, Engine, Event, LocalServer, RedisPool, RetryPolicy, Stream
from fluxabee.dashboard import create_app

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
SECRET = "not-shown-anywhere"


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def traffic(config: Config, stop: threading.Event) -> list[threading.Thread]:
    """A publisher and consumers: billing keeps up, shipping lags, emails fail sometimes."""
    engine = Engine(config)
    broker = engine.new_context().event_broker()

    def publish() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            broker.publish("orders", {"order": n, "total": round(n * 1.25, 2)}, tenant="acme")
            if n % 3 == 0:
                broker.publish("emails", {"to": f"user{n}@example.com", "template": "receipt"})
            if n % 2 == 0:
                broker.publish("payments", {"order": n, "amount": n * 100, "currency": "EUR"})
            broker.flush()
            time.sleep(0.05 + 0.05 * ((n // 200) % 2))  # the rate steps up and down

    def consume(stream: str, group: str, pause: float, fail_every: int = 0) -> None:
        consumer = (
            engine.new_context()
            .event_broker()
            .consumer_many(
                stream, group=group, retry_policy=RetryPolicy(dead_letter_on=(ValueError,))
            )
        )
        seen = 0

        def handle(events: list[Event]) -> None:
            nonlocal seen
            for event in events:
                seen += 1
                if fail_every and seen % fail_every == 0:
                    raise ValueError("SMTP 550: mailbox unavailable")
                event.ack()
            time.sleep(pause)

        while not stop.is_set():
            with contextlib.suppress(ValueError):  # its events go to the dead letters
                consumer.consume(10, 0.5, handle)

    threads = [
        threading.Thread(target=publish),
        threading.Thread(target=consume, args=("orders", "billing", 0.0)),
        threading.Thread(target=consume, args=("orders", "shipping", 0.9)),
        threading.Thread(target=consume, args=("emails", "consumer_group", 0.0, 25)),
    ]
    for thread in threads:
        thread.start()
    return threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with LocalServer(extra_args=["--requirepass", SECRET]) as server:
        uri = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
        streams = [
            Stream("orders", groups=("billing", "shipping"), max_len=2000),
            Stream("emails"),
            Stream("payments"),
        ]
        config = Config(redis_pools=[RedisPool(uri=uri, streams=streams)])
        r = redis.Redis(host="127.0.0.1", port=server.port, password=SECRET)
        stop = threading.Event()
        threads = traffic(config, stop)
        time.sleep(3)
        r.xgroup_create("payments", "consumer_group", id="0", mkstream=True)
        r.xreadgroup("consumer_group", "consumer-2026_12_07_09_14_02-81231", {"payments": ">"},
                     count=40)  # fmt: skip  # then kill -9: its events stay pending
        app = create_app(config, refresh=2.0)
        web = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                     ws="none", lifespan="on"))  # fmt: skip
        serving = threading.Thread(target=lambda: asyncio.run(web.serve()))
        serving.start()
        web.ready.wait(30)
        url = f"http://127.0.0.1:{web.servers[0].sockets[0].getsockname()[1]}"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium)
                page = browser.new_page(viewport={"width": 1280, "height": 640})
                page.goto(url + "/")
                time.sleep(args.seconds)  # let the sampler draw the rates
                IMAGES.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(IMAGES / "dashboard-overview.png"))
                page.set_viewport_size({"width": 1280, "height": 1000})
                page.goto(url + "/streams/payments")
                page.screenshot(path=str(IMAGES / "dashboard-stream.png"))
                assert SECRET not in page.content()
                browser.close()
        finally:
            stop.set()
            web.should_exit = True
            serving.join(30)
            for thread in threads:
                thread.join(30)
            r.close()
    print(f"written: {IMAGES / 'dashboard-overview.png'}, {IMAGES / 'dashboard-stream.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
