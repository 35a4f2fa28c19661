"""Where ``process`` differs between asyncio and threads: running work, waiting for the first.

The asyncio shell of ``process`` (:mod:`fluxabee._async.process`) calls
:class:`AsyncWorkers`; ``scripts/unasync.py`` renames it :class:`SyncWorkers` in the
generated sync shell. Under asyncio each handler call is a task (a plain ``def`` handler
runs in a thread of the ``process`` loop's own pool of ``concurrency`` threads: the event
loop's default executor has only ``min(32, cpus + 4)``, which would cap such a window), and
so are the read and the ack; under threads each handler call is a job of a real
:class:`~concurrent.futures.ThreadPoolExecutor` of ``concurrency`` threads, and the read
and the ack run in threads of their own, so the loop can wait for whichever ends first.
Either pool is shut down when ``process`` ends: its idle threads are joined, handlers left
running past the shutdown timeout are not waited for. No event loop runs in a hidden
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import queue
import sys
import threading
from collections.abc import Callable, Collection, Coroutine, Generator
from concurrent import futures
from typing import Any, TypeVar

from ._validate import _is_async
from .errors import InvalidArgumentError

T = TypeVar("T")

#: The name prefix of the threads ``process`` runs handlers in.
THREADS = "fluxabee-handler"


class AsyncWorkers:
    """Tasks of one ``process`` loop under asyncio; finished ones are collected as they end
    (a done callback each), so waiting costs nothing per task still running."""

    def __init__(self, concurrency: int, handler: Callable[..., Any]) -> None:
        self._handler = handler
        self._is_async = _is_async(handler)
        self._finished: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        #: Threads for a plain ``def`` handler: ``concurrency`` of them (created as needed).
        self._pool: futures.ThreadPoolExecutor | None = None
        if not self._is_async:
            self._pool = futures.ThreadPoolExecutor(concurrency, thread_name_prefix=THREADS)
        self._abandoned = False

    async def call(self, event: Any) -> None:
        """Call the handler with one event (a plain ``def`` in a thread of the pool, in a
        copy of the current context, as :func:`asyncio.to_thread` does)."""
        if self._pool is None:
            await self._handler(event)
            return
        call = functools.partial(contextvars.copy_context().run, self._handler, event)
        result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        if inspect.isawaitable(result):  # a callable object whose __call__ returns one
            await result

    def handle(self, event: Any) -> Any:
        """Start the handler on ``event``: a job that ends up in :meth:`wait`, or ``None``
        when the handler already returned without an error.

        An ``async def`` handler starts eagerly (as Python 3.12's eager tasks do): its
        first step runs now, in a context of its own, and only a handler that really waits
        becomes a task, so one that finishes at once costs no task and no loop turn.
        """
        if not self._is_async or not EAGER:
            task = asyncio.get_running_loop().create_task(self.call(event))
            task.add_done_callback(self._ended)
            return task
        coro = self._handler(event)
        context = contextvars.copy_context()
        try:
            first = context.run(coro.send, None)
        except StopIteration:
            return None
        except Exception as exc:
            done = _Done(exc)
        else:
            # The task goes on in the very context of the first step (not a copy of it): a
            # handler that sets a ContextVar there resets it with its token later.
            loop = asyncio.get_running_loop()
            task = loop.create_task(_resume(coro, first), context=context)  # type: ignore[call-arg,unused-ignore]
            task.add_done_callback(self._ended)
            return task
        self._finished.append(done)
        return done

    @staticmethod
    def outcome(job: Any) -> BaseException | None:
        """What a finished handler job raised (an ``Exception``), or ``None``; a
        ``BaseException`` (cancellation, KeyboardInterrupt) is raised."""
        if isinstance(job, _Done):
            return job.error
        exc = job.exception()  # a cancelled job raises CancelledError here
        if exc is None or isinstance(exc, Exception):
            return exc
        raise exc

    def submit(self, work: Callable[[], Coroutine[Any, Any, T]]) -> asyncio.Task[T]:
        """Run ``work()`` as a task."""
        task = asyncio.get_running_loop().create_task(work())
        task.add_done_callback(self._ended)
        return task

    spawn = submit

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._finished.append(task)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @staticmethod
    def done(job: asyncio.Task[T]) -> T:
        """The result of a finished job (its exception raised)."""
        return job.result()

    @staticmethod
    def check_cancelled() -> None:
        """Raise ``CancelledError`` when the running task was asked to cancel and the
        request got lost on the way (Python 3.11's ``wait_for`` can swallow one when its
        inner await ends at the same moment), so ``process`` never outlives a cancel."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if cancelling is not None and cancelling():
            raise asyncio.CancelledError

    async def wait(self, timeout: float) -> list[Any]:
        """The jobs that finished since the last call, waiting up to ``timeout`` seconds
        for one when none has."""
        if not self._finished:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        finished, self._finished = self._finished, []
        return finished

    async def settle(self, job: Any, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``job`` to end."""
        with contextlib.suppress(Exception):
            await asyncio.wait([job], timeout=timeout)

    async def abandon(self, jobs: Collection[asyncio.Task[Any]]) -> None:
        """Give up on ``jobs`` (handlers past the shutdown timeout): cancel them and wait
        for them to end."""
        tasks = [job for job in jobs if not isinstance(job, _Done)]
        for task in tasks:
            task.cancel()
        if tasks:
            self._abandoned = True  # a plain def handler's thread runs on regardless
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Shut the handler threads down: joined when all are idle (in a helper thread, so
        the loop never blocks); not waited for when a handler was abandoned."""
        pool = self._pool
        if pool is None:
            return
        if self._abandoned:
            pool.shutdown(wait=False, cancel_futures=True)
            return
        loop = asyncio.get_running_loop()
        joined: asyncio.Future[None] = loop.create_future()

        def join() -> None:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            finally:
                loop.call_soon_threadsafe(_wake, joined)

        helper = threading.Thread(target=join, name=f"{THREADS}-join")
        helper.start()
        await asyncio.shield(joined)  # a second cancel leaves the helper to finish alone
        helper.join()


#: Whether ``create_task`` takes the context to run in (Python 3.11+), which starting a
#: handler eagerly needs; Python 3.10 starts every handler as a task.
EAGER = sys.version_info >= (3, 11)


class _Done:
    """A handler job that ended in its first step (no task was needed)."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Resume:
    """Awaits a coroutine whose first step already ran and yielded ``first``: passes that
    and every later yield to the task that runs it, and sends back what the task sends."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # a cancellation: the coroutine decides
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Resume(coro, first)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class SyncWorkers:
    """A thread pool of ``concurrency`` threads for one ``process`` loop, and two IO threads
    (a read and an ack); finished jobs are collected in a queue as they end."""

    def __init__(self, concurrency: int, handler: Callable[..., Any]) -> None:
        self._handler = handler
        self._pool = futures.ThreadPoolExecutor(concurrency, thread_name_prefix=THREADS)
        #: A read and an ack, each beside the handlers.
        self._reader = futures.ThreadPoolExecutor(2, thread_name_prefix="fluxabee-io")
        self._finished: queue.SimpleQueue[futures.Future[Any]] = queue.SimpleQueue()
        self._abandoned = False

    def call(self, event: Any) -> None:
        """Call the handler with one event (in a pool thread)."""
        result = self._handler(event)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise InvalidArgumentError(
                "the sync API got an async handler: use fluxabee.AsyncEngine for async def"
            )

    def handle(self, event: Any) -> futures.Future[Any]:
        """Start the handler on ``event`` in the pool."""
        job = self._pool.submit(self.call, event)
        job.add_done_callback(self._finished.put)
        return job

    @staticmethod
    def outcome(job: futures.Future[Any]) -> BaseException | None:
        """What a finished handler job raised (an ``Exception``), or ``None``; a
        ``BaseException`` is raised."""
        exc = job.exception()
        if exc is None or isinstance(exc, Exception):
            return exc
        raise exc

    def submit(self, work: Callable[[], T]) -> futures.Future[T]:
        """Run ``work()`` in the handler pool."""
        job = self._pool.submit(work)
        job.add_done_callback(self._finished.put)
        return job

    def spawn(self, work: Callable[[], T]) -> futures.Future[T]:
        """Run ``work()`` (a read or an ack) in a thread of its own."""
        job = self._reader.submit(work)
        job.add_done_callback(self._finished.put)
        return job

    @staticmethod
    def done(job: futures.Future[T]) -> T:
        """The result of a finished job (its exception raised)."""
        return job.result()

    @staticmethod
    def check_cancelled() -> None:
        """Nothing to check: threads are not cancelled (the twin of asyncio's)."""

    def wait(self, timeout: float) -> list[Any]:
        """The jobs that finished since the last call, waiting up to ``timeout`` seconds
        for one when none has."""
        finished = self._finished
        try:
            out = [finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(finished.get_nowait())
            except queue.Empty:
                return out

    def settle(self, job: Any, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``job`` to end."""
        futures.wait([job], timeout=timeout)

    def abandon(self, jobs: Collection[futures.Future[Any]]) -> None:
        """Give up on ``jobs`` (handlers past the shutdown timeout): threads cannot be
        cancelled, so ``process`` returns without waiting for them."""
        for job in jobs:
            job.cancel()
        self._abandoned = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Release the threads: the IO threads and the idle handler threads are joined,
        handlers abandoned past the shutdown timeout are not waited for."""
        self._pool.shutdown(wait=not self._abandoned, cancel_futures=True)
        self._reader.shutdown(wait=True)
