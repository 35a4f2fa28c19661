"""``fluxabee worker module:handler --stream S``: run a handler with ``consumer.run``.

The handler is a function (plain or ``async def``) taking a list of events, imported from
a module on ``sys.path`` (the current directory first, as uvicorn and arq do). SIGTERM and
SIGINT stop every consumer after the batch in hand, which is finished and acked; the
command then exits 0. A second one stops at once (exit code 130): the events in hand stay
pending, for another consumer to claim. ``--metrics-port`` serves Prometheus metrics,
``--trace`` records OpenTelemetry spans through the globally configured tracer provider.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from .. import _validate as validate
from .._async.engine import AsyncEngine
from .._constants import SINGLE_CONSUMER_NAME
from .._observe import Observer
from .._policy import RetryPolicy
from .._sync.consumer import Consumer
from .._sync.engine import Engine
from ..config import Config
from ..errors import InvalidArgumentError
from ._app import DURATION, Target, cli, err, target_options
from ._format import age, plural

logger = logging.getLogger("fluxabee")
#: The choices of ``--log-level``.
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def load_handler(path: str) -> Callable[..., Any]:
    """``package.module:function`` -> the function (the current directory is importable)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected MODULE:HANDLER, got {path!r}", param_hint="HANDLER")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        message = f"cannot import {module_name!r}: {exc}"
        raise click.BadParameter(message, param_hint="HANDLER") from None
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise click.BadParameter(f"{module_name!r} has no callable {attr!r}", param_hint="HANDLER")
    return found  # type: ignore[no-any-return]


def _observers(
    config: Config, streams: list[str], port: int | None, address: str, trace: bool
) -> list[Observer]:
    observers: list[Observer] = []
    if port is not None:
        try:
            import prometheus_client  # noqa: PLC0415 - an optional extra

            from .._prometheus import PrometheusObserver, StatisticsCollector  # noqa: PLC0415
        except ImportError:
            raise click.UsageError(
                "--metrics-port needs prometheus_client: pip install 'fluxabee[prometheus]'"
            ) from None
        observers.append(PrometheusObserver())
        StatisticsCollector(config, streams=streams)
        prometheus_client.start_http_server(port, addr=address)
        err.print(f"fluxabee worker: metrics on http://{address}:{port}/metrics", markup=False)
    if trace:
        try:
            from .._otel import TracingObserver  # noqa: PLC0415 - an optional extra
        except ImportError:
            raise click.UsageError(
                "--trace needs opentelemetry-api: pip install 'fluxabee[otel]'"
            ) from None
        observers.append(TracingObserver())
    return observers


def _make(broker: Any, stream: str, options: dict[str, Any]) -> Any:
    group, policy = options["group"], options["policy"]
    if options["single"]:
        return broker.consumer_single(stream, group=group, retry_policy=policy)
    return broker.consumer_many(
        stream, group=group, retry_policy=policy, min_idle=options["min_idle"], name=options["name"]
    )


#: Exit code of a worker stopped at once by a second Ctrl-C (128 + SIGINT, as shells say).
FORCED_EXIT = 130


class _Stopper:
    """Ctrl-C and SIGTERM, as uvicorn and Celery take them: the first says what happens and
    stops the consumers after the batch in hand; the second stops at once (``force``)."""

    def __init__(self, stop: Callable[[], object], force: Callable[[], object]) -> None:
        self._stop = stop
        self._force = force
        self.signals = 0

    def __call__(self, signum: int = signal.SIGINT, frame: FrameType | None = None) -> None:
        """Handle one stop signal."""
        self.signals += 1
        if self.signals == 1:
            err.print(
                "fluxabee worker: stopping after the batch in hand is handled and acked "
                "(Ctrl-C again stops at once, leaving it pending)",
                markup=False,
            )
            self._stop()
        elif self.signals == 2:
            err.print(
                "fluxabee worker: stopping at once; the events in hand stay pending",
                markup=False,
            )
            self._force()


class _Forced(Exception):
    """The asyncio worker was stopped at once by a second signal."""


def _exit_now() -> None:
    """Stop the process at once: a sync handler in a thread cannot be interrupted."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(FORCED_EXIT)


def _serve(consumer: Any, handler: Any, options: dict[str, Any]) -> Any:
    """``run`` with a batch handler, or ``process`` (one event per call) with
    ``--concurrency`` or ``--key``; an awaitable under asyncio."""
    if options["concurrency"] is None and options["key"] is None:
        return consumer.run(options["count"], options["block"], handler)
    return consumer.process(
        handler, concurrency=options["concurrency"], key=options["key"], block=options["block"]
    )


def _run_sync(engine: Engine, handler: Any, streams: list[str], options: dict[str, Any]) -> int:
    broker = engine.new_context().event_broker()
    consumers: list[Consumer] = [_make(broker, s, options) for s in streams]
    totals = [0] * len(consumers)
    failures: list[BaseException] = []

    def stop_all() -> None:
        for consumer in consumers:
            consumer.stop()

    stopper = _Stopper(stop_all, _exit_now)

    def stop(signum: int, frame: FrameType | None) -> None:
        if signum:  # a signal, not a failed consumer
            stopper(signum, frame)
        else:
            stop_all()

    def work(index: int) -> None:
        try:
            with consumers[index] as consumer:
                _started(consumer)
                totals[index] = _serve(consumer, handler, options)
        except BaseException as exc:
            failures.append(exc)
            stop(0, None)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        threads = [
            threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(consumers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    finally:
        for sig, handler_before in previous.items():
            signal.signal(sig, handler_before)
    if failures:
        raise failures[0]
    return sum(totals)


async def _run_async(
    config: Config, observers: list[Observer], handler: Any, streams: list[str],
    options: dict[str, Any],
) -> int:  # fmt: skip
    async with AsyncEngine(config, observers=observers) as engine:
        broker = engine.new_context().event_broker()
        consumers = [_make(broker, s, options) for s in streams]
        tasks: list[asyncio.Future[int]] = []

        def force() -> None:  # cancelled, run() leaves the events in hand pending
            for task in tasks:
                task.cancel()

        stopper = _Stopper(lambda: [c.stop() for c in consumers], force)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopper, sig)

        async def work(consumer: Any) -> int:
            async with consumer:
                _started(consumer)
                result: int = await _serve(consumer, handler, options)
                return result

        tasks += [asyncio.ensure_future(work(c)) for c in consumers]
        try:
            return sum(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            if stopper.signals < 2:
                raise
            raise _Forced from None  # the engine closes on the way out
        except BaseException:
            for consumer in consumers:
                consumer.stop()
            raise


def _started(consumer: Any) -> None:
    err.print(
        f"fluxabee worker: consuming {consumer.stream} as {consumer.name} "
        "(Ctrl-C or SIGTERM stops after the batch in hand; twice, at once)",
        markup=False,
    )


@cli.command()
@click.argument("handler_path", metavar="MODULE:HANDLER")
@click.option("--single", is_flag=True, help="consumer_single: one process, in order.")
@click.option("--group", metavar="NAME", help="The consumer group (default: each stream's first).")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1),
              help="Events per batch.")  # fmt: skip
@click.option("--block", type=DURATION, default=5.0, show_default=True,
              help="How long one read waits.")  # fmt: skip
@click.option("--min-idle", type=DURATION, default=60.0, show_default=True,
              help="Claim events pending this long on other consumers.")  # fmt: skip
@click.option("--max-deliveries", default=10, show_default=True, type=click.IntRange(1),
              help="Deliveries before an event goes to the dead letters.")  # fmt: skip
@click.option("--name", metavar="NAME",
              help="A stable consumer name (say the pod or host name): a restart re-reads "
                   "what it left pending at once. Default: a generated one.")  # fmt: skip
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    help="consumer.process: events in the handler at once (it takes one event).",
)
@click.option(
    "--key", metavar="FIELD", help="consumer.process: events with the same FIELD meta run in order."
)
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus metrics.")
@click.option("--metrics-address", default="0.0.0.0", show_default=True,
              help="Address the metrics server listens on: every interface by default, as "
                   "Prometheus exporters do (127.0.0.1 keeps it local).")  # fmt: skip
@click.option("--trace", is_flag=True, help="OpenTelemetry spans (global tracer provider).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(LEVELS, case_sensitive=False))  # fmt: skip
@target_options
def worker(
    *,
    target: Target,
    handler_path: str,
    single: bool,
    group: str | None,
    count: int,
    block: float,
    min_idle: float,
    max_deliveries: int,
    name: str | None,
    concurrency: int | None,
    key: str | None,
    metrics_port: int | None,
    metrics_address: str,
    trace: bool,
    log_level: str,
) -> int:
    """Run MODULE:HANDLER on the events of every --stream until SIGTERM or Ctrl-C.

    The handler takes a list of events (plain or async def). Failed events are retried
    and dead-lettered by the retry policy; a stop finishes and acks the batch in hand, and
    a second Ctrl-C stops at once (exit code 130), leaving it pending.
    With --concurrency or --key it takes one event (consumer.process): up to N in flight,
    in order per --key; a stop lets those in flight finish and hands back the rest.
    """
    handler = load_handler(handler_path)
    if not target.streams:
        raise click.UsageError("name the streams to consume with --stream")
    if name is not None and single:
        raise click.UsageError("--name is for consumer_many workers: --single is always "
                               "named consumer-single")  # fmt: skip
    if name is not None:
        try:
            validate.consumer_name(name, reserved=SINGLE_CONSUMER_NAME)
        except InvalidArgumentError as exc:
            raise click.BadParameter(str(exc), param_hint="--name") from None
    config = target.config()
    streams = list(target.streams)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    observers = _observers(config, streams, metrics_port, metrics_address, trace)
    options = {
        "single": single,
        "group": group,
        "count": count,
        "block": block,
        "min_idle": min_idle,
        "name": name,
        "policy": RetryPolicy(max_deliveries=max_deliveries),
        "concurrency": concurrency,
        "key": key,
    }
    if block <= 0:
        raise InvalidArgumentError(f"--block must be above 0, got {age(block)}")
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with async __call__
    ):
        try:
            total = asyncio.run(_run_async(config, observers, handler, streams, options))
        except _Forced:
            return FORCED_EXIT
    else:
        with Engine(config, observers=observers) as engine:
            total = _run_sync(engine, handler, streams, options)
    err.print(f"fluxabee worker: stopped after {plural(total, 'event')} acked", markup=False)
    return 0
