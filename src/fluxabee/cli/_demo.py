"""``fluxabee demo``: the library at work, in a minute, on a machine with no Redis.

With no server configured it starts a throwaway one (:class:`~fluxabee.LocalServer`),
publishes orders with a progress bar, lets one worker take a few and die, consumes the
rest with two ``consumer_many`` workers running ``run`` (one order is poison: it is
retried one at a time, then dead-lettered), takes over the dead worker's orders with
``autoclaim``, shows the dead letter and replays it, prints the statistics and stops the
server it started.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import click
from rich.markup import escape

from .._async.broker import AsyncEventBroker
from .._async.consumer import AsyncConsumer
from .._async.engine import AsyncEngine
from .._localserver import LocalServer
from .._observe import Observer
from .._policy import RetryPolicy
from .._uris import mask
from ..config import Config
from ..event import AsyncEvent, Event
from ._app import Target, cli, err, out, target_options
from ._commands import progress
from ._format import body_text, stats_tables

#: The demo's stream (declare it in a config given with --config).
STREAM = "fluxabee-demo"
#: How many orders the crashing worker takes with it.
CRASHED = 5
#: The poison order's number.
POISON = 13
_CUSTOMERS = ("ada", "grace", "linus", "barbara", "ken", "margaret")


class _Log(logging.Handler):
    """The library's log lines, one dim line each (no traceback), under the demo's output."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        text = text if len(text) <= 150 else text[:147] + "..."
        out.print(f"  log {record.levelname.lower()}: {text}", style="dim", markup=False)


class _Counts(Observer):
    """An observer, as an application would write one: counts dead letters and claims."""

    def __init__(self) -> None:
        self.dead = 0
        self.claims = 0

    def dead_lettered(self, stream: str, group: str, events: Any) -> None:
        """Count dead letters."""
        self.dead += len(events)

    def claimed(self, stream: str, group: str, consumer: str, count: int) -> None:
        """Count claims."""
        self.claims += count


@contextmanager
def _server(target: Target) -> Iterator[Config]:
    """The config: the one given, else one on a server started for the demo."""
    if target.config_file or target.redis_url:
        config = target.config(STREAM)
        origin = f"--config {target.config_file}" if target.config_file else "--redis/REDIS_URL"
        out.print(
            f"[bold]fluxabee demo[/bold]: using stream {STREAM} on "
            + escape(f"{mask(config.pool_for_stream(STREAM).url)} ({origin})"),
        )
        yield config
        return
    with LocalServer() as local:
        found = local.binary
        out.print(
            f"[bold]fluxabee demo[/bold]: started {found.flavor}-server {found.version_string} "
            f"({found.origin}) on {local.url}"
        )
        yield Config.from_url(local.url, streams=[STREAM])
        out.print(f"stopped the server on {local.url}")


class _Demo:
    """One run of the demo against ``broker``."""

    def __init__(self, broker: AsyncEventBroker, events: int, counts: _Counts) -> None:
        self.broker = broker
        self.total = events
        self.counts = counts
        self.run_id = secrets.token_hex(4)
        self.handled: dict[str, int] = {}
        self.fixed = False

    def _order(self, number: int) -> dict[str, Any]:
        return {
            "order": number,
            "customer": _CUSTOMERS[number % len(_CUSTOMERS)],
            "amount": round(9.5 + number * 1.25, 2),
        }

    async def publish(self) -> None:
        with progress() as bar:
            task = bar.add_task(f"publishing {self.total} orders", total=self.total)
            for start in range(1, self.total + 1, 20):
                for number in range(start, min(start + 20, self.total + 1)):
                    self.broker.publish(STREAM, self._order(number), source="shop", run=self.run_id)
                await self.broker.flush()
                bar.update(task, completed=min(start + 19, self.total))
        out.print(f"published {self.total} orders to {STREAM} (order {POISON} is poison)")

    async def crash(self) -> str:
        worker = self.broker.consumer_many(STREAM)

        async def dies(events: list[AsyncEvent]) -> None:
            raise RuntimeError("the worker crashed")

        with suppress(RuntimeError):
            await worker.consume(CRASHED, 1.0, dies)
        await worker.aclose()  # no cleanup: it died holding them
        out.print(f"worker {worker.name} took {CRASHED} orders and died without acking them")
        return worker.name

    def handler(self, name: str) -> Any:
        async def handle(events: list[AsyncEvent]) -> None:
            for event in events:
                if event.body.get("order") == POISON and not self.fixed:
                    raise ValueError(f"cannot ship order {POISON}: the address is missing")
            for event in events:
                if event.meta.get("run") == self.run_id:
                    self.handled[name] = self.handled.get(name, 0) + 1
            await asyncio.sleep(0)

        return handle

    async def work(self, workers: list[AsyncConsumer]) -> None:
        handlers = [self.handler(w.name) for w in workers]
        expected = self.total - CRASHED - 1
        with progress() as bar:
            task = bar.add_task("two workers consuming", total=expected)
            runs = [
                asyncio.ensure_future(w.run(20, 0.2, h))
                for w, h in zip(workers, handlers, strict=True)
            ]
            deadline = time.monotonic() + 60
            while sum(self.handled.values()) < expected or self.counts.dead < 1:
                if time.monotonic() > deadline or any(r.done() for r in runs):
                    break
                bar.update(task, completed=sum(self.handled.values()))
                await asyncio.sleep(0.05)
            bar.update(task, completed=sum(self.handled.values()))
            for worker in workers:
                worker.stop()
            await asyncio.gather(*runs)
        for number, worker in enumerate(workers, 1):
            out.print(f"worker {number} ({worker.name}) handled {self.handled.get(worker.name, 0)}")

    async def autoclaim(self, worker: AsyncConsumer) -> None:
        deadline = time.monotonic() + 10
        while len(await self.broker.pending_entries(STREAM, min_idle=0.5)) < CRASHED:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        claimed = await worker.autoclaim(100, 0.5, self.handler(worker.name))
        out.print(f"worker 1 autoclaimed {claimed} orders the dead worker left pending")

    async def dead_letters(self, worker: AsyncConsumer) -> None:
        for letter in await self.broker.dead_letters(STREAM):
            event: Event[Any] = letter.event
            out.print(
                f"dead letter of {event.id} after {letter.deliveries} deliveries: "
                f"{letter.error}; body {body_text(event, 60)}",
                markup=False,
            )
        self.fixed = True
        replayed = await self.broker.replay_dead_letters(STREAM)
        handled = await worker.consume(10, 1.0, self.handler(worker.name))
        out.print(f"fixed the handler, replayed {replayed} dead letter: worker 2 handled {handled}")


async def _run(config: Config, events: int) -> None:
    counts = _Counts()
    async with AsyncEngine(config, observers=[counts]) as engine:
        broker = engine.new_context().event_broker()
        demo = _Demo(broker, events, counts)
        await demo.publish()
        crashed = await demo.crash()
        policy = RetryPolicy(max_deliveries=3, backoff=0.05, max_backoff=0.2)
        async with broker.consumer_many(STREAM, retry_policy=policy) as first, \
                broker.consumer_many(STREAM, retry_policy=policy) as second:  # fmt: skip
            await demo.work([first, second])
            await demo.autoclaim(first)
            await demo.dead_letters(second)
            out.print()
            out.print(*stats_tables(await broker.streams_statistics(STREAM)))
        pruned = await broker.prune_consumers(STREAM, idle=0)
        out.print()
        gone = "removed" if crashed in pruned else "did not remove"
        out.print(f"the workers left the group; prune_consumers {gone} the dead worker's name")
        out.print(
            f"observer saw {counts.dead} dead letter and {counts.claims} claimed orders; "
            f"{sum(demo.handled.values())} of {events} orders handled"
        )


@cli.command()
@click.option("--events", default=200, show_default=True, type=click.IntRange(CRASHED + 10))
@target_options
def demo(target: Target, events: int) -> int:
    """Publish and consume orders on a throwaway server: workers, retries, dead letters.

    With no --config, FLUXABEE_CONFIG, --redis or REDIS_URL it starts its own server (no
    Redis needed) and stops it at the end; else it uses the stream fluxabee-demo there.
    """
    log = logging.getLogger("fluxabee")
    handler = _Log(logging.WARNING)
    log.addHandler(handler)
    log.propagate = False
    try:
        with _server(target) as config:
            asyncio.run(_run(config, events))
    finally:
        log.removeHandler(handler)
        log.propagate = True
    err.file.flush()
    return 0
