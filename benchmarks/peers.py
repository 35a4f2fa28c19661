"""Python peers on the same workload as the raw baselines (~100-byte dict bodies).

Every case takes ``url: str, n: int`` (plus keyword options), works on a fresh
stream, times only its hot part with ``time.perf_counter`` and returns events per
second. Each peer has a DEFAULT configuration (what its docs show first) and, where
the library offers one, a FASTEST configuration (see ``README_peers.md``).

Publishing times ``n`` publishes of ``make_body(size)``, serialised by the peer
itself. Consuming pre-fills ``n`` events in the peer's own wire format (not timed),
creates the group ``consumer_group`` at id 0, then times from starting the
subscriber / worker / read loop until the handler has seen ``n`` events.

Run ``python -m benchmarks.peers [n] [runs]`` from the repository root to print a
table against a throwaway ``redis-server``; ``measure`` turns a broken peer into an
error string, so one peer never kills the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgpack
import redis
import redis.asyncio as aredis
from faststream.redis import RedisBroker, StreamSub
from taskiq.receiver import Receiver
from taskiq.serializers import MSGPackSerializer
from taskiq_redis import RedisStreamBroker
from walrus import Database  # type: ignore[import-untyped]

from ._bodies import DEFAULT_SIZE, make_body
from ._report import Case, measure_all, print_table
from ._server import run_server
from .baselines import CONSUMER, DEFAULT_N, FIELD, GROUP, fresh_stream

T = TypeVar("T")

#: Batch size used by every "fastest" configuration (pipeline / read count).
BATCH = 1000
#: Concurrent ``kiq`` calls in flight for taskiq's fastest publish (its pool holds 50).
TASKIQ_WINDOW = 50


def case_timeout(n: int) -> float:
    """Upper bound for one case: generous for the slowest peer (~1k events/s)."""
    return 60.0 + n / 200.0


def _run(coro_fn: Callable[[], Awaitable[T]], timeout: float) -> T:
    """``asyncio.run`` a coroutine with a hard time limit."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(bounded())


async def _group_at_zero(url: str, stream: str) -> None:
    """Create ``consumer_group`` at id 0 (or move it there if a peer made it at ``$``)."""
    client = aredis.Redis.from_url(url)
    try:
        try:
            await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            await client.xgroup_setid(stream, GROUP, id="0")
    finally:
        await client.aclose()


async def _wait_seen(done: asyncio.Event, seen: Callable[[], int], n: int, timeout: float) -> None:
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:  # an alias of TimeoutError from Python 3.11 on
        msg = f"handler saw {seen()}/{n} events in {timeout:.0f}s"
        raise TimeoutError(msg) from None


# -- FastStream ---------------------------------------------------------------------

#: ``RedisBroker(logger=None)`` switches FastStream's logging off (its code handles
#: None, its type hints omit it).
_NO_LOGGER: Any = None

#: FastStream's default access logger; it writes to ``sys.stdout``, bound at connect.
_FASTSTREAM_ACCESS_LOGGER = "faststream.access.redis"


@contextlib.contextmanager
def _faststream_default_log_to_devnull() -> Iterator[None]:
    """Keep FastStream's default per-message access log, but send it to /dev/null.

    The default logger logs "Received"/"Processed" for every message at INFO through
    a ``StreamHandler(sys.stdout)`` created when the broker connects. Redirecting
    stdout while the broker lives keeps that cost in the figure without flooding the
    report; the handler bound to /dev/null is removed afterwards.
    """
    access = logging.getLogger(_FASTSTREAM_ACCESS_LOGGER)
    before = list(access.handlers)
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
        try:
            yield
        finally:
            access.handlers[:] = before


async def _faststream_prefill(url: str, stream: str, n: int, size: int) -> None:
    """``n`` events in FastStream's wire format, pipelined (not timed)."""
    broker = RedisBroker(url, logger=_NO_LOGGER)
    client = await broker.connect()
    try:
        i = 0
        while i < n:
            pipe = client.pipeline(transaction=False)
            for _ in range(min(BATCH, n - i)):
                await broker.publish(make_body(size, i), stream=stream, pipeline=pipe)
                i += 1
            await pipe.execute()
    finally:
        await broker.stop()


async def faststream_publish_coro(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """DEFAULT: ``await broker.publish(body, stream=...)`` one at a time.

    FASTEST: the same call with ``pipeline=`` a non-transactional redis pipeline,
    executed every ``BATCH`` events (``publish_batch`` only targets Redis *lists*).
    """
    stream = fresh_stream("faststream-pub")
    body = make_body(size)
    broker = RedisBroker(url, logger=_NO_LOGGER) if fastest else RedisBroker(url)
    client = await broker.connect()
    try:
        start = time.perf_counter()
        if fastest:
            done = 0
            while done < n:
                pipe = client.pipeline(transaction=False)
                for _ in range(min(BATCH, n - done)):
                    await broker.publish(body, stream=stream, pipeline=pipe)
                    done += 1
                await pipe.execute()
        else:
            for _ in range(n):
                await broker.publish(body, stream=stream)
        elapsed = time.perf_counter() - start
        await client.delete(stream)
    finally:
        await broker.stop()
    return n / elapsed


async def faststream_consume_coro(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """DEFAULT: ``StreamSub(stream, group=..., consumer=...)``, one message per call,
    default logger, FastDepends validation of ``body: dict[str, Any]``.

    FASTEST: ``StreamSub(..., batch=True, max_records=BATCH)`` (one XREADGROUP and one
    multi-ID XACK per batch), ``logger=None`` and ``apply_types=False``.

    FastStream acks (XACK) after the handler returns; it never XDELs.
    """
    stream = fresh_stream("faststream-con")
    await _faststream_prefill(url, stream, n, size)
    await _group_at_zero(url, stream)

    seen = 0
    done = asyncio.Event()
    if fastest:
        broker = RedisBroker(url, logger=_NO_LOGGER, apply_types=False)

        @broker.subscriber(
            stream=StreamSub(stream, group=GROUP, consumer=CONSUMER, batch=True, max_records=BATCH)
        )
        async def on_batch(bodies: list[dict[str, Any]]) -> None:
            nonlocal seen
            seen += len(bodies)
            if seen >= n:
                done.set()

    else:
        broker = RedisBroker(url)

        @broker.subscriber(stream=StreamSub(stream, group=GROUP, consumer=CONSUMER))
        async def on_event(body: dict[str, Any]) -> None:
            nonlocal seen
            seen += 1
            if seen >= n:
                done.set()

    try:
        start = time.perf_counter()
        await broker.start()
        await _wait_seen(done, lambda: seen, n, case_timeout(n))
        elapsed = time.perf_counter() - start
    finally:
        await broker.stop()
    return n / elapsed


def faststream_publish(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """Sync wrapper around :func:`faststream_publish_coro`."""
    with _faststream_default_log_to_devnull():
        return _run(
            lambda: faststream_publish_coro(url, n, fastest=fastest, size=size), case_timeout(n)
        )


def faststream_consume(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """Sync wrapper around :func:`faststream_consume_coro`."""
    with _faststream_default_log_to_devnull():
        return _run(
            lambda: faststream_consume_coro(url, n, fastest=fastest, size=size), case_timeout(n)
        )


# -- taskiq-redis -------------------------------------------------------------------


class _DropUnclosedPipeline(logging.Filter):
    """taskiq-redis's ``listen()`` leaves a redis Pipeline unclosed after each read;
    asyncio reports it at GC time as an ERROR. Known noise: keep it out of the table."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unclosed Pipeline client" not in record.getMessage()


_ASYNCIO_FILTER = _DropUnclosedPipeline()


def _quiet_taskiq_noise() -> None:
    asyncio_logger = logging.getLogger("asyncio")
    if _ASYNCIO_FILTER not in asyncio_logger.filters:
        asyncio_logger.addFilter(_ASYNCIO_FILTER)


def _taskiq_broker(url: str, stream: str, *, fastest: bool, **kwargs: Any) -> RedisStreamBroker:
    broker = RedisStreamBroker(url, queue_name=stream, consumer_group_name=GROUP, **kwargs)
    if fastest:
        broker = broker.with_serializer(MSGPackSerializer())
    return broker


async def _taskiq_kiq_all(
    task: Any, bodies: Callable[[int], dict[str, Any]], n: int, window: int
) -> None:
    """``n`` kiq calls, ``window`` in flight at once (``window=1``: strictly one by one)."""
    if window <= 1:
        for i in range(n):
            await task.kiq(bodies(i))
        return
    for first in range(0, n, window):
        await asyncio.gather(*(task.kiq(bodies(i)) for i in range(first, min(n, first + window))))


async def taskiq_publish_coro(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """DEFAULT: ``await task.kiq(body)`` n times (JSON serializer).

    FASTEST: ``MSGPackSerializer`` and ``TASKIQ_WINDOW`` concurrent ``kiq`` calls
    (taskiq has no batch kick; each kick is one XADD on a pooled connection).
    """
    _quiet_taskiq_noise()
    stream = fresh_stream("taskiq-pub")
    broker = _taskiq_broker(url, stream, fastest=fastest)

    async def bench_event(body: dict[str, Any]) -> None:
        return None

    task = broker.register_task(bench_event, task_name="bench_event")
    body = make_body(size)
    await broker.startup()
    try:
        start = time.perf_counter()
        await _taskiq_kiq_all(task, lambda _: body, n, TASKIQ_WINDOW if fastest else 1)
        elapsed = time.perf_counter() - start
        cleanup = aredis.Redis.from_url(url)
        await cleanup.delete(stream)
        await cleanup.aclose()
    finally:
        await broker.shutdown()
    return n / elapsed


async def taskiq_consume_coro(
    url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE
) -> float:
    """An in-process worker: ``taskiq.receiver.Receiver(...).listen(finish_event)``,
    exactly what ``taskiq worker`` runs, without spawning the CLI.

    DEFAULT: the CLI's defaults (``max_async_tasks=100``, ``max_prefetch=0``,
    ``validate_params=True``, ack when saved, broker ``xread_count=100``).
    FASTEST: ``xread_count=BATCH``, ``max_async_tasks=BATCH``,
    ``max_prefetch=BATCH``, ``validate_params=False``, MSGPackSerializer.

    taskiq-redis acks each message with its own XACK and never XDELs.
    """
    _quiet_taskiq_noise()
    stream = fresh_stream("taskiq-con")

    producer = _taskiq_broker(url, stream, fastest=fastest)

    async def bench_event_producer(body: dict[str, Any]) -> None:
        return None

    produce = producer.register_task(bench_event_producer, task_name="bench_event")
    await producer.startup()
    try:
        await _taskiq_kiq_all(produce, lambda i: make_body(size, i), n, TASKIQ_WINDOW)
    finally:
        await producer.shutdown()
    await _group_at_zero(url, stream)

    worker = _taskiq_broker(
        url, stream, fastest=fastest, **({"xread_count": BATCH} if fastest else {})
    )
    worker.is_worker_process = True
    seen = 0
    done = asyncio.Event()

    async def bench_event(body: dict[str, Any]) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            done.set()

    worker.register_task(bench_event, task_name="bench_event")
    finish = asyncio.Event()
    # max_tasks_to_execute=n (the CLI's --max-tasks-per-child) makes the prefetcher
    # stop by itself after the n-th delivery, so the run never has to cancel an
    # in-flight blocking XREADGROUP: redis-py can swallow that cancellation
    # (redis/redis-py#2028), which left listen() looping forever on an empty stream.
    common: dict[str, Any] = {"max_tasks_to_execute": n, "wait_tasks_timeout": 10.0}
    with ThreadPoolExecutor(max_workers=4) as executor:
        if fastest:
            receiver = Receiver(
                worker,
                executor=executor,
                validate_params=False,
                max_async_tasks=BATCH,
                max_prefetch=BATCH,
                **common,
            )
        else:
            receiver = Receiver(
                worker,
                executor=executor,
                validate_params=True,
                max_async_tasks=100,
                max_prefetch=0,
                **common,
            )
        start = time.perf_counter()
        listener = asyncio.create_task(receiver.listen(finish))
        try:
            await _wait_seen(done, lambda: seen, n, case_timeout(n))
            elapsed = time.perf_counter() - start
        finally:
            finish.set()
            stopped, _ = await asyncio.wait({listener}, timeout=15.0)
            if not stopped:
                listener.cancel()
                await asyncio.wait({listener}, timeout=5.0)
            await worker.shutdown()
        if not stopped:
            msg = "taskiq Receiver did not stop within 15s after the run"
            raise RuntimeError(msg)
        listener.result()  # surface a listener error, if any
    return n / elapsed


def taskiq_publish(url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE) -> float:
    """Sync wrapper around :func:`taskiq_publish_coro`."""
    return _run(lambda: taskiq_publish_coro(url, n, fastest=fastest, size=size), case_timeout(n))


def taskiq_consume(url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE) -> float:
    """Sync wrapper around :func:`taskiq_consume_coro`."""
    return _run(lambda: taskiq_consume_coro(url, n, fastest=fastest, size=size), case_timeout(n))


# -- walrus -------------------------------------------------------------------------


def _walrus_db(url: str) -> Database:
    db: Database = Database.from_url(url, socket_timeout=30.0)
    return db


def walrus_publish(url: str, n: int, *, size: int = DEFAULT_SIZE) -> float:
    """``cg.streams[key].add({"s": msgpack(body)})``: one XADD round trip per event.

    That is walrus's API: it has no batched add, so there is no separate FASTEST
    publish (a pipeline would be plain redis-py, i.e. the raw baseline).
    """
    stream = fresh_stream("walrus-pub")
    db = _walrus_db(url)
    try:
        cg = db.consumer_group(GROUP, [stream], consumer=CONSUMER)
        cg.create()
        target = cg.streams[stream]
        body = make_body(size)
        packb = msgpack.packb
        deadline = time.perf_counter() + case_timeout(n)
        start = time.perf_counter()
        for i in range(n):
            target.add({FIELD: packb(body)})
            if i % BATCH == 0 and time.perf_counter() > deadline:
                msg = f"walrus_publish: timed out ({i}/{n})"
                raise TimeoutError(msg)
        elapsed = time.perf_counter() - start
        db.delete(stream)
    finally:
        db.close()
    return n / elapsed


def walrus_consume(url: str, n: int, *, fastest: bool = False, size: int = DEFAULT_SIZE) -> float:
    """``cg.read(count=BATCH)``, msgpack-decode each ``s``, then ack.

    DEFAULT: ``cg.<stream>.ack(msg_id)`` per message, as walrus examples do.
    FASTEST: one multi-ID ``ack(*ids)`` per batch.

    Walrus never XDELs acked entries (it has no ack-and-delete), so the stream keeps
    every event: this case does less server work than the raw baseline, which XDELs.
    """
    stream = fresh_stream("walrus-con")
    db = _walrus_db(url)
    try:
        pipe = db.pipeline(transaction=False)  # pre-fill, not timed
        for i in range(n):
            pipe.xadd(stream, {FIELD: msgpack.packb(make_body(size, i))})
            if (i + 1) % BATCH == 0:
                pipe.execute()
        pipe.execute()
        cg = db.consumer_group(GROUP, {stream: "0"}, consumer=CONSUMER)
        cg.create()
        acker = cg.streams[stream]
        unpackb = msgpack.unpackb
        consumed = 0
        deadline = time.perf_counter() + case_timeout(n)
        start = time.perf_counter()
        while consumed < n:
            reply = cg.read(count=BATCH, block=1000)
            if not reply:
                if time.perf_counter() > deadline:
                    msg = f"walrus_consume: timed out ({consumed}/{n})"
                    raise TimeoutError(msg)
                continue
            for _key, messages in reply:
                ids = []
                for msg_id, fields in messages:
                    unpackb(fields[FIELD])
                    if fastest:
                        ids.append(msg_id)
                    else:
                        acker.ack(msg_id)
                if ids:
                    acker.ack(*ids)
                consumed += len(messages)
        elapsed = time.perf_counter() - start
        db.delete(stream)
    finally:
        db.close()
    return consumed / elapsed


# -- runner -------------------------------------------------------------------------


def cases(size: int = DEFAULT_SIZE) -> dict[str, Case]:
    """Name -> ``f(url, n) -> events/s`` for every peer configuration."""
    fs_pub, fs_con = faststream_publish, faststream_consume
    return {
        "faststream_publish_default": lambda u, n: fs_pub(u, n, size=size),
        "faststream_publish_fastest": lambda u, n: fs_pub(u, n, fastest=True, size=size),
        "faststream_consume_default": lambda u, n: fs_con(u, n, size=size),
        "faststream_consume_fastest": lambda u, n: fs_con(u, n, fastest=True, size=size),
        "taskiq_publish_default": lambda u, n: taskiq_publish(u, n, size=size),
        "taskiq_publish_fastest": lambda u, n: taskiq_publish(u, n, fastest=True, size=size),
        "taskiq_consume_default": lambda u, n: taskiq_consume(u, n, size=size),
        "taskiq_consume_fastest": lambda u, n: taskiq_consume(u, n, fastest=True, size=size),
        "walrus_publish": lambda u, n: walrus_publish(u, n, size=size),
        "walrus_consume_default": lambda u, n: walrus_consume(u, n, size=size),
        "walrus_consume_fastest": lambda u, n: walrus_consume(u, n, fastest=True, size=size),
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else DEFAULT_N
    runs = int(argv[1]) if len(argv) > 1 else 3
    with run_server() as url:
        print_table(measure_all(cases(), url, n, runs), n, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
