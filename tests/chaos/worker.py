"""One chaos worker process: a publisher or a consumer, started (and SIGKILLed) by run_chaos.

``python -m tests.chaos.worker publish|many|single --url ... --stream ... --out FILE``

Each worker records what it did in its own append-only file, so the record survives a
SIGKILL of the worker and a restart of the server:

- a publisher writes ``<n> <entry id>`` for every event whose ID ``flush`` returned
  (confirmed), after ``flush`` returned; the body is ``{"p": name, "n": n}``, ``n``
  counting from 0 in publish order;
- a consumer writes ``<time_ns> <entry id> <p> <n>`` for every event it is handed, and
  flushes + fsyncs the file *before* its handler returns: the ack comes after the handler
  returns, so an event is acked only once its record is durable (a record may exist for
  an event delivered again: a duplicate, never a loss).

A consumer stops on SIGTERM (``consumer.stop()`` from the signal handler), leaves the
group with ``cleanup`` and exits 0. ``--api async`` runs the same worker on ``AsyncEngine``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from fluxabee import (
    AsyncEngine,
    BrokerConnectionError,
    Config,
    Engine,
    PartialFlushError,
    RedisPool,
    RetryPolicy,
)

#: Deliveries allowed before the dead letters: chaos alone must never dead-letter.
MAX_DELIVERIES = 1000
#: Exit code of a publisher that could not flush everything before its deadline.
EXIT_UNFLUSHED = 3


class InjectedFailure(Exception):
    """A handler failure injected on purpose (``--fail-rate``)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.worker")
    parser.add_argument("role", choices=["publish", "many", "single"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--name", required=True, help="publisher / worker name (p0, c3, ...)")
    parser.add_argument("--out", required=True, help="the append-only record file")
    parser.add_argument("--api", choices=["sync", "async"], default="sync")
    parser.add_argument("--seed", type=int, default=0)
    # publisher
    parser.add_argument("--until", type=float, default=0.0, help="wall time to stop publishing")
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--max-batch", type=int, default=20)
    parser.add_argument("--final-flush-timeout", type=float, default=30.0)
    # consumers
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--min-idle", type=float, default=2.0)
    parser.add_argument("--lock-ttl", type=float, default=1.0)
    parser.add_argument("--work-ms", type=float, default=3.0, help="max simulated work per batch")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="injected handler failures")
    parser.add_argument(
        "--fail-after-record",
        action="store_true",
        help="fail after recording (a duplicate) instead of before (no record)",
    )
    return parser.parse_args(argv)


def make_config(url: str, stream: str) -> Config:
    return Config(redis_pools=[RedisPool(code="default", uri=url, streams=[stream])])


def log(args: argparse.Namespace, message: str) -> None:
    print(f"[{args.name} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- publisher -------------------------------------------------------------------------


class Publisher:
    """Publishes ``{"p": name, "n": n}`` bodies and records the confirmed IDs."""

    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.rng = random.Random(args.seed)
        self.next_n = 0
        #: The ``n`` of every event in the broker's buffer, in buffer order.
        self.buffered: list[int] = []
        self.confirmed = 0
        self.failures = 0

    def publish_batch(self, broker: Any) -> int:
        size = self.rng.randint(1, self.args.max_batch)
        for _ in range(size):
            broker.publish(self.args.stream, {"p": self.args.name, "n": self.next_n})
            self.buffered.append(self.next_n)
            self.next_n += 1
        return size

    def record(self, ids: Sequence[str | None]) -> None:
        """Record the confirmed part of a flush; keep the rest (still buffered) in order."""
        if len(ids) != len(self.buffered):
            raise AssertionError(f"flush returned {len(ids)} slots for {len(self.buffered)}")
        lines = [
            f"{n} {entry_id}\n" for n, entry_id in zip(self.buffered, ids, strict=True) if entry_id
        ]
        self.buffered = [
            n for n, entry_id in zip(self.buffered, ids, strict=True) if entry_id is None
        ]
        if lines:
            self.out.write("".join(lines))
            self.out.flush()
            os.fsync(self.out.fileno())
            self.confirmed += len(lines)

    def failed(self, exc: BrokerConnectionError) -> float:
        """Handle a failed flush; return how long to wait before trying again."""
        self.failures += 1
        if isinstance(exc, PartialFlushError):
            self.record(exc.ids)
        return self.rng.uniform(0.05, 0.2)

    def pause(self, size: int) -> float:
        return size / self.args.rate * self.rng.uniform(0.5, 1.5)


def run_publisher_sync(args: argparse.Namespace, out: IO[str]) -> int:
    pub = Publisher(args, out)
    with Engine(make_config(args.url, args.stream)) as engine:
        broker = engine.new_context().event_broker()
        while time.time() < args.until:
            size = pub.publish_batch(broker)
            try:
                pub.record(broker.flush())
            except BrokerConnectionError as exc:
                time.sleep(pub.failed(exc))
                continue
            time.sleep(pub.pause(size))
        deadline = time.monotonic() + args.final_flush_timeout
        while broker.buffered and time.monotonic() < deadline:
            try:
                pub.record(broker.flush())
            except BrokerConnectionError as exc:
                time.sleep(pub.failed(exc))
        return finish_publisher(args, pub, broker.buffered)


async def run_publisher_async(args: argparse.Namespace, out: IO[str]) -> int:
    pub = Publisher(args, out)
    async with AsyncEngine(make_config(args.url, args.stream)) as engine:
        broker = engine.new_context().event_broker()
        while time.time() < args.until:
            size = pub.publish_batch(broker)
            try:
                pub.record(await broker.flush())
            except BrokerConnectionError as exc:
                await asyncio.sleep(pub.failed(exc))
                continue
            await asyncio.sleep(pub.pause(size))
        deadline = time.monotonic() + args.final_flush_timeout
        while broker.buffered and time.monotonic() < deadline:
            try:
                pub.record(await broker.flush())
            except BrokerConnectionError as exc:
                await asyncio.sleep(pub.failed(exc))
        return finish_publisher(args, pub, broker.buffered)


def finish_publisher(args: argparse.Namespace, pub: Publisher, left: int) -> int:
    log(
        args,
        f"publisher done: published={pub.next_n} confirmed={pub.confirmed} "
        f"failed_flushes={pub.failures} unflushed={left}",
    )
    return EXIT_UNFLUSHED if left else 0


# -- consumers -------------------------------------------------------------------------


class Recorder:
    """The handler: record every event durably, then (maybe) fail on purpose."""

    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.rng = random.Random(args.seed)
        self.batches = 0
        self.events = 0
        self.injected = 0

    def _maybe_fail(self) -> None:
        if self.args.fail_rate and self.rng.random() < self.args.fail_rate:
            self.injected += 1
            raise InjectedFailure("chaos: injected handler failure")

    def __call__(self, events: list[Any]) -> None:
        if not self.args.fail_after_record:
            self._maybe_fail()
        lines = []
        for event in events:
            body = event.body
            lines.append(f"{time.time_ns()} {event.id} {body['p']} {body['n']}\n")
        self.out.write("".join(lines))
        self.out.flush()
        os.fsync(self.out.fileno())
        self.batches += 1
        self.events += len(events)
        if self.args.work_ms:
            time.sleep(self.rng.uniform(0, self.args.work_ms) / 1000)
        if self.args.fail_after_record:
            self._maybe_fail()


def retry_policy() -> RetryPolicy:
    return RetryPolicy(max_deliveries=MAX_DELIVERIES, backoff=0.05, max_backoff=0.5)


def make_consumer(args: argparse.Namespace, broker: Any) -> Any:
    if args.role == "many":
        return broker.consumer_many(
            args.stream, retry_policy=retry_policy(), min_idle=args.min_idle
        )
    return broker.consumer_single(args.stream, retry_policy=retry_policy(), lock_ttl=args.lock_ttl)


def run_consumer_sync(args: argparse.Namespace, out: IO[str]) -> int:
    recorder = Recorder(args, out)
    with Engine(make_config(args.url, args.stream)) as engine:
        broker = engine.new_context().event_broker()
        with make_consumer(args, broker) as consumer:
            signal.signal(signal.SIGTERM, lambda _signo, _frame: consumer.stop())
            log(args, f"consumer {consumer.name} (sync, pid {os.getpid()}) running")
            handled = consumer.run(args.count, 1.0, recorder)
    return finish_consumer(args, recorder, handled)


async def run_consumer_async(args: argparse.Namespace, out: IO[str]) -> int:
    recorder = Recorder(args, out)
    async with AsyncEngine(make_config(args.url, args.stream)) as engine:
        broker = engine.new_context().event_broker()
        async with make_consumer(args, broker) as consumer:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, consumer.stop)
            log(args, f"consumer {consumer.name} (async, pid {os.getpid()}) running")
            handled = await consumer.run(args.count, 1.0, recorder)
    return finish_consumer(args, recorder, handled)


def finish_consumer(args: argparse.Namespace, recorder: Recorder, handled: int) -> int:
    log(
        args,
        f"consumer stopped: run()={handled} recorded={recorder.events} "
        f"batches={recorder.batches} injected_failures={recorder.injected}",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Line-buffered text, appended: every batch is flushed and fsynced explicitly anyway.
    with open(args.out, "a", buffering=1, encoding="ascii") as out:
        if args.role == "publish":
            if args.api == "async":
                return asyncio.run(run_publisher_async(args, out))
            return run_publisher_sync(args, out)
        if args.api == "async":
            return asyncio.run(run_consumer_async(args, out))
        return run_consumer_sync(args, out)


if __name__ == "__main__":
    sys.exit(main())
